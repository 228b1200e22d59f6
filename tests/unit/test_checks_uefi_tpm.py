"""paths.boot-files, paths.nvram and devices.tpm-emulator on real data.

The domain capabilities are a lab host's (libvirt 9.0, QEMU 7.2, kvm, pc-q35-7.2), saved as
`virsh domcapabilities` printed them: once with swtpm installed, once with swtpm's files on the host
made empty and not executable. Sizes are the Debian ovmf 2022.11 files': OVMF_CODE_4M.fd 3653632,
OVMF_CODE.fd 1966080, OVMF_VARS_4M.fd 540672, OVMF_VARS.fd 131072. The quoted texts are the lab's
(tests/lab/test_catalogue_uefi_tpm.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migcheck.facts.capabilities_xml import parse_domain_capabilities_xml
from migcheck.probe.raw import PathStat, domcaps_key
from tests.unit.factories import DOMCAPS_72, guest_xml, run, source, target

DATA = Path(__file__).with_name("data")
LAB_DOMCAPS = (DATA / "domcaps-lab-libvirt9.0-kvm-q35.xml").read_text()
LAB_DOMCAPS_NO_SWTPM = (DATA / "domcaps-lab-libvirt9.0-kvm-q35-no-swtpm.xml").read_text()
MACHINE = "pc-q35-7.2"
KEY = domcaps_key("/usr/bin/qemu-system-x86_64", "x86_64", MACHINE, "kvm")
EMU = "/usr/bin/qemu-system-x86_64"
CODE_4M, CODE_2M = "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd"
VARS_4M = "/usr/share/OVMF/OVMF_VARS_4M.fd"
NVRAM = "/var/lib/libvirt/qemu/nvram/vm1_VARS.fd"
TPM = "<tpm model='tpm-crb'><backend type='emulator' version='{v}'/></tpm>"


def st(path, size=None, exists=True):
    return {path: PathStat(path=path, exists=exists, size=size if exists else None)}


def efi_xml(loader=CODE_4M, template=VARS_4M, devices=""):
    xml = guest_xml(machine=MACHINE, devices=devices)
    tpl = f" template='{template}'" if template else ""
    return xml.replace("hvm</type></os>", f"hvm</type><loader readonly='yes' type='pflash'>{loader}</loader>"
                                          f"<nvram{tpl}>{NVRAM}</nvram></os>")


def evaluate(xml, src_paths, dst_paths, domcaps=LAB_DOMCAPS, flags="--live"):
    src = source(xml, domcaps={KEY: LAB_DOMCAPS})
    src.paths = src_paths
    dst = target(paths=st(EMU) | dst_paths, domcaps_xml={KEY: domcaps} if domcaps is not None else {})
    return run(src, dst, flags)


def findings(report, rule):
    return [f for f in report.findings if f.rule == rule]


# ------------------------------------------------------------------ parsing the domain capabilities


def test_lab_domcaps_list_the_emulator_and_the_firmware():
    dc = parse_domain_capabilities_xml(LAB_DOMCAPS)
    assert dc.tpm.supported and "emulator" in dc.tpm.backend_models and dc.tpm.backend_versions == ["1.2", "2.0"]
    assert dc.firmware_values == ["efi"]
    assert CODE_4M in dc.loader_values and "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd" in dc.loader_values


def test_lab_domcaps_without_swtpm_list_only_passthrough_and_no_versions():
    dc = parse_domain_capabilities_xml(LAB_DOMCAPS_NO_SWTPM)
    assert dc.tpm.supported and dc.tpm.backend_models == ["passthrough"] and dc.tpm.backend_versions is None


def test_domcaps_without_a_tpm_element_say_nothing():
    text = LAB_DOMCAPS[:LAB_DOMCAPS.index("<tpm ")] + LAB_DOMCAPS[LAB_DOMCAPS.index("</tpm>") + 6:]
    assert parse_domain_capabilities_xml(text).tpm is None


# ------------------------------------------------------------------ devices.tpm-emulator


TPM_CASES = [
    # the domain capabilities decide, whatever a stat of the binary says
    ("swtpm-offered-binary-not-found", LAB_DOMCAPS, False, "2.0", None),
    ("swtpm-not-offered-binary-present", LAB_DOMCAPS_NO_SWTPM, True, "2.0", "block"),
    ("version-not-offered", DOMCAPS_72, True, "1.2", "block"),  # the corpus' 7.2 caps list 2.0 only
    ("version-offered", DOMCAPS_72, True, "2.0", None),
    # no <tpm> in the domain capabilities (older libvirt), or none fetched: the stat decides
    ("no-tpm-caps-binary-missing", "strip", False, "2.0", "block"),
    ("no-tpm-caps-binary-present", "strip", True, "2.0", None),
    ("no-domcaps-binary-unprobed", None, None, "2.0", "unknown"),
]


@pytest.mark.parametrize("name,domcaps,swtpm_stat,version,expected", TPM_CASES, ids=[c[0] for c in TPM_CASES])
def test_tpm_emulator(name, domcaps, swtpm_stat, version, expected):
    if domcaps == "strip":
        domcaps = LAB_DOMCAPS[:LAB_DOMCAPS.index("<tpm ")] + LAB_DOMCAPS[LAB_DOMCAPS.index("</tpm>") + 6:]
    paths = {} if swtpm_stat is None else st("/usr/bin/swtpm", 1000, exists=swtpm_stat) | st(
        "/usr/local/bin/swtpm", exists=False)
    report = evaluate(guest_xml(machine=MACHINE, devices=TPM.format(v=version)), {}, paths, domcaps=domcaps)
    found = findings(report, "devices.tpm-emulator")
    if expected is None:
        assert not found, found
        return
    assert [f.severity.value for f in found] == [expected], found
    if name == "swtpm-not-offered-binary-present":
        assert "TPM version '2.0' is not supported" in found[0].message  # the lab's text
    if name == "version-not-offered":
        assert "TPM version '1.2' is not supported" in found[0].message


# ------------------------------------------------------------------ paths.nvram


def test_nvram_missing_with_its_template_is_info_only():
    report = evaluate(efi_xml(), st(CODE_4M, 3653632) | st(NVRAM, 540672),
                      st(CODE_4M, 3653632) | st(VARS_4M, 540672) | st(NVRAM, exists=False))
    found = findings(report, "paths.nvram")
    assert [f.severity.value for f in found] == ["info"], found
    assert "creates it from" in found[0].message
    assert not findings(report, "paths.boot-files")


def test_nvram_and_template_missing_is_blocked_with_libvirts_text():
    report = evaluate(efi_xml(), {}, st(CODE_4M, 3653632) | st(VARS_4M, exists=False) | st(NVRAM, exists=False))
    found = findings(report, "paths.nvram")
    assert [f.severity.value for f in found] == ["block"]
    assert f"Failed to open file '{VARS_4M}': No such file or directory" in found[0].message


def test_nvram_of_another_size_is_blocked_with_qemus_text():
    report = evaluate(efi_xml(), st(NVRAM, 540672), st(CODE_4M) | st(NVRAM, 131072))
    found = findings(report, "paths.nvram")
    assert [f.severity.value for f in found] == ["block"]
    assert "Size mismatch: system.flash1: 0x84000 != 0x20000" in found[0].message  # as the lab printed it


def test_nvram_of_the_same_size_is_ok():
    report = evaluate(efi_xml(), st(NVRAM, 540672), st(CODE_4M) | st(NVRAM, 540672))
    assert not findings(report, "paths.nvram")


def test_nvram_missing_without_a_template_is_a_risk():
    report = evaluate(efi_xml(template=None), {}, st(CODE_4M) | st(NVRAM, exists=False))
    assert [f.severity.value for f in findings(report, "paths.nvram")] == ["risk"]


def test_nvram_unprobed_is_unknown():
    report = evaluate(efi_xml(), {}, st(CODE_4M))
    assert [f.severity.value for f in findings(report, "paths.nvram")] == ["unknown"]


# ------------------------------------------------------------------ paths.boot-files


def test_loader_missing_is_blocked_with_qemus_text():
    report = evaluate(efi_xml(), {}, st(CODE_4M, exists=False) | st(NVRAM))
    found = findings(report, "paths.boot-files")
    assert [f.severity.value for f in found] == ["block"]
    assert f"Could not open '{CODE_4M}': No such file or directory" in found[0].message


def test_loader_of_another_size_is_blocked_with_qemus_text():
    loader = "/var/lib/libvirt/boot/code.fd"
    report = evaluate(efi_xml(loader=loader), st(loader, 3653632), st(loader, 1966080) | st(NVRAM))
    found = findings(report, "paths.boot-files")
    assert [f.severity.value for f in found] == ["block"]
    assert "Size mismatch: system.flash0: 0x37c000 != 0x1e0000" in found[0].message  # as the lab printed it


@pytest.mark.parametrize("src_paths", [st(CODE_4M, 3653632), {}], ids=["same-size", "source-size-unknown"])
def test_loader_of_the_same_size_or_unknown_source_size_is_ok(src_paths):
    report = evaluate(efi_xml(), src_paths, st(CODE_4M, 3653632) | st(NVRAM))
    assert not findings(report, "paths.boot-files")


def test_offline_skips_the_uefi_checks():
    report = evaluate(efi_xml(), {}, st(CODE_4M, exists=False) | st(NVRAM, exists=False), flags="--offline --persistent")
    assert not findings(report, "paths.boot-files") and not findings(report, "paths.nvram")


# ------------------------------------------------------------------ devices.tpm-emulator: state on shared storage

GLUSTER_SWTPM = ("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"  # as the lab's bindfs mount shows it
                 "87 50 0:44 / /var/lib/libvirt/swtpm rw,nosuid,nodev,relatime - fuse.glusterfs "
                 "/var/tmp/tpmback rw,user_id=0,group_id=0,default_permissions,allow_other\n")
STATUS = "<domstatus state='running' reason='booted' pid='4242'><domain type='kvm'><devices><tpm model='tpm-crb'>" \
         "<backend type='emulator' version='2.0'/>{private}</tpm></devices></domain></domstatus>"
CAN = "<privateData><swtpm><can_migrate_shared_storage/></swtpm></privateData>"


@pytest.mark.parametrize("mountinfo,status,expected", [
    (GLUSTER_SWTPM, STATUS.format(private=""), "block"),  # swtpm 0.7 (the lab's): refused
    (GLUSTER_SWTPM, STATUS.format(private=CAN), None),  # swtpm >= 0.8 told libvirt it can
    (GLUSTER_SWTPM, None, "risk"),  # status XML not read: cannot tell which swtpm runs
    (None, STATUS.format(private=""), None),  # local state (the factories' ext4 root)
], ids=["shared-swtpm-0.7", "shared-swtpm-can", "shared-status-unread", "local"])
def test_tpm_state_on_shared_storage(mountinfo, status, expected):
    src = source(guest_xml(machine=MACHINE, devices=TPM.format(v="2.0")), domcaps={KEY: LAB_DOMCAPS},
                 status_xml=status)
    if mountinfo:
        src.files["/proc/self/mountinfo"] = mountinfo
    dst = target(paths=st(EMU), domcaps_xml={KEY: LAB_DOMCAPS})
    found = findings(run(src, dst, "--live"), "devices.tpm-emulator")
    assert [f.severity.value for f in found] == ([expected] if expected else []), found
    if expected == "block":
        assert "the running swtpm does not support migration with shared storage" in found[0].message
