"""The grouped evaluation gives exactly what evaluating every pair gives (migcheck SRC DST VM)."""

from __future__ import annotations

import pytest

from migcheck.audit import evaluate as E
from migcheck.audit.fleet import source_raw, target_raw
from migcheck.checks.registry import REGISTRY, Check, Hit, check
from migcheck.facts.host import build_host_facts
from migcheck.flags import parse_flags
from migcheck.report.model import Severity
from tests.unit import every_pair
from tests.unit.fleetgen import DEFAULT_PROFILES, UUID_PLACEHOLDER, small_fleet


def _compare(fleet, flags: list[str], inactive: str = "offline") -> E.Evaluator:
    plan = E.AuditPlan(candidates=fleet.candidates(), flags=parse_flags(flags), inactive=inactive)
    ev = E.Evaluator(fleet.hosts, plan)
    grouped = every_pair.grouped_reports(ev.evaluate_all(), fleet.hosts)
    every = every_pair.evaluate_every_pair(fleet.hosts, plan)
    assert set(grouped) == set(every)
    assert len(every) > 100
    for key, report in every.items():
        assert grouped[key] == report, key
    # the grouping does group: fewer classes than pairs
    assert ev.stats.classes < ev.stats.pairs
    return ev


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("flags", [[], ["--live"], ["--live", "--persistent", "--copy-storage-all"],
                                   ["--live", "--dname", "g0-h00-vm000"], ["--live", "--tls", "--p2p"]])
def test_grouped_equals_every_pair(seed: int, flags: list[str]) -> None:
    _compare(small_fleet(seed=seed), flags)


@pytest.mark.parametrize("inactive", ["skip", "same"])
def test_inactive_policies(inactive: str) -> None:
    _compare(small_fleet(seed=4), ["--live"], inactive)


def test_the_fleet_has_what_the_grouping_must_get_right() -> None:
    """Make sure the generated fleet really exercises the identity facts (else the equality proves little)."""
    fleet = small_fleet(seed=1)
    plan = E.AuditPlan(candidates=fleet.candidates(), flags=parse_flags(["--live"]))
    rules = {(f.rule, f.severity.value) for r in every_pair.evaluate_every_pair(fleet.hosts, plan).values() for f in r.findings}
    for expected in [("platform.same-host", "block"), ("platform.target-hostname-localhost", "block"),
                     ("platform.name-collision", "block"), ("resources.memory", "risk"),
                     ("resources.memory", "block"), ("probe.failed", "unknown"), ("network.bridge-missing", "block"),
                     ("paths.chardev-directory", "block"), ("cpu.guest-cpu-not-on-target", "block"),
                     ("resources.hugepages", "block"), ("paths.graphics-listen", "block")]:
        assert expected in rules, expected


def _with_check(cid: str, fn, reads: tuple[str, ...] = ()) -> None:
    check(cid, Severity.BLOCK, "test-only", reads=reads)(fn)


def _reads_free_memory(ctx):
    free = ctx.target.free_memory
    if free is not None and free < 100 * 1024 ** 3:
        return [Hit(message=f"{ctx.target.spec} has {free} bytes free")]
    return []


def test_a_new_check_reading_an_identity_fact_runs_per_member() -> None:
    """A check that declares a fact the class key does not hold (the free memory) is run per target."""
    _with_check("zz.test-free-memory", _reads_free_memory, reads=("free_memory",))
    try:
        ev = _compare(small_fleet(seed=5), ["--live"])
        assert E.scope_of(REGISTRY["zz.test-free-memory"], None, parse_flags(["--live"])) == E.MEMBER
        assert ev.stats.per_member_runs > 0
        assert any(k.startswith("zz.test-free-memory") for k in ev.stats.uncovered)
    finally:
        del REGISTRY["zz.test-free-memory"]


def test_a_check_that_hides_a_read_is_caught_and_would_be_grouped_wrongly() -> None:
    """The same check declaring nothing: the declared-reads rule fails on it, and the audit (believing it)
    gives another matrix than every pair: the declarations are what the grouping stands on."""
    from tests.unit.declared_reads import assert_reads_declared

    _with_check("zz.test-free-memory", _reads_free_memory)
    try:
        fleet = small_fleet(seed=5)
        plan = E.AuditPlan(candidates=fleet.candidates(), flags=parse_flags(["--live"]))
        host = next(h for h in fleet.hosts.values() if h.ok and h.guests)
        g = next(iter(host.guests.values()))
        dst = fleet.hosts[plan.candidates[host.name][0]]
        with pytest.raises(AssertionError, match="zz.test-free-memory.*free_memory"):
            assert_reads_declared(source_raw(host, g), target_raw(dst, g), plan.flags)
        grouped = every_pair.grouped_reports(E.Evaluator(fleet.hosts, plan).evaluate_all(), fleet.hosts)
        every = every_pair.evaluate_every_pair(fleet.hosts, plan)
        assert grouped != every
    finally:
        del REGISTRY["zz.test-free-memory"]


def _reads_status(ctx):
    st = ctx.guest.status
    return [] if st is None else [Hit(message=f"status names {st.name}", severity=Severity.INFO)]


def test_a_check_reading_the_status_xml_gets_it_parsed() -> None:
    """The status XML is parsed only when a check declares it reads it (guest.status)."""
    assert not E.Evaluator({}, E.AuditPlan(candidates={}, flags=parse_flags([]))).parse_status
    _with_check("zz.test-status", _reads_status, reads=("guest.status",))
    try:
        ev = _compare(small_fleet(seed=6), ["--live"])
        assert ev.parse_status
    finally:
        del REGISTRY["zz.test-status"]


def test_a_check_reading_the_source_errors_whole_declares_the_status() -> None:
    """Listing the source's errors could show that the status XML did not parse: a read of guest.status."""
    from tests.unit.declared_reads import traced_reads

    def lists_errors(ctx):
        return [Hit(message=f"{len(ctx.source.errors)} errors", severity=Severity.INFO)]

    _with_check("zz.test-errors", lists_errors, reads=("guest.status",))
    try:
        fleet = small_fleet(seed=7)
        host = next(h for h in fleet.hosts.values() if h.ok and h.guests)
        g = next(iter(host.guests.values()))
        dst = fleet.hosts[fleet.candidates()[host.name][0]]
        assert "guest.status" in traced_reads(source_raw(host, g), target_raw(dst, g), parse_flags([]))["zz.test-errors"]
        assert _compare(fleet, []).parse_status
    finally:
        del REGISTRY["zz.test-errors"]


def test_assembled_facts_equal_build_host_facts() -> None:
    """build_host_facts with the audit's cache is build_host_facts, for sources and targets, malformed answers included."""
    fleet = small_fleet(seed=8)
    cache = E.FactCache()
    n = 0
    for host in fleet.hosts.values():
        if not host.ok:
            continue
        for g in host.guests.values():
            if g.raw is None or g.error:
                continue
            sr = source_raw(host, g)
            assert build_host_facts(sr, cache) == build_host_facts(sr)
            for t in fleet.candidates()[host.name]:
                th = fleet.hosts[t]
                if th.ok:
                    tr = target_raw(th, g)
                    assert build_host_facts(tr, cache) == build_host_facts(tr)
                    n += 1
    assert n > 100
    bad = source_raw(*_first(fleet))
    for text in ("<capabilities><host><uuid>12345678-1234-1234-1234-123456789abc</uuid></host>",  # truncated
                 "<domain/>", "not xml"):
        raw = bad.model_copy(update={"capabilities_xml": text, "domcaps_xml": {"k|x||kvm": text}})
        assert build_host_facts(raw, cache) == build_host_facts(raw)
        assert "capabilities" in build_host_facts(raw, cache).errors


def _first(fleet):
    for host in fleet.hosts.values():
        if host.ok:
            for g in host.guests.values():
                if g.raw is not None and not g.error:
                    return host, g


def test_host_capabilities_differing_only_in_uuid_are_parsed_once() -> None:
    cache = E.FactCache()
    p = DEFAULT_PROFILES[0]
    a = cache.caps(p.caps_xml.replace(UUID_PLACEHOLDER, "11111111-2222-3333-4444-555555555555"))[0]
    b = cache.caps(p.caps_xml.replace(UUID_PLACEHOLDER, "66666666-7777-8888-9999-000000000000"))[0]
    assert cache.parses == 1
    assert (a.uuid, b.uuid) == ("11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000")
    assert a.model_copy(update={"uuid": None}) == b.model_copy(update={"uuid": None})


_REAL_CHUNK = E._check_chunk


def _spy_chunk(names):
    """Runs in the workers (by reference, as the pool pickles it): the results, each with the worker's pid."""
    import os

    return [(os.getpid(), r) for r in _REAL_CHUNK(names)]


@pytest.mark.parametrize("jobs", [2, 3])
def test_worker_processes_give_what_one_process_gives(jobs: int, monkeypatch) -> None:
    """check_fleet (the audit's checking step) in worker processes: the same results, in the same order,
    as one Evaluator in this process; and it really did use other processes."""
    import os

    fleet = small_fleet(seed=2, groups=4)
    plan = E.AuditPlan(candidates=fleet.candidates(), flags=parse_flags(["--live"]))
    one = E.Evaluator(fleet.hosts, plan).evaluate_all()
    seen: list[str] = []
    monkeypatch.setattr(E, "_check_chunk", _spy_chunk)
    tagged = E.check_fleet(fleet.hosts, plan, jobs=jobs, progress=lambda what, done, total: seen.append(what))
    monkeypatch.setattr(E, "_check_chunk", _REAL_CHUNK)
    pids = {pid for pid, _ in tagged}
    many = [r for _, r in tagged]
    assert len(one) > 50
    assert many == one
    assert os.getpid() not in pids and len(pids) >= 2, pids
    assert seen and set(seen) == {"checking guests"}
    # the default (jobs=None) on a fleet this small stays in this process, with the same answer
    assert E.check_fleet(fleet.hosts, plan) == one


def test_grouped_equals_every_pair_on_real_data() -> None:
    """The same on a fleet drawn from the libvirt corpus (its x86 KVM guests, CPUs and QEMU versions)."""
    from tests.unit.fleetgen_corpus import corpus_fleet

    fleet = corpus_fleet(seed=5, n_hosts=20, n_guests=80, group_size=10)
    ev = _compare(fleet, ["--live"])
    assert ev.stats.vms == 80
    rules = {f.rule for vm in ev.evaluate_all() for t in vm.targets for f in vm.findings(t, t)}
    assert {"storage.missing-on-target", "cpu.guest-cpu-not-on-target"} <= rules, rules
