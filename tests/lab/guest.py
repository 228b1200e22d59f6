"""Minimal guests for real migrations, and whether KVM can run them."""

from __future__ import annotations

import fcntl
import functools
import os
import re
import subprocess
from xml.sax.saxutils import escape

KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO, 0x00)


def kvm_usable() -> bool:
    """True when /dev/kvm opens read-write and answers the stable API version.

    MIGCHECK_LAB_TCG=1 forces False, to exercise the TCG path on a KVM machine.
    """
    if os.environ.get("MIGCHECK_LAB_TCG") == "1":
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, KVM_GET_API_VERSION) == 12
    except OSError:
        return False
    finally:
        os.close(fd)


def guest_xml(
    name: str,
    *,
    kvm: bool,
    cpu_xml: str = "",
    extra_devices: str = "",
    memory_mib: int = 64,
    clock_xml: str = "",
    extra_xml: str = "",
    machine: str = "q35",
    os_xml: str = "",
    serial_xml: str = "",
    os_attrs: str = "",
    features_xml: str = "",
) -> str:
    """A diskless 1-vCPU q35 guest: small enough to live-migrate in seconds.

    machine: the machine type, e.g. "pc-q35-7.2" (default: the QEMU's newest q35).
    os_xml: more <os> children, e.g. a direct <kernel>/<initrd>/<cmdline> boot (tests/lab/bootable.py).
    serial_xml: the serial port instead of the default pty serial + console (e.g. a <serial type='file'>
    whose log the test reads).
    os_attrs: attributes of <os> ("firmware='efi'"); features_xml: inside <features> after <acpi/>
    (e.g. "<smm state='on'/>", which secure boot needs).

    cpu_xml / clock_xml / extra_devices / extra_xml (domain-level elements such
    as <memoryBacking>) are raw XML fragments pasted in as given, e.g.
    "<cpu mode='host-passthrough' migratable='off'/>". Start it with
    `virsh start --paused`: a paused guest migrates the same and spares the CPU.
    """
    dtype = "kvm" if kvm else "qemu"
    return f"""<domain type='{dtype}'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{int(memory_mib)}</memory>
  <vcpu>1</vcpu>
  <os{" " + os_attrs if os_attrs else ""}>
    <type arch='x86_64' machine='{escape(machine)}'>hvm</type>
    {os_xml}
  </os>
  <features><acpi/>{features_xml}</features>
  {cpu_xml}
  {clock_xml}
  {extra_xml}
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    {serial_xml or "<serial type='pty'/><console type='pty'/>"}
    <memballoon model='none'/>
    {extra_devices}
  </devices>
</domain>
"""


# MSRs that QEMU 7.2 fails to set on some nested-KVM machines, by the CPU
# feature name libvirt and QEMU use for them.
_MSR_FEATURES = {"0x10a": "arch-capabilities"}


@functools.cache
def host_cpu_quirks(prefix: tuple[str, ...] = ()) -> tuple[str, ...]:
    """CPU features to disable before `-cpu host` guests can start here under KVM.

    On the AMD EPYC machine this lab was built on, QEMU 7.2 with `-cpu host`
    (so also host-passthrough and host-model guests) aborts with "failed to set
    MSR 0x10a" (IA32_ARCH_CAPABILITIES). Disabling that feature fixes it. Probed
    once per process with a stopped QEMU (-S), so costs well under a second.
    prefix: how to reach another QEMU, e.g. a lab host's nsenter + chroot argv.
    """
    if not kvm_usable():
        return ()
    disabled: list[str] = []
    for _ in range(len(_MSR_FEATURES) + 1):
        cpu = ",".join(["host", *(f"-{f}" for f in disabled)])
        argv = [*prefix, "qemu-system-x86_64", "-enable-kvm", "-machine", "q35", "-m", "16",
                "-nodefaults", "-display", "none", "-S", "-cpu", cpu, "-qmp", "stdio"]
        try:
            p = subprocess.run(argv, input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            break
        m = re.search(r"failed to set MSR (0x[0-9a-f]+)", p.stderr)
        feature = _MSR_FEATURES.get(m.group(1)) if m else None
        if not feature or feature in disabled:
            break
        disabled.append(feature)
    return tuple(disabled)


def disable_features_xml(features: tuple[str, ...] | list[str]) -> str:
    """<feature policy='disable' .../> lines, to paste inside a <cpu> element."""
    return "".join(f"<feature policy='disable' name='{escape(f)}'/>" for f in features)
