"""Pass and fail fixtures for the platform checks, and the engine's handling of failures."""

import pytest

from migcheck.checks.registry import REGISTRY, all_checks, check
from migcheck.probe.raw import PathStat, PeerDomain
from migcheck.report.model import Severity, Verdict
from tests.unit.factories import argv, caps, guest_xml, rules_of, run, source, target, unknown_checks

UUID = "6d1c3a5e-0000-4000-8000-000000000001"


def clean_source(**kw):
    return source(guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>"), argv("host,migratable=on"), **kw)


def test_clean_pair_is_ok():
    r = run(clean_source(), target())
    assert r.verdict == Verdict.OK, r.findings
    assert r.exit_code == 0


def test_same_host_uuid_blocks():
    same = caps(uuid="11111111-1111-1111-1111-111111111111")
    assert "platform.same-host" in rules_of(run(clean_source(), target(host_caps=same)), "block")


def test_target_hostname_localhost_blocks_unless_migrateuri():
    dst = target()
    dst.hostname = "localhost.localdomain"
    assert "platform.target-hostname-localhost" in rules_of(run(clean_source(), dst), "block")
    assert "platform.target-hostname-localhost" not in rules_of(
        run(clean_source(), dst, "--live --migrateuri tcp://10.0.0.2"))


def test_shut_off_guest_blocks_live_but_not_offline():
    src = source(guest_xml(), None, state=5)
    r = run(src, target())
    f = next(f for f in r.findings if f.rule == "platform.guest-not-running")
    assert "--offline --persistent" in f.fix
    assert "platform.guest-not-running" not in rules_of(run(src, target(), "--offline --persistent"))


def test_paused_on_io_error_blocks_with_abort_on_error_and_warns_without():
    assert "platform.paused-on-io-error" in rules_of(
        run(clean_source(state=3, reason=5), target(), "--live --abort-on-error"), "block")
    assert "platform.paused-on-io-error" in rules_of(run(clean_source(state=3, reason=5), target()), "warn")
    assert "platform.paused-on-io-error" not in rules_of(run(clean_source(state=3, reason=1), target()))


def test_machine_type_unknown_on_target_blocks():
    src = source(guest_xml(machine="pc-q35-10.0", cpu="<cpu mode='host-passthrough'/>"), argv("host", "pc-q35-10.0"))
    f = next(f for f in run(src, target()).findings if f.rule == "platform.machine-type-unknown")
    assert "pc-q35-10.0" in f.message and f.severity == Severity.BLOCK


def test_machine_alias_known_on_target_passes():
    assert "platform.machine-type-unknown" not in rules_of(run(clean_source(), target()))


def test_emulator_missing_on_target_blocks():
    dst = target(paths={"/usr/bin/qemu-system-x86_64": PathStat(path="/usr/bin/qemu-system-x86_64", exists=False)})
    assert "platform.emulator-missing" in rules_of(run(clean_source(), dst), "block")


def test_virt_type_unsupported_blocks():
    no_kvm = caps(uuid="22222222-2222-2222-2222-222222222222").replace("<domain type='kvm'>", "<domain type='xen'>")
    assert "platform.arch-or-virt-type-unsupported" in rules_of(run(clean_source(), target(host_caps=no_kvm)), "block")


def test_older_target_is_a_warning_only():
    r = run(clean_source(libvirt=11_003_000, qemu=10_000_000), target())
    assert "platform.target-older" in rules_of(r, "warn")
    assert r.verdict == Verdict.OK


def test_active_domain_of_same_name_on_target_blocks():
    dst = target(peers=[PeerDomain(name="vm1", uuid="99999999-0000-4000-8000-000000000001", active=True)])
    assert "platform.name-collision" in rules_of(run(clean_source(), dst), "block")


def test_inactive_domain_with_same_uuid_on_target_migrates_keeping_its_definition():
    dst = target(peers=[PeerDomain(name="vm1", uuid=UUID, active=False, persistent=True)])
    r = run(clean_source(), dst)
    assert "platform.name-collision" in rules_of(r, "warn") and r.verdict == Verdict.OK
    assert "platform.name-collision" not in rules_of(run(clean_source(), dst, "--live --persistent"))


@pytest.mark.parametrize("active", [False, True])
def test_same_uuid_under_another_name_on_target_blocks(active):
    dst = target(peers=[PeerDomain(name="vm1-old", uuid=UUID, active=active, persistent=not active)])
    f = next(f for f in run(clean_source(), dst).findings if f.rule == "platform.name-collision")
    assert f.severity == Severity.BLOCK and "is already defined with uuid" in f.message


def test_dname_onto_the_guests_own_stale_copy_blocks():
    dst = target(peers=[PeerDomain(name="vm1", uuid=UUID, active=False, persistent=True)])
    assert "platform.name-collision" in rules_of(run(clean_source(), dst, "--live --dname vm1-new"), "block")


def test_same_guest_running_on_target_blocks():
    dst = target(peers=[PeerDomain(name="vm1", uuid=UUID, active=True)])
    f = next(f for f in run(clean_source(), dst).findings if f.rule == "platform.name-collision")
    assert f.severity == Severity.BLOCK and "is already active" in f.message


def test_defined_domain_of_same_name_other_uuid_blocks_and_dname_avoids_it():
    dst = target(peers=[PeerDomain(name="vm1", uuid="99999999-0000-4000-8000-000000000001", persistent=True)])
    assert "platform.name-collision" in rules_of(run(clean_source(), dst), "block")
    assert "platform.name-collision" not in rules_of(run(clean_source(), dst, "--live --dname vm1-new"))


@pytest.mark.parametrize("flags", ["--offline", "--live --offline --persistent", "--postcopy --offline --persistent",
                                   "--tunnelled", "--offline --persistent --p2p --tunnelled", "--postcopy"])
def test_rejected_flag_combinations_block(flags):
    assert "flags.rejected-combination" in rules_of(run(clean_source(state=5), target(), flags), "block")


def test_missing_capabilities_make_checks_unknown_not_ok():
    dst = target()
    dst.capabilities_xml = None
    dst.errors["capabilities"] = "connection reset"
    r = run(clean_source(), dst)
    assert r.verdict == Verdict.UNKNOWN
    # every check that needed the capabilities, in one finding that says why (registry.merge_unavailable)
    [merged] = [f for f in r.findings if f.rule == "facts.unavailable"]
    assert "platform.same-host" in merged.evidence[0].split(": ", 1)[1].split(", ")
    assert "connection reset" in merged.message
    assert r.exit_code == 3


def test_garbage_capabilities_are_unknown_not_ok():
    dst = target()
    dst.capabilities_xml = "<capabilities><host>"
    r = run(clean_source(), dst)
    assert r.verdict == Verdict.UNKNOWN


def test_a_crashing_check_is_unknown_never_a_pass():
    @check("test.crash", Severity.BLOCK, "always crashes")
    def crash(ctx):
        raise RuntimeError("boom")

    try:
        r = run(clean_source(), target())
        f = next(f for f in r.findings if f.rule == "test.crash")
        assert f.severity == Severity.UNKNOWN and "boom" in f.message
        assert r.verdict == Verdict.UNKNOWN
    finally:
        del REGISTRY["test.crash"]


def test_every_check_has_valid_id_severity_and_documentation():
    checks = all_checks()
    assert len({c.id for c in checks}) == len(checks)
    for c in checks:
        assert c.id == c.id.lower() and "." in c.id and " " not in c.id
        assert c.severity in Severity and c.severity != Severity.UNKNOWN
        assert c.title and c.doc.strip()


def test_job_and_block_job_facts_missing_are_unknown():
    s = clean_source(job_type=None)
    s.errors["job"] = "connection reset"
    assert "state.job-active" in rules_of(run(s, target()), "unknown")
    s = clean_source()
    s.errors["block_jobs"] = "connection reset"
    assert "state.block-job" in rules_of(run(s, target()), "unknown")


def test_missing_target_domain_capabilities_make_vcpus_unknown():
    dst = target(domcaps_xml={})
    dst.errors["domcaps:x"] = "operation forbidden"
    assert "resources.vcpus" in rules_of(run(clean_source(), dst), "unknown")


DUMP_STATS = {"type": 3, "operation": 8, "memory_iteration": 2, "downtime": 1, "data_total": 67641344}


def test_paused_guest_after_a_dump_is_a_risk_without_qmp():
    r = run(clean_source(state=3, reason=1, completed_job=DUMP_STATS), target())
    f = next(f for f in r.findings if f.rule == "state.postmigrate-paused")
    assert f.severity == Severity.RISK and "previous migration" in f.message and "--qmp" in f.fix


def test_qemu_in_postmigrate_blocks_with_qmp():
    r = run(clean_source(state=3, reason=1, completed_job=DUMP_STATS, qmp_status="postmigrate"), target())
    assert "state.postmigrate-paused" in rules_of(r, "block")


def test_qemu_paused_again_passes_with_qmp():
    r = run(clean_source(state=3, reason=1, completed_job=DUMP_STATS, qmp_status="paused"), target())
    assert "state.postmigrate-paused" not in rules_of(r)


@pytest.mark.parametrize("kw", [
    {"state": 3, "completed_job": {"type": 0}},  # no finished job, or a --memory-only dump
    {"state": 1, "completed_job": None},  # running: libvirt resumed it after the dump
    {"state": 3, "completed_job": None},  # a probe saved before the fact was gathered
    # a completed outgoing migration: libvirt killed that QEMU; this paused guest is a new process
    {"state": 3, "completed_job": DUMP_STATS | {"operation": 5}},
], ids=["no-finished-job", "running", "old-probe", "migrated-away-and-restarted"])
def test_paused_guest_without_a_finished_dump_passes(kw):
    assert "state.postmigrate-paused" not in rules_of(run(clean_source(reason=1, **kw), target()))


def test_completed_job_stats_that_failed_to_gather_are_unknown():
    src = clean_source(state=3, reason=1)
    src.errors["completed_job"] = "timed out"
    assert "state.postmigrate-paused" in rules_of(run(src, target()), "unknown")


QEMU_CONF = "/etc/libvirt/qemu.conf"


@pytest.mark.parametrize("src_conf, dst_conf, severity, text", [
    (None, None, None, None),  # both unset: nop on both
    (None, 'lock_manager = "lockd"\n', None, None),  # lab: nop and lockd send no lock state, and migrate
    ('lock_manager = "lockd"\n', None, None, None),
    ('lock_manager = "sanlock"\n', 'lock_manager = "sanlock"\n', None, None),
    (None, 'lock_manager = "sanlock"\n', Severity.BLOCK, "Missing sanlock lock state for migration cookie"),
    ('lock_manager = "lockd"\n', 'lock_manager = "sanlock"\n', Severity.BLOCK, "Missing sanlock lock state"),
    ('lock_manager = "sanlock"\n', '# lock_manager = "sanlock"\n', Severity.RISK,  # commented out: nop
     "Source host lock driver sanlock different from target nop"),
])
def test_lock_manager_sanlock_on_one_side_only(src_conf, dst_conf, severity, text) -> None:
    src, dst = clean_source(), target()
    for raw, conf in ((src, src_conf), (dst, dst_conf)):
        if conf is not None:
            raw.files[QEMU_CONF] = conf
    found = [f for f in run(src, dst).findings if f.rule == "platform.lock-manager"]
    assert [f.severity for f in found] == ([severity] if severity else [])
    if text:
        assert text in found[0].message


def test_lock_manager_unknown_without_the_targets_qemu_conf() -> None:
    dst = target()
    dst.errors["host_files"] = "SSH: connection refused"
    r = run(clean_source(), dst)
    assert "platform.lock-manager" in unknown_checks(r)
    assert r.verdict == Verdict.UNKNOWN
