"""devices.non-migratable-device: pass and fail fixtures (the lab's virtio-sound guest, issue 8)."""

from migcheck.checks.devices import qemu_device_drivers
from migcheck.report.model import Verdict
from tests.unit.factories import argv, guest_xml, rules_of, run, source, target

RULE = "devices.non-migratable-device"
NEW = dict(libvirt=11_003_000, qemu=10_000_002)
VIRTIO_SOUND = "<sound model='virtio' streams='2'><alias name='sound0'/></sound>"
ICH9_SOUND = "<sound model='ich9'><alias name='sound0'/></sound>"


def _argv(device: str) -> list[str]:
    return argv("qemu64") + ["-device", device]


def test_virtio_sound_on_the_running_qemu_blocks():
    src = source(guest_xml(devices=VIRTIO_SOUND), _argv(
        '{"driver":"virtio-sound-pci","id":"sound0","audiodev":"audio1","streams":2,"bus":"pci.1","addr":"0x0"}'),
        **NEW)
    r = run(src, target())
    f = next(f for f in r.findings if f.rule == RULE)
    assert r.verdict == Verdict.BLOCKED and f.severity.value == "block"
    assert "non-migratable device: .../virtio-sound-device" in f.message and "QEMU 10.0.2" in f.message
    assert f.evidence[0] == "running QEMU: -device driver virtio-sound-pci"


def test_hda_sound_passes():
    src = source(guest_xml(devices=ICH9_SOUND), _argv('{"driver":"ich9-intel-hda","id":"sound0","bus":"pcie.0"}'))
    assert RULE not in rules_of(run(src, target()))


def test_without_the_command_line_the_live_xml_decides():
    r = run(source(guest_xml(devices=VIRTIO_SOUND), None, **NEW), target())
    f = next(f for f in r.findings if f.rule == RULE)
    assert f.evidence[0] == "domain XML: <sound model='virtio'>"
    assert RULE not in rules_of(run(source(guest_xml(devices=ICH9_SOUND), None), target()))


def test_offline_migration_is_not_affected():
    src = source(guest_xml(devices=VIRTIO_SOUND), None, state=5, reason=0, **NEW)
    assert RULE not in rules_of(run(src, target(), "--offline --persistent"))


def test_device_drivers_in_both_syntaxes():
    argv_ = ["qemu", "-device", '{"driver":"virtio-sound-pci","id":"s"}', "-device", "virtio-sound-device,id=x",
             "-device", "{not json", "-netdev", '{"driver":"virtio-sound-pci"}']
    assert qemu_device_drivers(argv_) == ["virtio-sound-pci", "virtio-sound-device"]
