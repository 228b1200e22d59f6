"""Which check predicts a given libvirt/QEMU migration error text.

Used by ``migcheck migrate`` when a migration fails anyway (to say whether a
check matched, and to record misses), and by the lab tests to prove that a
blocked verdict names the check the real failure belongs to.
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
    (r"domain is not running", "platform.guest-not-running"),
    (r"cannot migrate domain with I/O error", "platform.paused-on-io-error"),
    (r"another migration job|cannot acquire state change lock", "state.job-active"),
    (r"active block job", "state.block-job"),
    (r"cannot migrate domain with \d+ snapshots", "devices.snapshots"),
    (r"shmem device|ivshmem", "devices.shmem-not-master"),
    (r"virtiofs", "devices.virtiofs"),
    (r"VirtFS export path", "devices.9p-share"),
    (r"transient disk", "devices.transient-disk"),
    (r"hostdev|VFIO", "devices.hostdev"),
    (r"does not support live migration", "devices.image-format"),
    (r"dimm info lacks", "devices.dimm-address"),
    (r"Migration without shared storage is unsafe", "storage.not-shared"),
    (r"cache other than none or directsync", "storage.unsafe-cache"),
    (r"Cannot get interface MTU", "network.bridge-missing"),
    (r"Network not found|network '.*' is not active", "network.libvirt-network"),
    (r"nwfilter|filter '.*' not found", "network.nwfilter-missing"),
    (r"hugetlbfs", "resources.hugepages"),
    (r"VIR_MIGRATE_TLS", "flags.tls-required"),
    (r"Cannot access storage file|Could not open '", "storage.missing-on-target"),
    (r"already exists with uuid|is already active|already defined with uuid", "platform.name-collision"),
]]


def rule_for_error(text: str) -> str | None:
    for pattern, rule in ERROR_RULES:
        if pattern.search(text):
            return rule
    return None
