"""Pass and fail fixtures for the device, storage, network, resource, path, state and flag checks.

Each case names a check, a guest (devices XML and the like), a target edit and
flags, and says whether the check must fire and with which severity.
"""

from __future__ import annotations

import pytest

from migcheck.probe.raw import NetworkInfo, PathStat, PoolInfo, SecretInfo
from tests.unit.factories import DOMCAPS_72, MOUNTINFO, argv, guest_xml, host_files, rules_of, run, source, target

DISK = "<disk type='file' device='disk'><driver name='qemu' type='{fmt}' cache='{cache}'/>" \
       "<source file='{path}'/><target dev='vda' bus='virtio'/>{extra}</disk>"


def disk(path="/var/lib/libvirt/images/vm1.qcow2", fmt="qcow2", cache="none", extra=""):
    return DISK.format(path=path, fmt=fmt, cache=cache, extra=extra)


def exists(*paths, size=1 << 30):
    return {p: PathStat(path=p, exists=True, size=size) for p in paths}


def missing(*paths):
    return {p: PathStat(path=p, exists=False) for p in paths}


EMU = exists("/usr/bin/qemu-system-x86_64")


def qcow2_header(size: int) -> str:
    """The first 32 bytes of a qcow2 (v3) image of that virtual size, hex, as the probe keeps them."""
    return (b"QFI\xfb" + (3).to_bytes(4, "big") + bytes(16) + size.to_bytes(8, "big")).hex()


TLS_CONF_DIR = "/var/lib/libvirt/pki-migrate"
TLS_CONF = f'migrate_tls_x509_cert_dir = "{TLS_CONF_DIR}"\n'
NFS_DISK = "/mnt/nfs/vm1.qcow2"
LOCAL_DISK = "/var/lib/libvirt/images/vm1.qcow2"
BR = "<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br-prod'/><model type='virtio'/></interface>"
NET = "<interface type='network'><mac address='52:54:00:00:00:02'/><source network='prod'{pg}/></interface>"
# Live XML of running guests, as libvirt 9.0 printed it in the lab (tests/lab/test_catalogue_network_state.py):
# an interface on network 'fwd' (forward mode 'bridge' onto br-prod), and one on the macvtap network 'mvnet'.
LIVE_FWD = ("<interface type='bridge'><mac address='52:54:00:92:ee:8e'/>"
            "<source network='fwd' portid='4bce63b9-c0d0-4bc6-8950-ae37fb8ce0d5' bridge='br-prod'/>"
            "<target dev='vnet1'/><model type='virtio'/><alias name='net0'/></interface>")
LIVE_MACVTAP = ("<interface type='direct'><mac address='52:54:00:8f:00:91'/>"
                "<source network='mvnet' portid='159ccc3f-4d9f-4147-a0b6-a19e81e31dae' dev='eth1x' mode='bridge'/>"
                "<target dev='macvtap0'/><model type='virtio'/><alias name='net0'/></interface>")
LIVE_NAT = ("<interface type='network'><mac address='52:54:00:a0:ce:0c'/>"
            "<source network='natnet' portid='84b30458-1b9c-49e7-97cd-691c9b22eb28' bridge='virbr-n1'/>"
            "<target dev='vnet0'/><model type='virtio'/><alias name='net0'/></interface>")
FWD_NET = NetworkInfo(name="fwd", active=True, bridge="br-other", forward_mode="bridge")
MV_NET = NetworkInfo(name="mvnet", active=True, forward_mode="bridge", forward_devs=["eth2x"])
ISO = "/srv/only-on-a/x.iso"


def media(policy, device="cdrom"):
    """A read-only medium as the lab's live XML showed it (index and alias left out)."""
    sp = f" startupPolicy='{policy}'" if policy else ""
    target = {"cdrom": "<target dev='sda' bus='sata'/>", "floppy": "<target dev='fda' bus='fdc'/>"}.get(
        device, "<target dev='vdb' bus='virtio'/>")
    return (f"<disk type='file' device='{device}'><driver name='qemu' type='raw'/><source file='{ISO}'{sp}/>"
            f"<backingStore/>{target}<readonly/></disk>")


SHMEM = "<shmem name='shm0'{role}><model type='ivshmem-plain'/><size unit='M'>4</size></shmem>"
NINEP = "<filesystem type='mount' accessmode='passthrough'><source dir='/srv/share'/><target dir='share'/></filesystem>"
VIRTIOFS = ("<filesystem type='mount'><driver type='virtiofs'/><source dir='/srv/share'/><target dir='share'/>"
            "</filesystem>")
HOSTDEV_PCI = ("<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x03' "
               "slot='0x00' function='0x0'/></source></hostdev>")
HOSTDEV_USB = ("<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source>"
               "</hostdev>")
SERIAL_FILE = "<serial type='file'><source path='/var/log/guests/vm1.log'/><target port='0'/></serial>"
SOCK = "/srv/ext/ext.sock"
UNIX_CHAN = ("<channel type='unix'><source mode='{mode}' path='{path}'>{rc}</source>"
             "<target type='virtio' name='org.example.ext'/></channel>")
GUEST_AGENT = ("<channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-7-vm1/"
               "org.qemu.guest_agent.0'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>")
UNIX_HEAD = ("Num       RefCount Protocol Flags    Type St Inode Path\n"
             "0000000000000000: 00000002 00000000 00010000 0001 01 20001 /run/libvirt/libvirt-sock\n")
UNIX_LISTENING = "0000000000000000: 00000002 00000000 00010000 0001 01 488821 /srv/ext/ext.sock\n"
VNC = "<graphics type='vnc' port='-1' listen='{addr}'/>"
TPM = "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"
# domain capabilities without <tpm> (as an older libvirt's): devices.tpm-emulator falls back to a stat of swtpm;
# with <tpm> the capabilities decide (tests/unit/test_checks_uefi_tpm.py)
NO_TPM_CAPS = {"domcaps_xml": {"/usr/bin/qemu-system-x86_64|x86_64|pc|kvm":
                               DOMCAPS_72[:DOMCAPS_72.index("<tpm ")] + DOMCAPS_72[DOMCAPS_72.index("</tpm>") + 6:]}}
DIMM = "<memory model='dimm'><target><size unit='KiB'>131072</size><node>0</node></target>{addr}</memory>"
NET_DISK = ("<disk type='network' device='disk'><driver name='qemu' type='raw' cache='none'/>"
            "<source protocol='rbd' name='pool/vm1'><host name='mon1'/></source>"
            "<auth username='admin'><secret type='ceph' uuid='aaaaaaaa-0000-4000-8000-000000000001'/></auth>"
            "<target dev='vdb' bus='virtio'/></disk>")
CDROM = ("<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/iso/install.iso'/>"
         "<target dev='sda' bus='sata'/><readonly/></disk>")

CASES = [
    # (id, check, devices, extra guest kwargs, target kwargs, flags, expected severity or None)
    ("pci-hostdev", "devices.hostdev", HOSTDEV_PCI, {}, {}, "--live", "block"),
    ("usb-hostdev-ok", "devices.hostdev", HOSTDEV_USB, {}, {}, "--live", None),
    ("hostdev-iface", "devices.hostdev-interface",
     "<interface type='hostdev'><source><address type='pci' domain='0' bus='4' slot='0' function='1'/></source></interface>",
     {}, {}, "--live", "block"),
    ("virtio-iface-ok", "devices.hostdev-interface", "<interface type='user'/>", {}, {}, "--live", None),
    ("shmem-peer", "devices.shmem-not-master", SHMEM.format(role=" role='peer'"), {}, {}, "--live", "block"),
    ("shmem-default-role", "devices.shmem-not-master", SHMEM.format(role=""), {}, {}, "--live", "block"),
    ("shmem-master-ok", "devices.shmem-not-master", SHMEM.format(role=" role='master'"), {}, {}, "--live", None),
    ("virtiofs", "devices.virtiofs", VIRTIOFS, {}, {}, "--live", "block"),
    ("virtiofs-offline-ok", "devices.virtiofs", VIRTIOFS, {"state": 5}, {}, "--offline --persistent", None),
    ("9p", "devices.9p-share", NINEP, {}, {}, "--live", "risk"),
    ("9p-source-missing", "devices.filesystem-source-missing", NINEP, {}, {"paths": EMU | missing("/srv/share")},
     "--live", "block"),
    ("9p-source-present-ok", "devices.filesystem-source-missing", NINEP, {}, {"paths": EMU | exists("/srv/share")},
     "--live", None),
    ("9p-source-unprobed", "devices.filesystem-source-missing", NINEP, {}, {}, "--live", "unknown"),
    ("transient", "devices.transient-disk", disk(extra="<transient/>"), {}, {"paths": EMU | exists(LOCAL_DISK)},
     "--live --unsafe", "block"),
    ("vmdk", "devices.image-format", disk(fmt="vmdk"), {}, {}, "--live --unsafe", "block"),
    ("qcow2-ok", "devices.image-format", disk(fmt="qcow2"), {}, {}, "--live --unsafe", None),
    ("vmdk-readonly", "devices.image-format", disk(fmt="vmdk", extra="<readonly/>"), {}, {}, "--live", "block"),
    ("vpc", "devices.image-format", disk(fmt="vpc"), {}, {}, "--live --copy-storage-all", "block"),
    ("dmg-readonly-ok", "devices.image-format", disk(fmt="dmg", extra="<readonly/>"), {}, {}, "--live", None),
    ("vmdk-offline-ok", "devices.image-format", disk(fmt="vmdk"), {"state": 5}, {}, "--offline --persistent", None),
    ("dimm-no-addr", "devices.dimm-address", DIMM.format(addr=""), {}, {}, "--live", "block"),
    ("dimm-addr-ok", "devices.dimm-address",
     DIMM.format(addr="<address type='dimm' slot='0' base='0x100000000'/>"), {}, {}, "--live", None),
    ("snapshots", "devices.snapshots", "", {"snapshot_count": 2}, {}, "--live", "block"),
    ("tpm-no-swtpm", "devices.tpm-emulator", TPM, {}, {"paths": EMU | missing("/usr/bin/swtpm"), **NO_TPM_CAPS},
     "--live", "block"),
    ("tpm-swtpm-ok", "devices.tpm-emulator", TPM, {}, {"paths": EMU | exists("/usr/bin/swtpm"), **NO_TPM_CAPS},
     "--live", None),
    ("vhostuser-missing", "devices.vhost-user-socket",
     "<interface type='vhostuser'><source type='unix' path='/run/vhu/sock0' mode='client'/><model type='virtio'/></interface>",
     {}, {"paths": EMU | missing("/run/vhu/sock0")}, "--live", "block"),
    # storage
    ("local-disk-not-shared", "storage.not-shared", disk(), {}, {"paths": EMU | exists(LOCAL_DISK)}, "--live", "block"),
    ("local-disk-copied-ok", "storage.not-shared", disk(), {}, {"paths": EMU | exists(LOCAL_DISK)},
     "--live --copy-storage-all", None),
    ("local-disk-unsafe-ok", "storage.not-shared", disk(), {}, {"paths": EMU | exists(LOCAL_DISK)},
     "--live --unsafe", None),
    ("nfs-disk-ok", "storage.not-shared", disk(path=NFS_DISK), {}, {"paths": EMU | exists(NFS_DISK)}, "--live", None),
    ("readonly-local-ok", "storage.not-shared", CDROM, {}, {"paths": EMU | exists("/iso/install.iso")}, "--live", None),
    ("writeback-old-qemu", "storage.unsafe-cache", disk(path=NFS_DISK, cache="writeback"), {"qemu": 2_012_000},
     {"paths": EMU | exists(NFS_DISK)}, "--live", "block"),
    ("writeback-new-qemu-ok", "storage.unsafe-cache", disk(path=NFS_DISK, cache="writeback"), {},
     {"paths": EMU | exists(NFS_DISK)}, "--live", None),
    ("nfs-disk-missing", "storage.missing-on-target", disk(path=NFS_DISK), {}, {"paths": EMU | missing(NFS_DISK)},
     "--live", "block"),
    ("cdrom-missing", "storage.missing-on-target", CDROM, {}, {"paths": EMU | missing("/iso/install.iso")},
     "--live", "block"),
    ("disk-missing-but-copied-ok", "storage.missing-on-target", disk(), {}, {"paths": EMU | missing(LOCAL_DISK)},
     "--live --copy-storage-all", None),
    ("stale-copy-unsafe", "storage.stale-copy-on-target", disk(), {}, {"paths": EMU | exists(LOCAL_DISK)},
     "--live --unsafe", "risk"),
    ("stale-copy-unsafe-not-qcow2", "storage.stale-copy-on-target", disk(), {},
     {"paths": EMU | exists(LOCAL_DISK), "image_headers": {LOCAL_DISK: bytes(64).hex()}}, "--live --unsafe", "block"),
    ("copy-existing-same-size-ok", "storage.copy-precreate", disk(), {"image_headers": {LOCAL_DISK: qcow2_header(16 << 20)}},
     {"paths": EMU | exists(LOCAL_DISK), "image_headers": {LOCAL_DISK: qcow2_header(16 << 20)}},
     "--live --copy-storage-all", None),
    ("copy-existing-smaller", "storage.copy-precreate", disk(), {"image_headers": {LOCAL_DISK: qcow2_header(16 << 20)}},
     {"paths": EMU | exists(LOCAL_DISK), "image_headers": {LOCAL_DISK: qcow2_header(8 << 20)}},
     "--live --copy-storage-all", "block"),
    ("copy-existing-raw-for-qcow2", "storage.copy-precreate", disk(),
     {"image_headers": {LOCAL_DISK: qcow2_header(16 << 20)}},
     {"paths": EMU | exists(LOCAL_DISK, size=16 << 20), "image_headers": {LOCAL_DISK: bytes(64).hex()}},
     "--live --copy-storage-all", "block"),
    ("copy-existing-raw-size-differs", "storage.copy-precreate", disk(fmt="raw"), {"image_headers": {LOCAL_DISK: ""}},
     {"paths": EMU | exists(LOCAL_DISK, size=8 << 20), "image_headers": {LOCAL_DISK: ""}},
     "--live --copy-storage-all", "block"),
    ("copy-existing-header-unread", "storage.copy-precreate", disk(), {}, {"paths": EMU | exists(LOCAL_DISK)},
     "--live --copy-storage-all", "unknown"),
    ("copy-pool-inactive", "storage.copy-precreate", disk(), {},
     {"paths": EMU | missing(LOCAL_DISK),
      "pools": [PoolInfo(name="default", active=False, target_path="/var/lib/libvirt/images")]},
     "--live --copy-storage-all", "block"),
    ("transient-not-a-storage-finding", "storage.not-shared", disk(extra="<transient/>"), {},
     {"paths": EMU | exists(LOCAL_DISK)}, "--live", None),
    ("copy-no-pool", "storage.copy-precreate", disk(), {}, {"paths": EMU | missing(LOCAL_DISK), "pools": []},
     "--live --copy-storage-all", "block"),
    ("copy-pool-ok", "storage.copy-precreate", disk(), {},
     {"paths": EMU | missing(LOCAL_DISK),
      "pools": [PoolInfo(name="default", active=True, target_path="/var/lib/libvirt/images", available=1 << 40)]},
     "--live --copy-storage-all", None),
    ("copy-inc-missing-even-with-a-pool", "storage.copy-precreate", disk(), {},
     {"paths": EMU | missing(LOCAL_DISK),
      "pools": [PoolInfo(name="default", active=True, target_path="/var/lib/libvirt/images", available=1 << 40)]},
     "--live --copy-storage-inc", "block"),
    ("copy-inc-existing-same-size-ok", "storage.copy-precreate", disk(),
     {"image_headers": {LOCAL_DISK: qcow2_header(16 << 20)}},
     {"paths": EMU | exists(LOCAL_DISK), "image_headers": {LOCAL_DISK: qcow2_header(16 << 20)}},
     "--live --copy-storage-inc", None),
    # --migrate-disks leaves the disks it does not name uncopied: a local one is then unsafe (lab)
    ("migrate-disks-leaves-a-local-disk", "storage.not-shared", disk(), {}, {"paths": EMU | exists(LOCAL_DISK)},
     "--live --copy-storage-all --migrate-disks vdb", "block"),
    ("migrate-disks-names-it-ok", "storage.not-shared", disk(), {}, {"paths": EMU | exists(LOCAL_DISK)},
     "--live --copy-storage-all --migrate-disks vdb,vda", None),
    ("copy-pool-too-small", "storage.copy-precreate", disk(), {},
     {"paths": EMU | missing(LOCAL_DISK),
      "pools": [PoolInfo(name="default", active=True, target_path="/var/lib/libvirt/images", available=1 << 20)]},
     "--live --copy-storage-all", "block"),
    ("secret-missing", "storage.network-disk-secret", NET_DISK, {}, {"secrets": []}, "--live", "block"),
    ("secret-present-ok", "storage.network-disk-secret", NET_DISK, {},
     {"secrets": [SecretInfo(uuid="aaaaaaaa-0000-4000-8000-000000000001", usage_type="ceph")]}, "--live", None),
    # network
    ("bridge-missing", "network.bridge-missing", BR, {}, {"paths": EMU | missing("/sys/class/net/br-prod")},
     "--live", "block"),
    ("bridge-present-ok", "network.bridge-missing", BR, {}, {"paths": EMU | exists("/sys/class/net/br-prod")},
     "--live", None),
    ("network-missing", "network.libvirt-network", NET.format(pg=""), {}, {"networks": []}, "--live", "block"),
    ("network-inactive", "network.libvirt-network", NET.format(pg=""), {},
     {"networks": [NetworkInfo(name="prod", active=False)]}, "--live", "block"),
    ("network-ok", "network.libvirt-network", NET.format(pg=""), {},
     {"networks": [NetworkInfo(name="prod", active=True)]}, "--live", None),
    ("portgroup-missing", "network.libvirt-network", NET.format(pg=" portgroup='web'"), {},
     {"networks": [NetworkInfo(name="prod", active=True, portgroups=["db"])]}, "--live", "warn"),
    ("portgroup-present-ok", "network.libvirt-network", NET.format(pg=" portgroup='web'"), {},
     {"networks": [NetworkInfo(name="prod", active=True, portgroups=["web"])]}, "--live", None),
    # a running guest's live XML names the network's bridge or NIC; the migration sends the network (lab)
    ("live-bridge-of-network-elsewhere-ok", "network.bridge-missing", LIVE_FWD, {},
     {"networks": [FWD_NET], "paths": EMU | missing("/sys/class/net/br-prod") | exists("/sys/class/net/br-other")},
     "--live", None),
    ("live-bridge-of-network-elsewhere-net-ok", "network.libvirt-network", LIVE_FWD, {},
     {"networks": [FWD_NET], "paths": EMU | missing("/sys/class/net/br-prod") | exists("/sys/class/net/br-other")},
     "--live", None),
    ("live-bridge-network-missing", "network.libvirt-network", LIVE_FWD, {},
     {"networks": [], "paths": EMU | exists("/sys/class/net/br-prod")}, "--live", "block"),
    ("live-bridge-network-inactive", "network.libvirt-network", LIVE_FWD, {},
     {"networks": [NetworkInfo(name="fwd", active=False, bridge="br-prod", forward_mode="bridge")],
      "paths": EMU | exists("/sys/class/net/br-prod")}, "--live", "block"),
    ("live-bridge-network-bridge-gone", "network.libvirt-network", LIVE_FWD, {},
     {"networks": [FWD_NET], "paths": EMU | missing("/sys/class/net/br-other")}, "--live", "block"),
    ("live-bridge-network-bridge-unchecked", "network.libvirt-network", LIVE_FWD, {},
     {"networks": [FWD_NET]}, "--live", "unknown"),
    ("live-nat-network-other-bridge-ok", "network.libvirt-network", LIVE_NAT, {},
     {"networks": [NetworkInfo(name="natnet", active=True, bridge="virbr-n2")]}, "--live", None),
    ("live-macvtap-of-network-other-nic-ok", "network.direct-device-missing", LIVE_MACVTAP, {},
     {"networks": [MV_NET], "paths": EMU | missing("/sys/class/net/eth1x") | exists("/sys/class/net/eth2x")},
     "--live", None),
    ("live-macvtap-network-missing", "network.libvirt-network", LIVE_MACVTAP, {},
     {"networks": [], "paths": EMU | exists("/sys/class/net/eth1x")}, "--live", "block"),
    ("live-macvtap-network-nic-gone", "network.libvirt-network", LIVE_MACVTAP, {},
     {"networks": [MV_NET], "paths": EMU | missing("/sys/class/net/eth2x")}, "--live", "block"),
    ("live-macvtap-network-one-nic-gone", "network.libvirt-network", LIVE_MACVTAP, {},
     {"networks": [MV_NET.model_copy(update={"forward_devs": ["eth2x", "eth3x"]})],
      "paths": EMU | exists("/sys/class/net/eth2x") | missing("/sys/class/net/eth3x")}, "--live", "risk"),
    # media libvirt may drop on the way (startupPolicy; lab)
    ("cdrom-optional-missing-warns", "storage.missing-on-target", media("optional"), {},
     {"paths": EMU | missing(ISO)}, "--live", "warn"),
    ("cdrom-requisite-missing-warns", "storage.missing-on-target", media("requisite"), {},
     {"paths": EMU | missing(ISO)}, "--live", "warn"),
    ("cdrom-mandatory-missing", "storage.missing-on-target", media("mandatory"), {},
     {"paths": EMU | missing(ISO)}, "--live", "block"),
    ("cdrom-default-missing", "storage.missing-on-target", media(None), {}, {"paths": EMU | missing(ISO)},
     "--live", "block"),
    ("disk-optional-missing", "storage.missing-on-target", media("optional", device="disk"), {},
     {"paths": EMU | missing(ISO)}, "--live", "block"),
    # a floppy follows the cdrom's rule in libvirt's code (not lab-run: q35 guests have no floppy controller)
    ("floppy-optional-missing-warns", "storage.missing-on-target", media("optional", device="floppy"), {},
     {"paths": EMU | missing(ISO)}, "--live", "warn"),
    ("migrate-disks-unknown-target-inc", "flags.rejected-combination", "", {}, {},
     "--live --copy-storage-inc --migrate-disks vda,vdz", "block"),
    ("cdrom-optional-present-ok", "storage.missing-on-target", media("optional"), {},
     {"paths": EMU | exists(ISO)}, "--live", None),
    ("direct-missing", "network.direct-device-missing",
     "<interface type='direct'><source dev='eno9' mode='bridge'/></interface>", {},
     {"paths": EMU | missing("/sys/class/net/eno9")}, "--live", "block"),
    ("nwfilter-missing", "network.nwfilter-missing",
     "<interface type='bridge'><source bridge='br0'/><filterref filter='clean-traffic'/></interface>", {},
     {"nwfilters": ["allow-arp"], "paths": EMU | exists("/sys/class/net/br0")}, "--live", "block"),
    ("nwfilter-present-ok", "network.nwfilter-missing",
     "<interface type='bridge'><source bridge='br0'/><filterref filter='clean-traffic'/></interface>", {},
     {"nwfilters": ["clean-traffic"], "paths": EMU | exists("/sys/class/net/br0")}, "--live", None),
    # paths
    ("serial-dir-missing", "paths.chardev-directory", SERIAL_FILE, {}, {"paths": EMU | missing("/var/log/guests")},
     "--live", "block"),
    ("serial-dir-ok", "paths.chardev-directory", SERIAL_FILE, {}, {"paths": EMU | exists("/var/log/guests")},
     "--live", None),
    ("unix-bind-dir-missing", "paths.chardev-directory", UNIX_CHAN.format(mode="bind", path=SOCK, rc=""), {},
     {"paths": EMU | missing("/srv/ext")}, "--live", "block"),
    ("unix-connect-socket-missing", "paths.chardev-directory", UNIX_CHAN.format(mode="connect", path=SOCK, rc=""), {},
     {"paths": EMU | exists("/srv/ext") | missing(SOCK)}, "--live", "block"),
    ("unix-connect-nobody-listens", "paths.chardev-directory", UNIX_CHAN.format(mode="connect", path=SOCK, rc=""), {},
     {"paths": EMU | exists(SOCK), "files": host_files() | {"/proc/net/unix": UNIX_HEAD}}, "--live", "block"),
    ("unix-connect-listener-ok", "paths.chardev-directory", UNIX_CHAN.format(mode="connect", path=SOCK, rc=""), {},
     {"paths": EMU | exists(SOCK), "files": host_files() | {"/proc/net/unix": UNIX_HEAD + UNIX_LISTENING}},
     "--live", None),
    ("unix-connect-reconnect-ok", "paths.chardev-directory",
     UNIX_CHAN.format(mode="connect", path=SOCK, rc="<reconnect enabled='yes' timeout='5'/>"), {},
     {"paths": EMU | exists(SOCK), "files": host_files() | {"/proc/net/unix": UNIX_HEAD}}, "--live", None),
    ("unix-connect-no-proc-net-unix", "paths.chardev-directory", UNIX_CHAN.format(mode="connect", path=SOCK, rc=""),
     {}, {"paths": EMU | exists(SOCK)}, "--live", "unknown"),
    ("guest-agent-generated-socket-ok", "paths.chardev-directory", GUEST_AGENT, {},
     {"paths": EMU | missing("/var/lib/libvirt/qemu/channel/target/domain-7-vm1")}, "--live", None),
    ("vnc-listen-foreign", "paths.graphics-listen", VNC.format(addr="10.0.0.1"), {}, {}, "--live", "block"),
    ("vnc-listen-local-ok", "paths.graphics-listen", VNC.format(addr="10.0.0.2"), {}, {}, "--live", None),
    ("vnc-any-ok", "paths.graphics-listen", VNC.format(addr="0.0.0.0"), {}, {}, "--live", None),
    # state and flags
    ("job-active", "state.job-active", "", {"job_type": 2}, {}, "--live", "block"),
    ("block-job", "state.block-job", "", {"block_jobs": ["vda"]}, {}, "--live", "block"),
    ("tls-forced", "flags.tls-required", "", {},
     {"files": host_files() | {"/etc/libvirt/qemu.conf": "migrate_tls_force = 1\n"}}, "--live", "block"),
    ("tls-forced-with-tls-ok", "flags.tls-required", "", {},
     {"files": host_files() | {"/etc/libvirt/qemu.conf": "migrate_tls_force = 1\n"}}, "--live --tls", None),
    ("tls-no-certs", "flags.tls-certificates", "", {}, {"paths": EMU | missing("/etc/pki/qemu/server-cert.pem")},
     "--live --tls", "block"),
    ("tls-certs-ok", "flags.tls-certificates", "", {}, {}, "--live --tls", None),
    ("tls-certs-in-conf-dir-ok", "flags.tls-certificates", "", {"tls_conf": True},
     {"paths": EMU | exists(*(f"{TLS_CONF_DIR}/{n}" for n in ("ca-cert.pem", "server-cert.pem", "server-key.pem"))),
      "files": host_files() | {"/etc/libvirt/qemu.conf": TLS_CONF}}, "--live --tls", None),
    ("tls-conf-dir-without-certs", "flags.tls-certificates", "", {},
     {"paths": EMU | missing(f"{TLS_CONF_DIR}/server-cert.pem"),
      "files": host_files() | {"/etc/libvirt/qemu.conf": TLS_CONF}}, "--live --tls", "block"),
    ("tls-libvirt-migrate-dir-preferred", "flags.tls-certificates", "", {},
     {"paths": EMU | exists("/etc/pki/libvirt-migrate") | missing("/etc/pki/libvirt-migrate/server-key.pem")},
     "--live --tls", "block"),
    ("tls-forced-tunnelled-ok", "flags.tls-required", "", {},
     {"files": host_files() | {"/etc/libvirt/qemu.conf": "migrate_tls_force = 1\n"}}, "--live --p2p --tunnelled",
     None),
    ("tunnelled-copy-with-disk", "flags.rejected-combination", disk(), {}, {"paths": EMU | exists(LOCAL_DISK)},
     "--live --p2p --tunnelled --copy-storage-all", "block"),
    ("tunnelled-copy-diskless-ok", "flags.rejected-combination", "", {}, {},
     "--live --p2p --tunnelled --copy-storage-all", None),
    ("migrate-disks-unknown-target", "flags.rejected-combination", "", {}, {},
     "--live --copy-storage-all --migrate-disks vdz", "block"),
    ("migrate-disks-unknown-target-no-copy-ok", "flags.rejected-combination", "", {}, {},
     "--live --migrate-disks vdz", None),
    ("migrate-disks-known-target-ok", "flags.rejected-combination", disk(), {}, {"paths": EMU | exists(LOCAL_DISK)},
     "--live --copy-storage-all --migrate-disks vda", None),
    ("tunnelled-without-p2p", "flags.rejected-combination", "", {}, {}, "--live --tunnelled", "block"),
    ("postcopy-not-live", "flags.rejected-combination", "", {}, {}, "--postcopy", "block"),
    ("postcopy-suspend", "flags.rejected-combination", "", {}, {}, "--live --postcopy --suspend", "block"),
    ("postcopy-live-ok", "flags.rejected-combination", "", {}, {}, "--live --postcopy", None),
    ("offline-tunnelled", "flags.rejected-combination", "", {"state": 5}, {}, "--offline --persistent --p2p --tunnelled",
     "block"),
    ("offline-without-persistent", "flags.rejected-combination", "", {"state": 5}, {}, "--offline", "block"),
    ("tls-tunnelled", "flags.rejected-combination", "", {}, {}, "--live --p2p --tunnelled --tls", "block"),
    ("parallel-old-qemu", "flags.qemu-feature", "", {}, {"qemu": 3_001_000}, "--live --parallel", "block"),
    ("parallel-ok", "flags.qemu-feature", "", {}, {}, "--live --parallel", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_catalogue_case(case):
    _id, rule, devices, guest_kw, target_kw, flags, expected = case
    guest_kw = dict(guest_kw)
    qemu = guest_kw.pop("qemu", 7_002_000)
    state = guest_kw.pop("state", 1)
    src_headers = guest_kw.pop("image_headers", {})
    tls_conf = guest_kw.pop("tls_conf", False)
    xml = guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>", devices=devices)
    src = source(xml, argv("host,migratable=on") if state == 1 else None, state=state, qemu=qemu, **guest_kw)
    src.paths.update(exists(LOCAL_DISK, NFS_DISK, "/etc/pki/qemu/ca-cert.pem", "/etc/pki/qemu/client-cert.pem",
                            "/etc/pki/qemu/client-key.pem"))
    src.files["/proc/self/mountinfo"] = MOUNTINFO
    src.image_headers.update(src_headers)
    src.paths.update(missing("/etc/pki/libvirt-migrate"))
    if tls_conf:
        src.files["/etc/libvirt/qemu.conf"] = TLS_CONF
        src.paths.update(exists(*(f"{TLS_CONF_DIR}/{n}" for n in ("ca-cert.pem", "client-cert.pem", "client-key.pem"))))
    tkw = dict(target_kw)
    paths = tkw.pop("paths", EMU)
    paths = exists("/etc/pki/qemu/ca-cert.pem", "/etc/pki/qemu/server-cert.pem", "/etc/pki/qemu/server-key.pem") \
        | missing("/etc/pki/libvirt-migrate") | paths
    dst = target(paths=paths, **tkw)
    report = run(src, dst, flags)
    found = {f.severity.value for f in report.findings if f.rule == rule}
    if expected is None:
        assert not found, [f for f in report.findings if f.rule == rule]
    else:
        assert expected in found, report.findings


TEAMING_VF = ("<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x03' "
              "slot='0x00' function='0x1'/></source><teaming type='transient' persistent='ua-net0'/></hostdev>")
VHU_SERVER = ("<interface type='vhostuser'><source type='unix' path='/run/vhu/s0' mode='server'/>"
              "<model type='virtio'/></interface>")

REVIEW_CASES = [
    ("teaming-vf-ok", "devices.hostdev", TEAMING_VF, {}, "--live", None),
    ("vhostuser-server-ok", "devices.vhost-user-socket", VHU_SERVER, {"paths": EMU | missing("/run/vhu/s0")},
     "--live", None),
    ("swtpm-in-local-bin-ok", "devices.tpm-emulator", TPM,
     {"paths": EMU | missing("/usr/bin/swtpm") | exists("/usr/local/bin/swtpm"), **NO_TPM_CAPS}, "--live", None),
]


@pytest.mark.parametrize("case", REVIEW_CASES, ids=[c[0] for c in REVIEW_CASES])
def test_review_case(case):
    _id, rule, devices, target_kw, flags, expected = case
    test_catalogue_case((_id, rule, devices, {}, target_kw, flags, expected))


@pytest.mark.parametrize("name,flags,conf,fires", [
    ("localhost.localdomain", "--live", "", True),
    ("localhost-kvm7", "--live", "", True),  # libvirt: STRPREFIX(hostname, "localhost")
    ("localhost", "--live --p2p --tunnelled", "", False),  # no incoming URI to build
    ("localhost", "--live", 'migration_host = "10.0.0.2"\n', False),
    ("kvm7.example.net", "--live", "", False),
])
def test_target_hostname_localhost(name, flags, conf, fires):
    dst = target(files=host_files() | {"/etc/libvirt/qemu.conf": conf})
    dst.hostname = name
    src = source(guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>"), argv("host,migratable=on"))
    assert ("platform.target-hostname-localhost" in rules_of(run(src, dst, flags))) == fires


BLK = "/dev/vg0/vm1-disk"
BLOCK_DISK = ("<disk type='block' device='disk'><driver name='qemu' type='{fmt}' cache='none'/>"
              f"<source dev='{BLK}'/><target dev='vda' bus='virtio'/></disk>")


def block_device(size: int | None) -> dict:
    return {BLK: PathStat(path=BLK, exists=True, is_block=True, size=size)}


@pytest.mark.parametrize("name,fmt,src_size,dst_paths,dst_header,flags,expected", [
    # libvirt 9.0 in the lab: "cannot precreate storage for disk type 'block'"
    ("missing", "raw", 16 << 20, missing(BLK), None, "--live --copy-storage-all", "block"),
    ("same-size-ok", "raw", 16 << 20, block_device(16 << 20), bytes(64).hex(), "--live --copy-storage-all", None),
    # "migration of disk vda failed: Source and target image have different sizes"
    ("smaller", "raw", 16 << 20, block_device(8 << 20), bytes(64).hex(), "--live --copy-storage-all", "block"),
    ("size-unknown", "raw", 16 << 20, block_device(None), bytes(64).hex(), "--live --copy-storage-all", "unknown"),
    ("source-size-unknown", "raw", None, block_device(16 << 20), bytes(64).hex(), "--live --copy-storage-all",
     "unknown"),
    ("qcow2-on-lvs-same-virtual-size-ok", "qcow2", 1 << 30, block_device(1 << 30), qcow2_header(16 << 20),
     "--live --copy-storage-all", None),
    ("qcow2-on-lvs-other-virtual-size", "qcow2", 1 << 30, block_device(1 << 30), qcow2_header(8 << 20),
     "--live --copy-storage-all", "block"),
    ("not-copied", "raw", 16 << 20, block_device(16 << 20), None, "--live", None),
])
def test_copied_block_device(name, fmt, src_size, dst_paths, dst_header, flags, expected):
    """storage.copy-precreate for type='block' disks (the lab proves missing, same size and smaller)."""
    xml = guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>", devices=BLOCK_DISK.format(fmt=fmt))
    src = source(xml, argv("host,migratable=on"))
    src.paths.update(block_device(src_size))
    src.image_headers[BLK] = qcow2_header(16 << 20) if fmt == "qcow2" else bytes(64).hex()
    dst = target(paths=EMU | dst_paths, image_headers={BLK: dst_header} if dst_header else {})
    found = {f.severity.value for f in run(src, dst, flags).findings if f.rule == "storage.copy-precreate"}
    assert found == ({expected} if expected else set()), found


TCP_HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
TCP6_HEAD = "  sl  local_address                         remote_address                        st\n"


def tcp_line(addr_hex: str, port: int, state: str = "0A") -> str:
    return f"   0: {addr_hex}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000 0 0 1 1\n"


def test_tcp_listeners_reads_both_tables():
    from migcheck.facts.procfs import tcp_listeners

    v4 = TCP_HEAD + tcp_line("00000000", 4555) + tcp_line("0200000A", 22) + tcp_line("0200000A", 40000, state="01")
    v6 = TCP6_HEAD + tcp_line("00000000000000000000000001000000", 631) + tcp_line("0" * 32, 5900)
    assert tcp_listeners(v4, v6) == {("0.0.0.0", 4555), ("10.0.0.2", 22), ("::1", 631), ("::", 5900)}


def _tcp_serial(host: str, port: int, mode: str = "bind") -> str:
    return f"<serial type='tcp'><source mode='{mode}' host='{host}' service='{port}'/><target port='0'/></serial>"


@pytest.mark.parametrize("name,serial,tcp,flags,expected", [
    ("own-address", _tcp_serial("10.0.0.1", 4555), "", "--live", "block"),  # the target is 10.0.0.2
    ("target-address-ok", _tcp_serial("10.0.0.2", 4555), "", "--live", None),
    ("wildcard-ok", _tcp_serial("0.0.0.0", 4555), "", "--live", None),
    ("port-taken-on-wildcard", _tcp_serial("0.0.0.0", 4555), tcp_line("00000000", 4555), "--live", "block"),
    ("port-taken-on-the-same-address", _tcp_serial("10.0.0.2", 4555), tcp_line("0200000A", 4555), "--live", "block"),
    ("port-taken-on-another-address-ok", _tcp_serial("10.0.0.2", 4555), tcp_line("0100007F", 4555), "--live", None),
    ("other-port-taken-ok", _tcp_serial("0.0.0.0", 4555), tcp_line("00000000", 4556), "--live", None),
    ("connect-mode-not-judged", _tcp_serial("10.0.0.1", 4555, "connect"), "", "--live", None),
    ("host-name-not-judged", _tcp_serial("console.example", 4555), "", "--live", None),
    ("offline-not-judged", _tcp_serial("10.0.0.1", 4555), "", "--offline --persistent", None),
])
def test_chardev_tcp_bind(name, serial, tcp, flags, expected):
    xml = guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>", devices=serial)
    src = source(xml, argv("host,migratable=on"), state=5 if "offline" in flags else 1)
    files = dict(target().files) | {"/proc/net/tcp": TCP_HEAD + tcp}
    found = {f.severity.value for f in run(src, target(files=files), flags).findings
             if f.rule == "paths.chardev-tcp-bind"}
    assert found == ({expected} if expected else set()), found


def test_chardev_tcp_bind_without_the_targets_tables_is_unknown():
    xml = guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>", devices=_tcp_serial("0.0.0.0", 4555))
    found = {f.severity.value for f in run(source(xml, argv("host,migratable=on")), target()).findings
             if f.rule == "paths.chardev-tcp-bind"}
    assert found == {"unknown"}


@pytest.mark.parametrize("name,graphics,tcp,expected", [
    ("fixed-port-taken", "<graphics type='vnc' port='5910' autoport='no' listen='0.0.0.0'/>",
     tcp_line("00000000", 5910), "block"),
    ("fixed-port-free-ok", "<graphics type='vnc' port='5910' autoport='no' listen='0.0.0.0'/>",
     tcp_line("00000000", 5911), None),
    # autoport: libvirt picks a free port on the target; the live XML's port is the source's choice
    ("autoport-ok", "<graphics type='vnc' port='5910' autoport='yes' listen='0.0.0.0'/>",
     tcp_line("00000000", 5910), None),
    ("spice-tls-port-taken", "<graphics type='spice' port='5930' tlsPort='5931' autoport='no'/>",
     tcp_line("00000000", 5931), "block"),
    ("websocket-taken", "<graphics type='vnc' port='-1' autoport='yes' websocket='5700'/>",
     tcp_line("00000000", 5700), "block"),
])
def test_graphics_fixed_ports(name, graphics, tcp, expected):
    xml = guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>", devices=graphics)
    files = dict(target().files) | {"/proc/net/tcp": TCP_HEAD + tcp}
    found = {f.severity.value for f in run(source(xml, argv("host,migratable=on")), target(files=files)).findings
             if f.rule == "paths.graphics-listen"}
    assert found == ({expected} if expected else set()), found


VNC_NET = "<graphics type='vnc' port='5900' autoport='yes' listen='192.168.150.1'>" \
          "<listen type='network' address='192.168.150.1' network='glnet'/></graphics>"


@pytest.mark.parametrize("name,networks,expected", [
    # the live XML names the source's address of the network, which the target does not have: not judged
    ("network-on-target-ok", [NetworkInfo(name="glnet", active=True)], None),
    ("network-missing", [], "block"),
    ("network-inactive", [NetworkInfo(name="glnet", active=False)], "block"),
    ("networks-unknown", None, "unknown"),
])
def test_graphics_listen_on_a_libvirt_network(name, networks, expected):
    xml = guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>", devices=VNC_NET)
    found = {f.severity.value for f in run(source(xml, argv("host,migratable=on")), target(networks=networks)).findings
             if f.rule == "paths.graphics-listen"}
    assert found == ({expected} if expected else set()), found


def _usb(vendor: str | None = "0x1050", product: str | None = "0x0402", bus: int | None = None,
         device: int | None = None, policy: str = "") -> str:
    ids = (f"<vendor id='{vendor}'/>" if vendor else "") + (f"<product id='{product}'/>" if product else "")
    addr = f"<address bus='{bus}' device='{device}'/>" if bus is not None else ""
    pol = f" startupPolicy='{policy}'" if policy else ""
    return f"<hostdev mode='subsystem' type='usb' managed='yes'><source{pol}>{ids}{addr}</source></hostdev>"


def _dev(vendor="1050", product="0402", bus=1, device=3):
    from migcheck.probe.raw import UsbDevice

    return UsbDevice(vendor=vendor, product=product, bus=bus, device=device)


@pytest.mark.parametrize("name,hostdev,devices,expected", [
    ("present-ok", _usb(), [_dev()], None),
    ("missing", _usb(), [_dev(product="0407")], "block"),
    ("no-usb-bus", _usb(), [], "block"),
    ("two-alike-without-address", _usb(), [_dev(), _dev(device=4)], "block"),
    ("two-alike-address-names-one-ok", _usb(bus=1, device=4), [_dev(), _dev(device=4)], None),
    ("address-only-missing", _usb(vendor=None, product=None, bus=2, device=9), [_dev()], "block"),
    ("optional-ok", _usb(policy="optional"), [], None),
    ("not-read", _usb(), None, "unknown"),
])
def test_usb_device_missing(name, hostdev, devices, expected):
    xml = guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>", devices=hostdev)
    found = {f.severity.value for f in run(source(xml, argv("host,migratable=on")), target(usb_devices=devices)).findings
             if f.rule == "devices.usb-device-missing"}
    assert found == ({expected} if expected else set()), found


def test_usb_hostdev_is_parsed_for_the_lookup():
    from migcheck.facts.domain_xml import parse_domain_xml

    d = parse_domain_xml(guest_xml(devices=_usb("0x1D6B", "0x0002", bus=1, device=3, policy="optional")))
    h = d.hostdevs[0]
    assert (h.usb_vendor, h.usb_product, h.usb_bus, h.usb_device, h.startup_policy) == ("1d6b", "0002", 1, 3,
                                                                                      "optional")
