"""A lab of real libvirt/QEMU hosts on this machine, for migcheck's tests.

See tests/lab/README.md. Needs root; stdlib only.
"""

from ._cmd import LabCommandError, LabError
from .guest import guest_xml, kvm_usable
from .host import LabHost
from .lab import DEFAULT_PREFIX, Lab, default_state_dir, find_leftovers, missing_tools
from .spec import HostSpec

__all__ = [
    "DEFAULT_PREFIX", "HostSpec", "Lab", "LabCommandError", "LabError", "LabHost",
    "default_state_dir", "find_leftovers", "guest_xml", "kvm_usable", "missing_tools",
]
