"""UEFI guests and emulated TPMs, each paired with a real `virsh migrate` between two lab hosts.

The guests have no OS: OVMF sits in its boot manager, which is enough for what migration does with
the firmware flash (pflash0, the loader), the variable store (pflash1, the NVRAM) and swtpm.
UEFI guests run under TCG: under this machine's nested KVM, OVMF stops at once (the guest pauses,
reason unknown) and KVM offers no SMM, which secure boot needs.

Texts virsh printed (libvirt 9.0, QEMU 7.2, this lab), by scenario:

| scenario | error |
|---|---|
| loader missing on the target | internal error: process exited while connecting to monitor: ... -blockdev {..."node-name":"libvirt-pflash0-storage"...}: Could not open 'PATH': No such file or directory |
| loader of another size (2 MiB build on the target, 4 MiB on the source) | internal error: qemu unexpectedly closed the monitor: ... Size mismatch: system.flash0: 0x37c000 != 0x1e0000: Invalid argument (other runs: operation failed: job 'migration out' failed: Unable to write to socket: Bad file descriptor, or: Connection reset by peer) |
| NVRAM of another size on the target | ... Size mismatch: system.flash1: 0x84000 != 0x20000: Invalid argument (or the broken stream above) |
| NVRAM and its template missing on the target (also: secure boot or firmware='efi' with OVMF missing there) | Failed to open file 'TEMPLATE': No such file or directory |
| swtpm missing on the target | unsupported configuration: TPM version '2.0' is not supported |
| TPM state on shared storage (fuse.glusterfs over /var/lib/libvirt/swtpm), swtpm 0.7 | this function is not supported by the connection driver: the running swtpm does not support migration with shared storage |

What migrates: the NVRAM missing on the target with its template there (libvirt creates the file, and
QEMU writes the source's variables into it: the target's file, created from a template without the
Microsoft keys, holds them afterwards); a loader of the same size but another build; `<os firmware='efi'>` onto a
target with no firmware descriptors at all (libvirt 9.0 wrote the chosen loader into the live XML and
does not choose again); secure boot (secboot loader, Microsoft-keys template, SMM); a TPM 2.0
emulator with its state in the host's own /var/lib/libvirt/swtpm (the state arrives on the target).

Not shown here: a TPM state on shared storage that migrates (needs swtpm >= 0.8; Debian 12 has 0.7),
and the libvirt 11.3 host with UEFI guests (its root has no ovmf package).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest

from tests.lab import HostSpec, Lab
from tests.lab.fixtures import require_lab
from tests.lab.pairing import guest, pair

pytestmark = pytest.mark.lab

PREFIX = "mcefi"
SUBNET = "10.251.77.128/26"
STATE_DIR = Path("/var/tmp/migcheck-lab-mcefi")
OVMF = "/usr/share/OVMF"
BOOT = "/var/lib/libvirt/boot"  # private to each lab host: a file there exists on one host only
NVRAM_DIR = "/var/lib/libvirt/qemu/nvram"
# the race lost: virsh reports only the source's broken stream ("... Bad file descriptor", "... Connection reset
# by peer", both seen for the same scenario)
BROKEN_STREAM = "job 'migration out' failed: Unable to write to socket"
MS_CERT = b"Microsoft Corporation UEFI CA 2011"  # in OVMF_VARS_4M.ms.fd (enrolled keys), not in OVMF_VARS_4M.fd
SWTPM_TOOLS = ("/usr/bin/swtpm", "/usr/bin/swtpm_setup", "/usr/bin/swtpm_ioctl")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_lab()
    seed = Path("/var/tmp/migcheck-lab/cache")
    if seed.is_dir() and not (STATE_DIR / "cache").exists():
        import shutil

        shutil.copytree(seed, STATE_DIR / "cache")
    lab = Lab([HostSpec("efi-a"), HostSpec("efi-b")], prefix=PREFIX, subnet=SUBNET, state_dir=STATE_DIR)
    with lab:
        inodes = lab.netns_inodes()
        yield lab
    for xml in Path("/tmp").glob("efi-*.xml"):
        xml.unlink(missing_ok=True)
    assert not lab.leftovers(inodes), lab.leftovers(inodes)


def hosts(lab: Lab):
    return lab.host("efi-a"), lab.host("efi-b")


def efi_guest(lab: Lab, name: str, loader: str, template: str, *, secure: bool = False) -> str:
    sec = " secure='yes'" if secure else ""
    return lab.guest_xml(name, memory_mib=256, kvm=False, features_xml="<smm state='on'/>" if secure else "",
                         os_xml=f"<loader readonly='yes'{sec} type='pflash'>{loader}</loader>"
                                f"<nvram template='{template}'/>")


def nvram_of(name: str) -> str:
    return f"{NVRAM_DIR}/{name}_VARS.fd"


@contextlib.contextmanager
def files(lab: Lab, *placed: tuple) -> Iterator[None]:
    """Copy files on given hosts ((host, dst, src), ...) before, remove them from every host after."""
    dsts = sorted({dst for _, dst, _ in placed})
    try:
        for h, dst, src in placed:
            h.run(["mkdir", "-p", str(Path(dst).parent)], check=True)
            h.run(["cp", src, dst], check=True)
        yield
    finally:
        for h in lab.hosts:
            h.run(["rm", "-f", "--", *dsts])


@contextlib.contextmanager
def hidden(host, *paths: str) -> Iterator[None]:
    """Hide paths on this lab host only: an empty tmpfs over a dir, an empty non-executable file over a
    file, mounted in the host's own mount namespace (this machine keeps its files)."""
    empty = "/run/mcefi-empty"
    host.write_file(empty, "", mode=0o644)
    done = []
    try:
        for p in paths:
            if host.run(["test", "-d", p]).returncode == 0:
                host.run(["mount", "-t", "tmpfs", "-o", "size=1m", "mcefi-hidden", p], check=True)
            else:
                host.run(["mount", "--bind", empty, p], check=True)
            done.append(p)
        yield
    finally:
        for p in reversed(done):
            host.run(["umount", p])


# ------------------------------------------------------------------ NVRAM (paths.nvram)


def test_nvram_missing_on_the_target_is_ok_and_the_guests_variables_arrive(lab):
    """The template path holds the Microsoft-keys store on the source and the empty store on the target:
    libvirt creates the target's NVRAM from the empty one, yet after the move it holds the Microsoft
    certificates, which only the migration stream can have brought. (Not compared byte for byte with the
    source's file: the guest keeps writing its variables on the target.)"""
    a, b = hosts(lab)
    name, tpl = "efi-nv", f"{BOOT}/efi-nv-vars.fd"
    with files(lab, (a, tpl, f"{OVMF}/OVMF_VARS_4M.ms.fd"), (b, tpl, f"{OVMF}/OVMF_VARS_4M.fd")):
        with guest(lab, a, name, efi_guest(lab, name, f"{OVMF}/OVMF_CODE_4M.fd", tpl), paused=False):
            assert b.run(["test", "-e", nvram_of(name)]).returncode != 0
            assert MS_CERT not in Path(f"{OVMF}/OVMF_VARS_4M.fd").read_bytes()
            out = pair(lab, a, b, name, ["--live"], expect="ok")
            assert out.migrated, out.migrate_error
            assert "paths.nvram" in out.rules("info")
            arrived = b.run(["grep", "-c", "-a", MS_CERT.decode(), nvram_of(name)])
            assert arrived.returncode == 0, f"the source's enrolled keys are not in the target's NVRAM: {arrived}"


def test_nvram_and_its_template_missing_on_the_target_is_blocked_and_fails(lab):
    a, b = hosts(lab)
    name, tpl = "efi-tpl", f"{BOOT}/efi-tpl-vars.fd"
    with files(lab, (a, tpl, f"{OVMF}/OVMF_VARS_4M.fd")):
        with guest(lab, a, name, efi_guest(lab, name, f"{OVMF}/OVMF_CODE_4M.fd", tpl)):
            pair(lab, a, b, name, ["--live"], expect="blocked", expect_rule="paths.nvram",
                 expect_error=f"Failed to open file '{tpl}': No such file or directory")


def test_nvram_present_on_the_target_without_the_template_is_ok_and_migrates(lab):
    a, b = hosts(lab)
    name, tpl = "efi-tpl2", f"{BOOT}/efi-tpl2-vars.fd"
    with files(lab, (a, tpl, f"{OVMF}/OVMF_VARS_4M.fd"), (b, nvram_of(name), f"{OVMF}/OVMF_VARS_4M.fd")):
        with guest(lab, a, name, efi_guest(lab, name, f"{OVMF}/OVMF_CODE_4M.fd", tpl)):
            out = pair(lab, a, b, name, ["--live"], expect="ok")
            assert "paths.nvram" not in out.rules()


def test_nvram_of_another_size_on_the_target_is_blocked_and_fails(lab):
    """A stale 128 KiB store (the 2 MiB OVMF build's) where the guest has a 528 KiB one."""
    a, b = hosts(lab)
    name = "efi-nvsz"
    with files(lab, (b, nvram_of(name), f"{OVMF}/OVMF_VARS.fd")):
        with guest(lab, a, name, efi_guest(lab, name, f"{OVMF}/OVMF_CODE_4M.fd", f"{OVMF}/OVMF_VARS_4M.fd")):
            pair(lab, a, b, name, ["--live"], expect="blocked", expect_rule="paths.nvram",
                 expect_error="Size mismatch: system.flash1", vague_errors=(BROKEN_STREAM,))


# ------------------------------------------------------------------ loader (paths.boot-files)


def test_loader_missing_on_the_target_is_blocked_and_fails(lab):
    a, b = hosts(lab)
    name, code = "efi-ldr", f"{BOOT}/efi-ldr-code.fd"
    with files(lab, (a, code, f"{OVMF}/OVMF_CODE_4M.fd")):
        with guest(lab, a, name, efi_guest(lab, name, code, f"{OVMF}/OVMF_VARS_4M.fd")):
            pair(lab, a, b, name, ["--live"], expect="blocked", expect_rule="paths.boot-files",
                 expect_error=f"Could not open '{code}': No such file or directory")


@pytest.mark.parametrize("target_build,expect", [("OVMF_CODE.fd", "blocked"), ("OVMF_CODE_4M.secboot.fd", "ok")])
def test_loader_of_another_build_on_the_target(lab, target_build, expect):
    """Another size (the 2 MiB build): refused. The same size, another build: migrates (the guest runs the
    source's firmware, which travels in memory, until it reboots)."""
    a, b = hosts(lab)
    name = "efi-ldr2" if expect == "blocked" else "efi-ldr3"
    code = f"{BOOT}/{name}-code.fd"
    with files(lab, (a, code, f"{OVMF}/OVMF_CODE_4M.fd"), (b, code, f"{OVMF}/{target_build}")):
        with guest(lab, a, name, efi_guest(lab, name, code, f"{OVMF}/OVMF_VARS_4M.fd")):
            out = pair(lab, a, b, name, ["--live"], expect=expect,
                       expect_rule="paths.boot-files" if expect == "blocked" else None,
                       expect_error="Size mismatch: system.flash0" if expect == "blocked" else None,
                       vague_errors=(BROKEN_STREAM,))
            assert out.migrated is (expect == "ok"), out.migrate_error


# ------------------------------------------------------------------ firmware auto-selection, secure boot


SECBOOT = ("<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.secboot.fd</loader>"
           "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'/>")


def _firmware_guest(lab: Lab, name: str, how: str) -> str:
    if how == "auto":
        return lab.guest_xml(name, memory_mib=256, kvm=False, os_attrs="firmware='efi'")
    return lab.guest_xml(name, memory_mib=256, kvm=False, os_xml=SECBOOT, features_xml="<smm state='on'/>")


@pytest.mark.parametrize("how", ["auto", "secure-boot"])
def test_uefi_onto_a_target_without_firmware_descriptors_is_ok_and_migrates(lab, how):
    """<os firmware='efi'>: libvirt 9.0 picked the secure-boot, Microsoft-keys build from its descriptors
    and wrote it into the live XML; the target does not choose again (it has no descriptors at all)."""
    a, b = hosts(lab)
    name = f"efi-fw-{how}"
    with guest(lab, a, name, _firmware_guest(lab, name, how), paused=False):
        live = a.virsh("dumpxml", name).stdout
        assert "OVMF_CODE_4M" in live and "secure='yes'" in live, live
        with hidden(b, "/usr/share/qemu/firmware"):
            pair(lab, a, b, name, ["--live"], expect="ok")


@pytest.mark.parametrize("how", ["auto", "secure-boot"])
def test_uefi_onto_a_target_without_ovmf_is_blocked_and_fails(lab, how):
    """No OVMF package on the target: the loader and the template are missing; libvirt stops at the
    template, before QEMU would miss the loader."""
    a, b = hosts(lab)
    name = f"efi-noovmf-{how}"
    with guest(lab, a, name, _firmware_guest(lab, name, how)):
        with hidden(b, OVMF):
            out = pair(lab, a, b, name, ["--live"], expect="blocked", expect_rule="paths.nvram",
                       expect_error=f"Failed to open file '{OVMF}/OVMF_VARS_4M.ms.fd': No such file or directory")
            assert "paths.boot-files" in out.rules("block")


# ------------------------------------------------------------------ vTPM (devices.tpm-emulator)


TPM = "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"


def test_tpm_emulator_with_private_state_is_ok_and_its_state_arrives(lab):
    a, b = hosts(lab)
    name = "efi-tpm"
    with guest(lab, a, name, lab.guest_xml(name, extra_devices=TPM)):
        uuid = a.virsh("domuuid", name).stdout.strip()
        state = f"/var/lib/libvirt/swtpm/{uuid}/tpm2/tpm2-00.permall"
        assert b.run(["test", "-e", state]).returncode != 0
        out = pair(lab, a, b, name, ["--live"], expect="ok")
        assert "devices.tpm-emulator" not in out.rules()
        assert b.run(["test", "-s", state]).returncode == 0, f"no TPM state on {b.name} after the move"


def test_tpm_emulator_without_swtpm_on_the_target_is_blocked_and_fails(lab):
    """swtpm's files are there but empty and not executable: a stat would call them installed; libvirt
    (and its domain capabilities) do not."""
    a, b = hosts(lab)
    name = "efi-notpm"
    with guest(lab, a, name, lab.guest_xml(name, extra_devices=TPM)):
        with hidden(b, *SWTPM_TOOLS):
            caps = b.virsh("domcapabilities", "--machine", "q35").stdout
            assert "<value>emulator</value>" not in caps
            pair(lab, a, b, name, ["--live"], expect="blocked", expect_rule="devices.tpm-emulator",
                 expect_error="unsupported configuration: TPM version '2.0' is not supported")


SHARED_BACKING = Path("/var/tmp/migcheck-lab-mcefi-swtpm")


@contextlib.contextmanager
def shared_swtpm_dir(lab: Lab) -> Iterator[None]:
    """/var/lib/libvirt/swtpm on every host: one backing directory through a FUSE mount of type
    fuse.glusterfs (bindfs), which libvirt's virFileIsSharedFS counts as shared (see LAB.md)."""
    import shutil

    if not shutil.which("bindfs"):
        pytest.fail("bindfs is missing (the Makefile's apt target installs it)", pytrace=False)
    SHARED_BACKING.mkdir(mode=0o711, exist_ok=True)
    mounted = []
    try:
        for h in lab.hosts:
            h.run(["mkdir", "-p", "/var/lib/libvirt/swtpm"], check=True)
            h.run(["bindfs", "-o", "allow_other,subtype=glusterfs,fsname=mcefi-swtpm", str(SHARED_BACKING),
                   "/var/lib/libvirt/swtpm"], check=True)
            mounted.append(h)
        yield
    finally:
        for h in mounted:
            h.run(["fusermount", "-u", "/var/lib/libvirt/swtpm"])
        shutil.rmtree(SHARED_BACKING, ignore_errors=True)


def test_tpm_emulator_with_state_on_shared_storage_is_blocked_and_fails(lab):
    """swtpm 0.7 (Debian 12) cannot migrate with shared state (that needs 0.8's --migration): libvirt refuses
    on the source. The same guest with private state migrates (above)."""
    a, b = hosts(lab)
    name = "efi-tpmshared"
    with shared_swtpm_dir(lab):
        with guest(lab, a, name, lab.guest_xml(name, extra_devices=TPM)):
            pair(lab, a, b, name, ["--live"], expect="blocked", expect_rule="devices.tpm-emulator",
                 expect_error="the running swtpm does not support migration with shared storage")
