"""The catalogue of checks, one module per family.

Importing a family module registers its checks in
:data:`migcheck.checks.registry.REGISTRY`.
"""

from importlib import import_module

FAMILIES = ("cpu", "platform", "flags", "state", "devices", "storage", "network", "resources", "paths", "drift", "qemu")


def load_all() -> None:
    for name in FAMILIES:
        import_module(f"migcheck.checks.{name}")
