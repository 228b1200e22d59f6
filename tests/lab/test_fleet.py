"""The audit over a six-host fleet (tests/lab/fleet_lab.py): its matrix is what ``migcheck SRC DST VM
--format json`` says for every pair, and what the fleet was built for. The same fleet at 44 hosts is
the scale benchmark (tests/bench/bench_fleet.py)."""

from __future__ import annotations

import pytest

from tests.lab.audit_lab import matrix_mismatches, run_audit
from tests.lab.fixtures import require_lab
from tests.lab.fleet_lab import fleet, fleet_lab, populate

pytestmark = pytest.mark.lab
# fs-01, -02, -04, -05 have br-prod; fs-03 and fs-06 not. One shut-off guest per host, a running
# one on fs-01, fs-03 and fs-05 (br-prod NICs on fs-01 and fs-05), fs-01's stuck one: 10 guests, 50 pairs.
FLEET = fleet(6, stem="fs", off_per_host=1, running_every=2)


@pytest.fixture(scope="module")
def lab():
    require_lab()
    lab = fleet_lab(FLEET, prefix="mcfls", subnet="10.251.77.224/27", state_dir="/var/tmp/migcheck-lab-mcfls")
    with lab:
        inodes = lab.netns_inodes()
        populate(lab, FLEET)
        yield lab
    assert not lab.leftovers(inodes)


def test_fleet_matrix_equals_every_pair(lab, tmp_path) -> None:
    code, data, err = run_audit(tmp_path, FLEET.inventory_yaml(), "--no-db")
    assert [h["name"] for h in data["hosts"]] == FLEET.hosts, err
    assert all(h["state"] == "ok" for h in data["hosts"]), data["hosts"]
    guests = {g["name"]: g for g in data["guests"]}
    assert set(guests) == {g.name for g in FLEET.guests}, err
    for g in FLEET.guests:  # the flags each guest is checked with follow its state on the lab
        assert guests[g.name]["flags"] == (["--live"] if g.running else ["--offline", "--persistent"]), g
    n, problems = matrix_mismatches(data, {g.name: g.host for g in FLEET.guests}, FLEET.hosts)
    assert not problems, "\n".join(problems)
    assert n == len(FLEET.guests) * (len(FLEET.hosts) - 1) == data["summary"]["pairs"] == 50
    # what the fleet was built to show, so that equal-but-wrong answers on both sides fail too
    status = {vm: g["status"] for vm, g in guests.items()}
    assert status["fs-01-stuck"] == "stuck"
    assert status["fs-01-run"] == status["fs-03-run"] == status["fs-02-off1"] == "ok"
    run1 = {c["host"]: c for c in guests["fs-01-run"]["targets"]}
    for t in FLEET.hosts[1:]:
        if t in ("fs-03", "fs-06"):
            assert run1[t]["verdict"] == "blocked", t
            assert [f["rule"] for f in run1[t]["findings"]] == ["network.bridge-missing"], t
        else:
            assert run1[t]["verdict"] == "ok", (t, run1[t]["findings"])
    assert {c["verdict"] for c in guests["fs-03-run"]["targets"]} == {"ok"}
    assert {c["verdict"] for c in guests["fs-01-stuck"]["targets"]} == {"blocked"}
    assert code == 1, err  # a stuck guest
