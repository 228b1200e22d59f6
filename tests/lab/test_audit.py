"""The fleet audit on a real three-host lab: its matrix is what migcheck SRC DST VM says for every pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.audit_lab import GUESTS, HOSTS, audit_lab, inventory_yaml, matrix_mismatches, populate, run_audit
from tests.lab.fixtures import require_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab():
    require_lab()
    lab = audit_lab()
    with lab:
        inodes = lab.netns_inodes()
        populate(lab)
        yield lab
    assert not lab.leftovers(inodes)


def _audit(tmp: Path, *extra: str) -> tuple[int, dict, str]:
    return run_audit(tmp, inventory_yaml(), "--html", str(tmp / "audit.html"), "--prometheus",
                     str(tmp / "audit.prom"), *extra)


def test_audit_matrix_equals_every_pair(lab, tmp_path) -> None:
    code, data, err = _audit(tmp_path)
    guests = {g["name"]: g for g in data["guests"]}
    assert set(guests) == set(GUESTS), err
    assert all(h["state"] == "ok" for h in data["hosts"]), data["hosts"]
    n, problems = matrix_mismatches(data, {vm: host for vm, (host, _, _) in GUESTS.items()}, HOSTS)
    assert not problems, "\n".join(problems)
    assert n == 2 * len(GUESTS)
    # what the lab was built to show
    status = {vm: g["status"] for vm, g in guests.items()}
    assert status["a-serial"] == "stuck" and status["c-serial"] == "stuck"
    assert status["a-plain1"] == "ok" and status["a-brprod"] == "ok"
    brprod = {c["host"]: c for c in guests["a-brprod"]["targets"]}
    assert brprod["aud-b"]["verdict"] == "ok"
    assert brprod["aud-c"]["verdict"] == "blocked"
    assert [f["rule"] for f in brprod["aud-c"]["findings"]] == ["network.bridge-missing"]
    assert guests["a-off"]["flags"] == ["--offline", "--persistent"]
    assert code == 1  # stuck guests
    assert "a-serial" in (tmp_path / "audit.html").read_text()
    assert 'migcheck_audit_guests{status="stuck"} 2' in (tmp_path / "audit.prom").read_text()


def test_second_run_shows_what_changed(lab, tmp_path) -> None:
    _audit(tmp_path)
    c = lab.host("aud-c")
    c.run(["ip", "link", "add", "br-prod", "type", "bridge"], check=True)
    b = lab.host("aud-b")
    b.virsh("undefine", "b-off")
    try:
        code, data, _ = _audit(tmp_path)
        ch = data["changes"]
        assert ch["previous_run"]
        assert ["b-off", "aud-b"] in ch["vanished_vms"]
        resolved = {(x[0], x[2], x[3]) for x in ch["resolved_blockers"]}
        assert ("a-brprod", "aud-c", "network.bridge-missing") in resolved
        assert ("b-brprod", "aud-c", "network.bridge-missing") in resolved
    finally:
        c.run(["ip", "link", "del", "br-prod"])
        b.write_file("/var/lib/libvirt/images/b-off.xml", lab.guest_xml("b-off"))
        b.virsh("define", "/var/lib/libvirt/images/b-off.xml")
