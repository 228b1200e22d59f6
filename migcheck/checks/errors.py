"""Which check predicts a given libvirt/QEMU migration error text.

Used by ``migcheck migrate`` when a migration fails anyway (to say whether a
check matched, and to record misses), and by the lab pairing
(``tests/lab/pairing.py``) to prove that a blocked verdict names the check the
real failure belongs to. Some texts belong to more than one check (a socket
that cannot bind may be a console's or a VNC server's): ``rules_for_error``
gives every candidate, in table order.
"""

from __future__ import annotations

import re

ERROR_RULES: list[tuple[re.Pattern[str], str]] = [(re.compile(p, re.I), rule) for p, rule in [
    (r"invtsc", "cpu.invtsc-without-tsc-frequency"),
    (r"TSC frequency", "cpu.tsc-frequency-target"),
    (r"unknown CPU feature|missing features|does not provide required features|CPU is incompatible|"
     r"guest CPU doesn't match", "cpu.guest-cpu-not-on-target"),
    (r"does not support machine type|unsupported machine type", "platform.machine-type-unknown"),
    (r"Attempt to migrate guest to the same host", "platform.same-host"),
    (r"resolved to localhost", "platform.target-hostname-localhost"),
    (r"Unable to resolve address '|address resolution failed for|unable to connect to server at '[^']*:\d+'|"
     r"Failed to connect to '[^']*:\d+'", "network.migration-address"),
    (r"domain is not running", "platform.guest-not-running"),
    (r"cannot migrate domain with I/O error", "platform.paused-on-io-error"),
    (r"another migration job|cannot acquire state change lock", "state.job-active"),
    (r"active block job", "state.block-job"),
    (r"cannot migrate domain with \d+ snapshots", "devices.snapshots"),
    (r"shmem device|ivshmem|feature 'peer mode'", "devices.shmem-not-master"),
    (r"non-migratable device", "devices.non-migratable-device"),
    (r"virtiofs", "devices.virtiofs"),
    (r"VirtFS export path", "devices.9p-share"),
    (r"transient disk", "devices.transient-disk"),
    (r"hostdev|VFIO", "devices.hostdev"),
    (r"does not support live migration", "devices.image-format"),
    (r"dimm info lacks", "devices.dimm-address"),
    (r"Migration without shared storage is unsafe", "storage.not-shared"),
    (r"no storage pool with matching target path|pre-creation of storage targets|cannot precreate storage|"
     r"Source and target image have different sizes|Image is not in qcow2 format|"
     r"'block-export-add': Block node is read-only|Failed to get \"write\" lock", "storage.copy-precreate"),
    (r"Target .* does not match source|Failed to open file '|XML error|\(domain_definition\):\d+:", "flags.destination-xml"),
    (r"cache other than none or directsync", "storage.unsafe-cache"),
    (r"Cannot get interface MTU", "network.bridge-missing"),
    (r"Cannot get interface MTU", "network.libvirt-network"),  # a target network's own bridge missing
    (r"Unable to get index for interface", "network.direct-device-missing"),
    (r"Unable to get index for interface", "network.libvirt-network"),  # a target network's own NIC missing
    (r"Network not found|network '.*' is not active", "network.libvirt-network"),
    (r"nwfilter|filter '.*' not found|referenced filter '.*' is missing", "network.nwfilter-missing"),
    (r"hugetlbfs", "resources.hugepages"),
    (r"VIR_MIGRATE_TLS", "flags.tls-required"),
    (r"Unable to access credentials", "flags.tls-certificates"),
    (r"mutually exclusive|without using peer2peer flag|post-copy (migration )?is not supported with|"
     r"offline migration must be specified with the persistent flag|tunnelled offline migration does not make|"
     r"offline migration cannot handle non-shared storage|argument key 'host' must not have null value|"
     r"disk target .* not found",
     "flags.rejected-combination"),
    (r"libvirt-pflash\d-\w+.*Could not open '|Size mismatch: system\.flash0", "paths.boot-files"),
    (r"Size mismatch: system\.flash1|Failed to open file '.*': No such file or directory", "paths.nvram"),
    (r"TPM version '.*' is not supported|TPM backend type|TPM model '.*' is not supported|"
     r"swtpm does not support migration with shared storage", "devices.tpm-emulator"),
    (r"Cannot access storage file|Could not open '|unable to stat: .*No such file", "storage.missing-on-target"),
    (r"Unable to open file: .*No such file|Unable to bind to UNIX socket path|unable to stat: .*No such file|"
     r"Failed to connect to '", "paths.chardev-directory"),
    (r"failed to open '.*': No such file", "devices.filesystem-source-missing"),
    (r"Failed to bind socket: Cannot assign requested address|Failed to find an available port|"
     r"no network with matching name", "paths.graphics-listen"),
    (r"Failed to bind socket: Cannot assign requested address|"
     r"unable to connect to server at '[^']*:\d+': Connection refused", "network.migration-listen-address"),
    (r"Failed to bind socket|Address already in use", "paths.chardev-tcp-bind"),
    (r"already exists with uuid|is already active|already defined with uuid", "platform.name-collision"),
]]


def rules_for_error(text: str) -> list[str]:
    """Every check whose failure this error text can be, most specific first."""
    return list(dict.fromkeys(rule for pattern, rule in ERROR_RULES if pattern.search(text)))


def rule_for_error(text: str) -> str | None:
    """The first check this error text belongs to, or None: no check predicts it."""
    rules = rules_for_error(text)
    return rules[0] if rules else None
