"""migcheck: will this libvirt/QEMU migration work, and if not, why and how to fix it."""

__version__ = "0.1.0"
