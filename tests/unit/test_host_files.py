"""Host files -> typed facts (facts/hostfiles.py): a file that does not parse is unknown, never "ok"."""

from __future__ import annotations

from migcheck.facts.hostfiles import CPU_ONLINE, HOST_FILES, NODE_ONLINE, QEMU_CONF, parse_host_files
from migcheck.facts.procfs import HUGEPAGE_FILES
from tests.unit.factories import guest_xml, host_files, rules_of, run, source, target, unknown_checks


def test_every_file_the_probe_reads_becomes_a_fact() -> None:
    files = {p: "" for p in HOST_FILES} | host_files() | {QEMU_CONF: 'migration_host = "m.example"\n'}
    facts = parse_host_files(files, errors := {})
    assert errors == {}
    assert facts.memory.total_kib == 24000000 and facts.memory.available_kib == 22000000
    assert str(facts.cpus_online) == "0-7" and len(facts.nodes_online) == 1
    assert facts.qemu_conf.value("migration_host") == "m.example"
    assert facts.addresses.all() >= {"10.0.0.2", "127.0.0.1"}
    assert facts.mounts and facts.mounts[0].fs_type == "ext4"


def test_qemu_conf_absent_is_the_defaults_and_unreadable_is_unknown() -> None:
    assert parse_host_files({}, {}).qemu_conf.text == ""
    assert parse_host_files({}, {"host_files": "no SSH access"}).qemu_conf is None
    assert parse_host_files({}, {f"file:{QEMU_CONF}": "EACCES"}).qemu_conf is None


def test_malformed_online_cpus_make_the_vcpu_checks_unknown() -> None:
    xml = guest_xml().replace("<vcpu placement='static'>1</vcpu>", "<vcpu placement='static' cpuset='0-1'>1</vcpu>")
    good = run(source(xml), target())
    assert {"resources.vcpus", "resources.cpu-pinning"}.isdisjoint(unknown_checks(good))
    bad = target(files=host_files() | {CPU_ONLINE: "0-x\n"})
    report = run(source(xml), bad)
    assert {"resources.vcpus", "resources.cpu-pinning"} <= unknown_checks(report)
    assert report.verdict.value == "unknown"


def test_malformed_numa_nodes_make_the_nodeset_check_unknown() -> None:
    xml = guest_xml().replace("</vcpu>", "</vcpu><numatune><memory mode='strict' nodeset='1'/></numatune>")
    assert "resources.numa-nodeset" in rules_of(run(source(xml), target()), "block")  # node 1 is missing there
    report = run(source(xml), target(files=host_files() | {NODE_ONLINE: "zero\n"}))
    assert "resources.numa-nodeset" in unknown_checks(report)


def test_a_malformed_free_huge_page_count_is_unknown_not_missing() -> None:
    xml = guest_xml().replace("<vcpu", "<memoryBacking><hugepages/></memoryBacking><vcpu")
    mounts = host_files()["/proc/self/mountinfo"] + "40 22 0:44 / /dev/hugepages rw - hugetlbfs hugetlbfs rw\n"
    ok = target(files=host_files(mounts) | {HUGEPAGE_FILES[2048]: "512\n"})
    assert "resources.hugepages" not in rules_of(run(source(xml), ok))
    bad = target(files=host_files(mounts) | {HUGEPAGE_FILES[2048]: "many\n"})
    assert "resources.hugepages" in unknown_checks(run(source(xml), bad))
