"""What a disk image's first bytes say: its format and, for qcow2, its virtual size.

The probe keeps the first bytes of each file-backed disk image (hex, in
``RawHost.image_headers``); this turns them into what the storage checks need
to predict QEMU's answer when it opens the file or mirrors into it.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_BYTES = 512  # what the probe reads of each image

# Magic numbers as QEMU's block drivers probe them (block/*.c *_probe).
_MAGICS = (
    (b"QFI\xfb", "qcow"),  # qcow (version 1) or qcow2 (2, 3): told apart by the version field
    (b"KDMV", "vmdk"),
    (b"# Disk DescriptorFile", "vmdk"),
    (b"conectix", "vpc"),
    (b"vhdxfile", "vhdx"),
    (b"WithoutFreeSpace", "parallels"),
    (b"WithouFreSpacExt", "parallels"),
    (b"QED\x00", "qed"),
    (b"LUKS\xba\xbe", "luks"),
)


@dataclass
class ImageInfo:
    format: str  # qcow2, qcow, vmdk, vpc, ..., or "raw" when no known magic is there
    virtual_size: int | None  # bytes; None when the header does not tell (raw: the file size)


def parse_image_header(header: bytes, file_size: int | None = None) -> ImageInfo:
    """Format and virtual size from an image's first bytes (and its size on disk, for raw files)."""
    for magic, fmt in _MAGICS:
        if header.startswith(magic):
            break
    else:
        if len(header) >= 0x48 and header[0x40:0x44] == b"\x7f\x10\xda\xbe":  # VDI signature at 0x40
            return ImageInfo("vdi", None)
        return ImageInfo("raw", file_size)
    if fmt == "qcow" and len(header) >= 32:
        version = int.from_bytes(header[4:8], "big")
        size = int.from_bytes(header[24:32], "big")
        if version in (2, 3):
            return ImageInfo("qcow2", size)
        return ImageInfo("qcow", None)
    return ImageInfo(fmt, None)


def image_info(header_hex: str | None, file_size: int | None = None) -> ImageInfo | None:
    """parse_image_header for the probe's hex form; None when the header was not read."""
    if header_hex is None:
        return None
    try:
        data = bytes.fromhex(header_hex)
    except ValueError:
        return None
    return parse_image_header(data, file_size)
