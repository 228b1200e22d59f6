"""The probe's stage order (probe/stages.py) and the answers of a guest's questions (gather.ask_*).

probe_pair and the fleet audit both run the stages of probe/stages.py; test_audit_probe.py shows
that they bring back the same records. Here: the order itself keeps what the stages need of each
other, the fleet's two passes cover both roles, and an answer carries the errors the record had.
"""

from __future__ import annotations

from types import SimpleNamespace

import libvirt
import pytest

from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.probe import gather, stages
from migcheck.probe.answers import Answer
from migcheck.probe.raw import PathStat, RawHost, domcaps_key

GUEST_XML = ("<domain type='kvm'><name>g</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu>"
             "<os><type arch='x86_64' machine='pc-q35-99.0'>hvm</type></os>"
             "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
             "<disk type='file' device='disk'><source file='/img/a.qcow2'/><target dev='vda'/></disk>"
             "<disk type='file' device='disk'><source file='/img/gone.qcow2'/><target dev='vdb'/></disk>"
             "</devices></domain>")


# ---- the order ----------------------------------------------------------------

def _before(order: tuple[str, ...], a: str, b: str) -> bool:
    return order.index(a) < order.index(b)


@pytest.mark.parametrize("role", [stages.SOURCE, stages.TARGET])
def test_each_role_asks_what_a_stage_needs_before_it(role: str) -> None:
    order = stages.ORDER[role]
    assert set(order) <= set(stages.HOST_STAGES + stages.GUEST_STAGES) and len(set(order)) == len(order)
    assert _before(order, stages.PATHS, stages.IMAGES)  # an image header is read where its path exists
    assert _before(order, stages.HOST_FILES, stages.PATHS)  # qemu.conf names the TLS folders to stat
    assert order[0] == stages.HOST_FACTS


def test_the_pair_waits_only_for_stages_the_other_side_runs() -> None:
    for (role, name), (other, waited) in stages.PAIR_WAITS.items():
        assert role != other and name in stages.ORDER[role] and waited in stages.ORDER[other]
    target = stages.ORDER[stages.TARGET]
    assert _before(target, stages.TARGET_OBJECTS, stages.PATHS)  # networks hand out host bridges to stat
    # the target's guest stages all come after it waited for the guest
    first_wait = min(target.index(n) for (r, n) in stages.PAIR_WAITS if r == stages.TARGET)
    assert all(target.index(s) >= first_wait for s in target if s in stages.GUEST_STAGES)


def test_the_fleet_passes_run_every_stage_of_both_roles_and_wait_in_the_second() -> None:
    first, second = stages.FLEET_FIRST, stages.FLEET_SECOND
    for role in (stages.SOURCE, stages.TARGET):
        assert set(stages.ORDER[role]) <= set(first) | set(second), role
    # a stage that waits for another host, and the target's stages after it, run in the second pass
    # (the guest's host files excepted: the fleet reads them for all guests at once, in the first)
    for (role, name) in stages.PAIR_WAITS:
        order = stages.ORDER[role]
        later = [s for s in order[order.index(name):] if s != stages.GUEST_FILES]
        assert later and all(s in second for s in later), (role, name)
        assert list(second).index(later[0]) <= min(list(second).index(s) for s in later)
    assert stages.GUEST not in second and set(stages.HOST_STAGES) <= set(first)
    assert _before(second, stages.PATHS, stages.IMAGES) and _before(first, stages.PATHS, stages.IMAGES)


def test_run_stages_follows_the_order_and_stops_when_told() -> None:
    seen: list[str] = []

    def stop() -> None:
        seen.append("b")
        raise stages.Stop

    stages.run_stages(("a", "b", "c"), {"a": lambda: seen.append("a"), "b": stop, "c": lambda: seen.append("c")},
                      before=lambda n: seen.append(f"<{n}"), after=lambda n: seen.append(f"{n}>"))
    assert seen == ["<a", "a", "a>", "<b", "b"]


# ---- the answers --------------------------------------------------------------

class _Refusal(libvirt.libvirtError):
    def __init__(self, msg: str):
        Exception.__init__(self, msg)
        self._msg = msg

    def get_error_code(self):
        return libvirt.VIR_ERR_INVALID_ARG

    def get_error_message(self):
        return self._msg


class _Conn:
    def __init__(self, exact_ok: bool, defaults_ok: bool):
        self.exact_ok, self.defaults_ok, self.asked = exact_ok, defaults_ok, []

    def getDomainCapabilities(self, emulator, arch, machine, virttype, flags=0):
        self.asked.append(machine)
        if machine is not None and not self.exact_ok:
            raise _Refusal(f"invalid argument: the machine '{machine}' is not supported")
        if machine is None and not self.defaults_ok:
            raise _Refusal("internal error: no emulator for arch")
        return f"<domainCapabilities><machine>{machine}</machine></domainCapabilities>"


class _Files:
    def __init__(self, present: dict[str, bytes]):
        self.present = present

    def stat(self, path):
        if path == "/denied":
            raise PermissionError(13, "Permission denied", path)
        return PathStat(path=path, exists=path in self.present, size=len(self.present.get(path, b"")))

    def read(self, path, limit=1024, offset=0):
        if path not in self.present:
            raise FileNotFoundError(2, "No such file", path)
        return self.present[path][:limit]


def _session(conn=None, files=None, ssh_error=None):
    return SimpleNamespace(query_conn=conn, files=files, ssh_error=ssh_error)


@pytest.mark.parametrize("exact_ok, defaults_ok, errors", [
    (True, True, {}),
    (False, True, {"domcaps_exact": "invalid argument: the machine 'pc-q35-99.0' is not supported"}),
    (False, False, {"domcaps:KEY": "invalid argument: the machine 'pc-q35-99.0' is not supported; "
                                   "with defaults: internal error: no emulator for arch"}),
])
def test_domcaps_answer_is_what_the_record_gets(exact_ok, defaults_ok, errors) -> None:
    dom = parse_domain_xml(GUEST_XML)
    key = domcaps_key(dom.emulator, dom.arch, dom.machine, dom.virt_type)
    errors = {k.replace("KEY", key): v for k, v in errors.items()}
    answer = gather.ask_domcaps(_session(_Conn(exact_ok, defaults_ok)), dom)
    assert answer.errors == errors
    assert (answer.value is None) == (not exact_ok and not defaults_ok)
    if answer.value is not None:
        assert ("pc-q35-99.0" in answer.value) == exact_ok  # the defaults when the machine is refused
    raw = RawHost(spec="h", uri="qemu:///system")
    gather.gather_domcaps(_session(_Conn(exact_ok, defaults_ok)), raw, dom)
    assert raw.errors == errors and raw.domcaps_xml == ({key: answer.value} if answer.value else {})


def test_path_and_image_answers() -> None:
    files = _Files({"/img/a.qcow2": bytes.fromhex("514649fb00000003") + bytes(120)})
    s = _session(files=files)
    a = gather.ask_path(s, "/img/a.qcow2")
    assert a.errors == {} and a.value.exists and a.value.size == 128
    assert gather.ask_path(s, "/denied") == Answer(None, {"path:/denied": "PermissionError: [Errno 13] Permission "
                                                                         "denied: '/denied'"})
    assert gather.ask_image(s, "/img/a.qcow2", a.value).value.startswith("514649fb")
    gone = gather.ask_path(s, "/img/gone.qcow2").value
    assert gather.ask_image(s, "/img/gone.qcow2", gone) == Answer()  # not here: not read, no error
    assert gather.ask_image(s, "/img/a.qcow2", None) == Answer()
    # the stat says it is there, the read says it is not: an error under the image's key
    there = PathStat(path="/img/vanished", exists=True)
    assert list(gather.ask_image(s, "/img/vanished", there).errors) == ["image:/img/vanished"]
    # the record: the same answers, put in
    raw = RawHost(spec="h", uri="qemu:///system")
    dom = parse_domain_xml(GUEST_XML)
    gather.gather_paths(s, raw, ["/img/a.qcow2", "/img/gone.qcow2", "/denied"])
    gather.gather_image_headers(s, raw, dom)
    assert set(raw.paths) == {"/img/a.qcow2", "/img/gone.qcow2"} and list(raw.errors) == ["path:/denied"]
    assert list(raw.image_headers) == ["/img/a.qcow2"]


def test_without_ssh_one_error_for_all_paths_and_no_image_read() -> None:
    s = _session(files=None, ssh_error="SSH: Authentication failed (publickey)")
    assert gather.ask_path(s, "/x") == Answer(None, {"paths": "SSH: Authentication failed (publickey)"})
    assert gather.ask_image(s, "/x", PathStat(path="/x", exists=True)) == Answer()
    raw = RawHost(spec="h", uri="qemu:///system")
    gather.gather_paths(s, raw, ["/x", "/y"])
    assert raw.errors == {"paths": "SSH: Authentication failed (publickey)"} and raw.paths == {}
