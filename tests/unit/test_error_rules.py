"""The texts real migrations failed with in the lab belong to the checks that predict them.

Each text below is quoted from a lab scenario (tests/lab/test_catalogue_*.py,
test_version_skew.py, test_core_invtsc.py), where the pairing asserts the same
mapping against the live error; here it is pinned offline, so a change to the
table that loses one goes red without the lab.
"""

from __future__ import annotations

import pytest

from migcheck.checks.errors import rule_for_error, rules_for_error
from migcheck.checks.registry import all_checks

LAB_ERRORS = [
    ("Requested operation is not valid: cannot migrate domain: State blocked by non-migratable CPU device "
     "(invtsc flag)", "cpu.invtsc-without-tsc-frequency"),
    ("unsupported configuration: unknown CPU feature: avx-vnni-int8", "cpu.guest-cpu-not-on-target"),
    ("unsupported configuration: Emulator '/usr/bin/qemu-system-x86_64' does not support machine type "
     "'pc-q35-10.0'", "platform.machine-type-unknown"),
    ("cannot migrate domain: virtio-sound: non-migratable device", "devices.non-migratable-device"),
    ("Unsafe migration: Migration without shared storage is unsafe", "storage.not-shared"),
    ("Storage pool not found: no storage pool with matching target path '/var/lib/libvirt/images'",
     "storage.copy-precreate"),
    ("pre-creation of storage targets for incremental storage migration is not supported", "storage.copy-precreate"),
    ("migration of disk vda failed: Source and target image have different sizes", "storage.copy-precreate"),
    ("cannot precreate storage for disk type 'block'", "storage.copy-precreate"),
    ("unable to stat: /var/lib/libvirt/images/x.qcow2: No such file or directory", "storage.missing-on-target"),
    ("Cannot access storage file '/srv/iso/x.iso': No such file or directory", "storage.missing-on-target"),
    ("cannot migrate domain: Migration is disabled when using feature 'peer mode' in device 'shmem0'",
     "devices.shmem-not-master"),
    ("cannot migrate domain with 1 snapshots", "devices.snapshots"),
    ("migration with transient disk is not supported", "devices.transient-disk"),
    ("failed to open '/srv/share': No such file or directory", "devices.filesystem-source-missing"),
    ("Requested operation is not valid: cannot migrate domain: Migration is disabled when VirtFS export path "
     "'/var/lib/libvirt/sto-9p-mounted' is mounted in the guest using mount_tag 'share'", "devices.9p-share"),
    ("cannot migrate domain: The vmdk format used by node 'libvirt-1-format' does not support live migration",
     "devices.image-format"),
    ("Unable to access credentials /etc/pki/qemu/ca-cert.pem: No such file or directory", "flags.tls-certificates"),
    ("this libvirtd instance allows migration only with VIR_MIGRATE_TLS flag", "flags.tls-required"),
    ("Requested operation is not valid: offline migration must be specified with the persistent flag set",
     "flags.rejected-combination"),
    ("Flags 'VIR_MIGRATE_TUNNELLED' and 'VIR_MIGRATE_PARALLEL' are mutually exclusive", "flags.rejected-combination"),
    ("argument unsupported: post-copy is not supported with tunnelled migration", "flags.rejected-combination"),
    ("internal error: argument key 'host' must not have null value", "flags.rejected-combination"),
    ("Cannot get interface MTU on 'br-prod': No such device", "network.bridge-missing"),
    ("Unable to get index for interface br-prod: No such device", "network.direct-device-missing"),
    ("Network not found: no network with matching name 'anet'", "network.libvirt-network"),
    ("Cannot get interface MTU on 'br-gone': No such device", "network.libvirt-network"),
    ("invalid argument: disk target vdz not found", "flags.rejected-combination"),
    ("Unable to get index for interface nic-gone: No such device", "network.libvirt-network"),
    ("Requested operation is not valid: network 'labnet' is not active", "network.libvirt-network"),
    ("internal error: referenced filter 'mc-only-a' is missing", "network.nwfilter-missing"),
    ("Unable to open file: /srv/only-on-a/console.log: No such file or directory", "paths.chardev-directory"),
    ("Unable to bind to UNIX socket path '/srv/only-on-a/agent.sock': No such file or directory",
     "paths.chardev-directory"),
    ("Failed to connect to '/srv/ext.sock': Connection refused", "paths.chardev-directory"),
    ("internal error: hugetlbfs filesystem is not mounted or disabled by administrator config", "resources.hugepages"),
    ("Requested operation is not valid: domain is not running", "platform.guest-not-running"),
    ("Failed to bind socket: Cannot assign requested address", "paths.graphics-listen"),
    ("Failed to bind socket: Cannot assign requested address", "paths.chardev-tcp-bind"),
    ("Failed to find an available port: Address already in use", "paths.graphics-listen"),
    ("Network not found: no network with matching name 'glnet'", "paths.graphics-listen"),
    ("operation failed: domain 'x' already exists with uuid 1", "platform.name-collision"),
    ("Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainSuspend)",
     "state.job-active"),
    # tests/lab/test_catalogue_migration_address.py
    ("Unable to resolve address 'adr-b-nodns' service '49152': Temporary failure in name resolution",
     "network.migration-address"),
    ("unable to connect to server at 'adr-b:49152': No route to host", "network.migration-address"),
    ("unable to connect to server at '10.251.77.190:49152': No route to host", "network.migration-address"),
    ("unable to connect to server at 'adr-b:49152': Connection refused", "network.migration-address"),
    ("unable to connect to server at 'adr-b:49152': Connection refused", "network.migration-listen-address"),
    ("internal error: unable to execute QEMU command 'migrate-incoming': Failed to bind socket: Cannot assign "
     "requested address", "network.migration-listen-address"),
    # tests/lab/test_catalogue_uefi_tpm.py
    ("internal error: process exited while connecting to monitor: 2026-12-03T12:13:23.039172Z qemu-system-x86_64: "
     "-blockdev {\"driver\":\"file\",\"filename\":\"/var/lib/libvirt/boot/code.fd\",\"node-name\":"
     "\"libvirt-pflash0-storage\",\"auto-read-only\":true,\"discard\":\"unmap\"}: Could not open "
     "'/var/lib/libvirt/boot/code.fd': No such file or directory", "paths.boot-files"),
    ("internal error: qemu unexpectedly closed the monitor: 2026-12-03T12:17:58.039650Z qemu-system-x86_64: "
     "Size mismatch: system.flash0: 0x37c000 != 0x1e0000: Invalid argument", "paths.boot-files"),
    ("internal error: qemu unexpectedly closed the monitor: 2026-12-03T12:18:08.001549Z qemu-system-x86_64: "
     "Size mismatch: system.flash1: 0x84000 != 0x20000: Invalid argument", "paths.nvram"),
    ("Failed to open file '/usr/share/OVMF/OVMF_VARS_4M.ms.fd': No such file or directory", "paths.nvram"),
    ("unsupported configuration: TPM version '2.0' is not supported", "devices.tpm-emulator"),
    ("this function is not supported by the connection driver: the running swtpm does not support migration with "
     "shared storage", "devices.tpm-emulator"),
]


@pytest.mark.parametrize("text,rule", LAB_ERRORS)
def test_a_lab_error_belongs_to_its_check(text, rule):
    assert rule in rules_for_error(f"error: {text}")


def test_every_rule_in_the_table_is_a_check():
    from migcheck.checks.errors import ERROR_RULES

    ids = {c.id for c in all_checks()}
    assert {r for _, r in ERROR_RULES} <= ids, {r for _, r in ERROR_RULES} - ids


def test_an_unpredicted_error_belongs_to_no_check():
    assert rules_for_error("error: something nobody predicted") == []
    assert rule_for_error("error: something nobody predicted") is None


def test_a_missing_loader_is_the_loaders_before_a_disks():
    text = ("-blockdev {\"driver\":\"file\",\"filename\":\"/usr/share/OVMF/OVMF_CODE_4M.fd\",\"node-name\":"
            "\"libvirt-pflash0-storage\"}: Could not open '/usr/share/OVMF/OVMF_CODE_4M.fd': No such file or directory")
    assert rule_for_error(text) == "paths.boot-files"


def test_the_first_candidate_is_the_most_specific():
    assert rule_for_error("error: Network not found: no network with matching name 'glnet'") == \
        "network.libvirt-network"


def test_error_patterns_sit_on_their_checks_with_unique_ranks():
    """ERROR_RULES is the checks' own `explains`, lowest rank first; no two patterns share a rank, so the
    order between any two is written down, not left to the order the families happen to load in."""
    from migcheck.checks.errors import ERROR_RULES

    ranked = [(rank, c.id, pattern) for c in all_checks() for rank, pattern in c.explains]
    ranks = [rank for rank, _, _ in ranked]
    assert len(ranks) == len(set(ranks)), sorted(r for r in ranks if ranks.count(r) > 1)
    assert [(p.pattern, rule) for p, rule in ERROR_RULES] == [(p, cid) for _, cid, p in sorted(ranked)]
    assert len(ERROR_RULES) > 40


def test_every_error_pattern_has_a_recorded_sample_text():
    """Each pattern matches some text of data/error_texts.json, so the order test covers it."""
    import json
    from pathlib import Path

    texts = [t["text"] for t in json.loads((Path(__file__).parent / "data" / "error_texts.json").read_text())["texts"]]
    from migcheck.checks.errors import ERROR_RULES

    for pattern, rule in ERROR_RULES:
        assert any(pattern.search(t) for t in texts), f"{rule}: no sample text matches {pattern.pattern!r}"
