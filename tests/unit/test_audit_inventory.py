"""Fleet inventories: migcheck's YAML, Ansible INI and Ansible YAML, as they are."""

from __future__ import annotations

import pytest

from migcheck.audit.inventory import InventoryError, expand_host_pattern, load_inventory, parse_inventory

ANSIBLE_INI = """\
# the fleet
lone ansible_host=192.0.2.9

[rack1]
h1 ansible_host=10.0.0.1 ansible_user=admin
h2
web[01:03].example.net ansible_port=2222

[rack2]
h3 ansible_host="10.0.0.3"   # an inline comment
h1

[rack1:vars]
ansible_user=ops

[dc:children]
rack1
rack2

[dc:vars]
ansible_user=dcuser

[all:vars]
ansible_user=root
"""

ANSIBLE_YAML = """\
all:
  vars:
    ansible_user: root
  hosts:
    lone:
  children:
    rack1:
      vars: {ansible_user: ops}
      hosts:
        a1: {ansible_host: 10.1.1.1}
        a2:
      children:
        sub:
          hosts:
            a3: {ansible_user: me}
            a[4:5]:
    rack2:
      hosts:
        a2:
        b1: {migcheck_uri: "qemu+tls://b1.example/system"}
        local: {ansible_connection: local}
"""


def test_ansible_ini_groups_vars_children_ranges() -> None:
    inv = parse_inventory(ANSIBLE_INI, "hosts.ini")
    assert inv.format == "ansible-ini"
    assert inv.groups == {"ungrouped": ["lone"],
                          "rack1": ["h1", "h2", "web01.example.net", "web02.example.net", "web03.example.net"],
                          "rack2": ["h3", "h1"]}
    specs = {n: h.spec for n, h in inv.hosts.items()}
    assert specs["lone"] == "root@192.0.2.9"  # all:vars
    assert specs["h1"] == "admin@10.0.0.1"  # host vars win
    assert specs["h2"] == "ops@h2"  # the child group's vars win over its parent's (dc)
    assert specs["h3"] == "dcuser@10.0.0.3"  # rack2 has none: dc's
    assert specs["web02.example.net"] == "qemu+ssh://ops@web02.example.net:2222/system"
    # a host in two groups: one host, candidates from both
    assert inv.hosts["h1"].groups == ["rack1", "rack2"]
    assert inv.candidates("h1") == ["h2", "web01.example.net", "web02.example.net", "web03.example.net", "h3"]
    assert inv.candidates("h3") == ["h1"]


def test_ansible_ini_selected_group_takes_its_children() -> None:
    inv = parse_inventory(ANSIBLE_INI, "hosts.ini", groups=["dc"])
    assert list(inv.groups) == ["dc"]
    assert inv.groups["dc"] == ["h1", "h2", "web01.example.net", "web02.example.net", "web03.example.net", "h3"]
    assert "lone" not in inv.hosts
    with pytest.raises(InventoryError, match="no group 'nope'"):
        parse_inventory(ANSIBLE_INI, "hosts.ini", groups=["nope"])


def test_ansible_yaml() -> None:
    inv = parse_inventory(ANSIBLE_YAML, "inv.yml")
    assert inv.format == "ansible-yaml"
    assert inv.groups == {"ungrouped": ["lone"], "rack1": ["a1", "a2"], "sub": ["a3", "a4", "a5"],
                          "rack2": ["a2", "b1", "local"]}
    specs = {n: h.spec for n, h in inv.hosts.items()}
    assert specs == {"lone": "root@lone", "a1": "ops@10.1.1.1", "a2": "ops@a2", "a3": "me@a3", "a4": "ops@a4",
                     "a5": "ops@a5", "b1": "qemu+tls://b1.example/system", "local": "qemu:///system"}
    assert inv.candidates("a2") == ["a1", "b1", "local"]


def test_migcheck_yaml_with_aliases(tmp_path) -> None:
    p = tmp_path / "fleet.yml"
    p.write_text("groups:\n  rack1: [h1, h2, root@h3]\n  rack2:\n    - qemu+tls://h4.example/system\n    - h1\n"
                 "hosts:\n  h1: admin@10.0.0.1\n")
    inv = load_inventory(p)
    assert inv.format == "migcheck-yaml"
    assert inv.groups == {"rack1": ["h1", "h2", "root@h3"], "rack2": ["qemu+tls://h4.example/system", "h1"]}
    assert inv.hosts["h1"].spec == "admin@10.0.0.1"
    assert inv.candidates("h1") == ["h2", "root@h3", "qemu+tls://h4.example/system"]


def test_two_names_for_one_host_are_probed_once() -> None:
    inv = parse_inventory("groups:\n  g: [h1, root@h1, h2]\n", "f.yml")
    assert list(inv.hosts) == ["h1", "h2"]
    assert inv.groups == {"g": ["h1", "h2"]}
    assert any("same host" in w for w in inv.warnings)


@pytest.mark.parametrize("text, match", [
    ("groups:\n  g: {a: 1}\n", "unknown key"),  # not a list: read as an Ansible group, whose keys are wrong
    ("groups: [a, b]\n", "group"),
    ("groups:\n  g: [bad host!]\n", "not a valid"),
    ("[g]\nh1 novalue\n", "key=value"),
    ("[g\nh1\n", "section header|not valid"),
    ("[g]\nweb[05:01]\n", "end before start"),
    ("all:\n  hosts: 5\n", "hosts must be"),
    ("all:\n  hostz: {}\n", "unknown key"),
    ("", "expected a mapping"),
    ("[a:children]\nb\n[b:children]\na\n[b]\nh\n", "own child"),
])
def test_bad_inventories_say_what_is_wrong(text: str, match: str) -> None:
    with pytest.raises(InventoryError, match=match):
        parse_inventory(text, "f")


def test_host_ranges() -> None:
    assert expand_host_pattern("web[01:03]") == ["web01", "web02", "web03"]
    assert expand_host_pattern("db-[a:c]") == ["db-a", "db-b", "db-c"]
    assert expand_host_pattern("h[0:10:5]") == ["h0", "h5", "h10"]
    assert expand_host_pattern("r[1:2]-h[1:2]") == ["r1-h1", "r1-h2", "r2-h1", "r2-h2"]


def test_unreadable_file(tmp_path) -> None:
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "missing.yml")


def test_the_examples_parse() -> None:
    from pathlib import Path

    ex = Path(__file__).resolve().parents[2] / "examples" / "audit"
    y = load_inventory(ex / "fleet.yml")
    assert y.hosts["kvm01"].spec == "root@10.0.0.11" and "overflow" in y.hosts["kvm03"].groups
    ini = load_inventory(ex / "hosts.ini")
    assert ini.hosts["kvm06.example.net"].spec == "ops@10.0.2.6"
    assert ini.hosts["kvm07.example.net"].spec == "qemu+tls://kvm07.example.net/system"
    assert list(load_inventory(ex / "hosts.ini", groups=["dc1"]).groups) == ["dc1"]
