"""Hostile input given offline (issue 16 item 5): each case ends in one line and an exit code, in bounded memory.

Every test here failed on the code before its fix (checked by reverting the fix once).
"""

from __future__ import annotations

import random

from tests.unit.factories import guest_xml, rules_of, run, source, target


# ------------------------------------------------------------- CPU and NUMA id lists


def test_id_lists_answer_as_python_sets_do():
    from migcheck.facts.procfs import IdSet, parse_id_list

    rnd = random.Random(16)
    for _ in range(300):
        parts, ref, excl = [], set(), set()
        for _ in range(rnd.randint(1, 5)):
            lo = rnd.randint(0, 40)
            hi = lo + rnd.randint(0, 6)
            if rnd.random() < 0.2:
                parts.append(f"^{lo}")
                excl.add(lo)
            elif rnd.random() < 0.5:
                parts.append(str(lo))
                ref.add(lo)
            else:
                parts.append(f"{lo}-{hi}")
                ref.update(range(lo, hi + 1))
        text, ref = ",".join(parts), ref - excl
        other = set(rnd.sample(range(48), 10))
        got = parse_id_list(text)
        assert sorted(ref) == got.first(1000) and len(got) == len(ref), text
        assert (got - other).first(1000) == sorted(ref - other), (text, other)
        assert bool(got & IdSet.of(other)) == bool(ref & other), (text, other)
    assert str(parse_id_list("0-3,8,10-11,^2")) == "0-1,3,8,10-11"


def test_a_cpuset_of_a_hundred_billion_cpus_is_a_finding_not_24_gigabytes():
    xml = guest_xml().replace("<vcpu placement='static'>1</vcpu>",
                              "<vcpu placement='static' cpuset='0-99999999999'>1</vcpu>"
                              "<cputune><vcpupin vcpu='0' cpuset='4-99999999999'/></cputune>")
    report = run(source(xml), target())
    [hit] = [f for f in report.findings if f.rule == "resources.cpu-pinning"]
    assert "vcpupin '4-99999999999' names CPUs the target does not have: 8,9,10,11" in hit.message
    assert len(hit.message) < 300


def test_a_numa_nodeset_of_four_billion_nodes_is_a_finding():
    xml = guest_xml().replace("<vcpu placement='static'>1</vcpu>",
                              "<vcpu placement='static'>1</vcpu>"
                              "<numatune><memory mode='strict' nodeset='0-4294967296'/></numatune>")
    report = run(source(xml), target())
    assert "resources.numa-nodeset" in rules_of(report, "block")
    [hit] = [f for f in report.findings if f.rule == "resources.numa-nodeset"]
    assert "names NUMA node(s) [1, 2, 3" in hit.message and "(4294967296 in all)" in hit.message
    assert len(hit.message) < 300
