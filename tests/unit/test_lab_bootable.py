"""The offline parts of the lab's bootable guest (tests/lab/bootable.py): module order, initramfs, boot XML.

The lab scenario that boots it (tests/lab/test_catalogue_storage_devices.py) only says "the guest never
mounted the share" when one of these is wrong; here each part is pinned on its own.
"""

from __future__ import annotations

import gzip

import pytest

from tests.lab._cmd import LabError
from tests.lab.bootable import BootFiles, module_order, write_initramfs


def read_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, (rdev major, minor)) of a cpio "newc" archive: the format the kernel unpacks."""
    out, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701", f"no newc header at {pos}"
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, namesize = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        pos += 110
        name = data[pos:pos + namesize - 1].decode()
        pos += namesize + (-(110 + namesize) % 4)
        body = data[pos:pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body, rdev)


def test_modules_load_after_their_dependencies():
    infos = {"9p": {"depends": ["9pnet", "netfs"]}, "9pnet": {"depends": []}, "netfs": {"depends": ["fscache"]},
             "fscache": {"depends": []}, "9pnet_virtio": {"depends": ["9pnet", "virtio"]}, "virtio": {"depends": []}}
    order = module_order(infos, ["9pnet_virtio", "9p"])
    assert sorted(order) == sorted(infos)
    for name, info in infos.items():
        assert all(order.index(dep) < order.index(name) for dep in info["depends"]), order


def test_a_missing_or_cyclic_module_is_a_lab_error():
    with pytest.raises(LabError, match="no module 'netfs'"):
        module_order({"9p": {"depends": ["netfs"]}}, ["9p"])
    with pytest.raises(LabError, match="cycle"):
        module_order({"a": {"depends": ["b"]}, "b": {"depends": ["a"]}}, ["a"])


def test_the_initramfs_holds_init_busybox_and_the_modules_in_load_order(tmp_path):
    dest = tmp_path / "initrd.gz"
    write_initramfs(dest, b"BUSYBOX", [("virtio.ko", b"V" * 5), ("9p.ko", b"P" * 3)], "#!/bin/busybox sh\necho hi\n")
    files = read_newc(gzip.decompress(dest.read_bytes()))
    assert files["init"][1] == b"#!/bin/busybox sh\necho hi\n" and files["init"][0] & 0o111
    assert files["bin/busybox"][1] == b"BUSYBOX"
    assert files["lib/modules/virtio.ko"][1] == b"VVVVV" and files["lib/modules/9p.ko"][1] == b"PPP"
    assert files["lib/modules/load-order"][1] == b"virtio.ko\n9p.ko\n"
    assert files["dev/console"][0] & 0o170000 == 0o020000 and files["dev/console"][2] == (5, 1)


def test_the_boot_xml_names_the_tag_and_refuses_one_that_could_break_out(tmp_path):
    boot = BootFiles(tmp_path, {}, False, 0.0)
    xml = boot.os_xml(mount_tag="share")
    assert f"<kernel>{tmp_path}/vmlinuz</kernel>" in xml and "migcheck.9p=share" in xml
    for bad in ("a b", "x</cmdline>", "", "t" * 32):
        with pytest.raises(ValueError):
            boot.os_xml(mount_tag=bad)
