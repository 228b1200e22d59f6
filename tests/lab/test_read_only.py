"""migcheck changes nothing on the hosts (issue 4, item 3), shown on the mcflt lab.

The state of each host is recorded before and after `migcheck SRC DST VM` and
`migcheck probe HOST [VM]` runs (including failing ones):

- domains: `virsh list --all`, and per domain dumpxml, dumpxml --inactive,
  dominfo (taint "Messages", without the ever-growing "CPU time") and domstate --reason;
- libvirt's files: type, mode, owner, mtime and sha256 of everything under /etc/libvirt,
  /var/lib/libvirt, /run/libvirt, /var/cache/libvirt and /var/log/libvirt/qemu (the QEMU
  logs, where "Domain id=N is tainted: ..." lines go), sockets and pid files included;
- taint flags: the status XMLs' <taint flag=.../>, the QEMU logs, dominfo, and libvirtd's
  "is tainted" log lines;
- processes: every process of the host's network namespace (pid, start time, argv),
  QEMU included.

What changes by itself, measured here: nothing in those trees while the lab is quiet
(test_the_state_is_stable_without_migcheck is the control). libvirtd.log and virtlogd.log
are left out of the file hashes: libvirtd logs a line whenever a client disconnects ("End
of file while reading data") or a query errs (compareHypervisorCPU's incompatible answer),
migcheck's or anyone's; only its taint lines are compared. sshd's per-connection children
and virt-ssh-helper exit with migcheck's connections: the process lists are compared once
they have gone (bounded wait).

--qmp is the documented exception: the guest gets the "custom-monitor" taint, and nothing else.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab import HostSpec
from tests.lab.flt_lab import define_guest, flt_lab, migcheck, remove_guest

pytestmark = pytest.mark.lab

TREES = ["/etc/libvirt", "/var/lib/libvirt", "/run/libvirt", "/var/cache/libvirt", "/var/log/libvirt/qemu"]
TEXT_OF = re.compile(r"^/run/libvirt/qemu/[^/]+\.xml$|^/var/log/libvirt/qemu/[^/]+\.log$")
WALK = r"""
import hashlib, json, os, re, stat, sys
text_of = re.compile(sys.argv[1])
out = {}
for root in sys.argv[2:]:
    for dirpath, dirs, files in os.walk(root):
        for n in [dirpath] + [os.path.join(dirpath, x) for x in dirs + files]:
            try:
                st = os.lstat(n)
            except FileNotFoundError:
                continue
            e = {"type": stat.S_IFMT(st.st_mode), "mode": oct(st.st_mode), "owner": [st.st_uid, st.st_gid],
                 "mtime": st.st_mtime_ns}
            if stat.S_ISREG(st.st_mode):
                with open(n, "rb") as fh:
                    data = fh.read()
                e["sha256"] = hashlib.sha256(data).hexdigest()
                if text_of.match(n):
                    e["text"] = data.decode("utf-8", "replace")
            elif stat.S_ISLNK(st.st_mode):
                e["link"] = os.readlink(n)
            out[n] = e
print(json.dumps(out))
"""

GUESTS = {"flt-a": [("ro-run", "running"), ("ro-paused", "paused"), ("ro-off", "off")],
          "flt-b": [("ro-peer", "paused")]}


@pytest.fixture(scope="module")
def lab():
    yield from flt_lab([HostSpec("flt-a"), HostSpec("flt-b")])


@pytest.fixture(scope="module")
def guests(lab):
    for host, specs in GUESTS.items():
        for name, state in specs:
            h = lab.host(host)
            if state == "running":
                define_guest(lab, h, name, start=False)
                h.virsh("start", "--domain", name)
            else:
                define_guest(lab, h, name, start=state == "paused")
    yield
    for specs in GUESTS.values():
        for name, _ in specs:
            remove_guest(lab, name)


def _processes(h) -> list[tuple[int, str, list[str]]]:
    out = []
    pids = subprocess.run(["ip", "netns", "pids", h.netns], capture_output=True, text=True, timeout=30).stdout
    for pid in sorted(int(p) for p in pids.split()):
        try:
            start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        out.append((pid, start, argv))
    return out


def host_state(h) -> dict:
    names = h.virsh("list", "--all", "--name").stdout.split("\n")
    domains = {}
    for name in [n for n in names if n.strip()]:
        info = h.virsh("dominfo", "--domain", name).stdout
        domains[name] = {
            "xml": h.virsh("dumpxml", "--domain", name).stdout,
            "inactive_xml": h.virsh("dumpxml", "--inactive", "--domain", name).stdout,
            "dominfo": "\n".join(ln for ln in info.splitlines() if not ln.startswith("CPU time:")),
            "state": h.virsh("domstate", "--reason", "--domain", name).stdout.strip(),
        }
    files = json.loads(h.run(["python3", "-c", WALK, TEXT_OF.pattern, *TREES], check=True, timeout=60).stdout)
    libvirtd_log = (h.dir / "log" / "libvirtd.log").read_text(errors="replace")
    return {
        "list": h.virsh("list", "--all").stdout,
        "domains": domains,
        "files": files,
        "taint_log": [ln.split(": ", 1)[-1] for ln in libvirtd_log.splitlines() if "is tainted" in ln],
        "processes": _processes(h),
    }


def lab_state(lab) -> dict:
    return {h.name: host_state(h) for h in lab.hosts}


def differences(before: dict, after: dict, prefix: str = "") -> list[str]:
    """Paths (host/section/key...) whose values differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for k in sorted(set(before) | set(after), key=str):
            if k not in before or k not in after:
                out.append(f"{prefix}/{k}: {'added' if k not in before else 'removed'}")
            else:
                out += differences(before[k], after[k], f"{prefix}/{k}")
        return out
    return [] if before == after else [f"{prefix}: {str(before)[:300]!r} -> {str(after)[:300]!r}"]


def settled_state(lab, before: dict, wait: float = 10) -> dict:
    """The state once migcheck's connections are gone (sshd children exit a moment later)."""
    end = time.monotonic() + wait
    while True:
        after = lab_state(lab)
        if not differences(before, after) or time.monotonic() > end:
            return after
        time.sleep(0.5)


def test_the_state_is_stable_without_migcheck(lab, guests):
    """The control: what the comparison sees when nobody does anything (nothing changes)."""
    time.sleep(1)
    before = lab_state(lab)
    assert before["flt-a"]["domains"]["ro-run"]["state"].startswith("running")
    assert any(p[2][0].endswith("qemu-system-x86_64") for p in before["flt-a"]["processes"])
    assert any("/run/libvirt/libvirt-sock" in f for f in before["flt-a"]["files"])  # sockets are in
    time.sleep(3)
    subprocess.run(["virsh", "-c", lab.host("flt-a").uri, "list", "--all"], capture_output=True, timeout=30)
    assert differences(before, settled_state(lab, before)) == []


RUNS = [
    ["flt-a", "flt-b", "ro-run", "--live"],
    ["flt-a", "flt-b", "ro-run", "--live", "--persistent", "--undefinesource", "--copy-storage-all",
     "--format", "json", "-v"],
    ["flt-a", "flt-b", "ro-paused", "--live", "--format", "json"],
    ["flt-a", "flt-b", "ro-off", "--offline", "--persistent"],
    ["flt-b", "flt-a", "ro-peer", "--live", "--p2p", "--tunnelled"],
    ["flt-a", "flt-b", "no-such-guest", "--live"],
    ["probe", "flt-a", "ro-run"],
    ["probe", "flt-a", "ro-off"],
    ["probe", "flt-b"],
]


def test_check_and_probe_change_nothing(lab, guests, tmp_path):
    time.sleep(1)
    before = lab_state(lab)
    codes = []
    for n, args in enumerate(RUNS):
        save = ["--save", str(tmp_path / f"s{n}")] if args[-1] != "no-such-guest" else []
        run = migcheck(*args, *save, timeout=120)
        codes.append(run.code)
        assert "Traceback" not in run.stderr, run.stderr
    assert codes[0] in (0, 4) and codes[5] == 3 and codes[6:] == [0, 0, 0], list(zip(codes, RUNS))
    after = settled_state(lab, before)
    assert differences(before, after) == []


def _status_without_taint(text: str, flag: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if ln.strip() != f"<taint flag='{flag}'/>")


def test_qmp_adds_only_the_documented_custom_monitor_taint(lab, guests):
    name = "ro-qmp"
    a = lab.host("flt-a")
    define_guest(lab, a, name)
    try:
        time.sleep(1)
        before = lab_state(lab)
        run = migcheck("flt-a", "flt-b", name, "--live", "--qmp", "--format", "json")
        assert run.code == 0 and run.report["verdict"] == "ok", run.stdout[-2000:] + run.stderr
        after = settled_state(lab, before, wait=3)
        status, log = f"/run/libvirt/qemu/{name}.xml", f"/var/log/libvirt/qemu/{name}.log"
        fa, fb = before["flt-a"]["files"], after["flt-a"]["files"]
        # the status XML: one taint flag more, nothing else
        assert "<taint flag='custom-monitor'/>" in fb[status]["text"]
        assert "<taint flag='custom-monitor'/>" not in fa[status]["text"]
        assert _status_without_taint(fb[status]["text"], "custom-monitor") == fa[status]["text"].rstrip("\n")
        # the QEMU log: one taint line more
        added = fb[log]["text"][len(fa[log]["text"]):]
        assert fb[log]["text"].startswith(fa[log]["text"])
        assert re.fullmatch(r"\S+ \S+: Domain id=\d+ is tainted: custom-monitor\n", added), added
        # dominfo and libvirtd's log say the same
        assert "custom monitor" in after["flt-a"]["domains"][name]["dominfo"]
        assert "custom monitor" not in before["flt-a"]["domains"][name]["dominfo"]
        new_taints = after["flt-a"]["taint_log"][len(before["flt-a"]["taint_log"]):]
        assert len(new_taints) == 1 and f"name='{name}'" in new_taints[0] and "custom-monitor" in new_taints[0]
        # and nothing else: the paths above, the status dir's mtime (libvirt writes via rename)
        expected = {f"/flt-a/files/{status}/", f"/flt-a/files/{log}/", "/flt-a/files//run/libvirt/qemu/mtime",
                    f"/flt-a/domains/{name}/dominfo", "/flt-a/taint_log"}
        others = [d for d in differences(before, after) if not any(d.startswith(e) for e in expected)]
        assert others == []
    finally:
        remove_guest(lab, name)


def test_the_comparison_sees_a_change(lab, guests):
    """The other control: one real change through libvirt shows up where it should."""
    before = lab_state(lab)
    lab.host("flt-a").virsh("desc", "--domain", "ro-off", "--config", "--new-desc", "changed by the control")
    found = differences(before, lab_state(lab))
    assert any(d.startswith("/flt-a/domains/ro-off/inactive_xml") for d in found), found
    assert any(d.startswith("/flt-a/files//etc/libvirt/qemu/ro-off.xml/sha256") for d in found), found
