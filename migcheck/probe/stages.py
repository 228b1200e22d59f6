"""The order in which a host is asked, written once.

A host answers as a source (the guest is there: its facts, and the source's own view of its
CPU and paths) or as a target (whether it can take the guest).  Each role runs its stages in
the order :data:`ORDER` gives; ``migcheck SRC DST VM`` (:mod:`migcheck.probe.pair`) runs both
roles at once, one thread each, a stage waiting for the other side where :data:`PAIR_WAITS`
says so; the fleet audit (:mod:`migcheck.audit.probe`) runs the same stages, the host-level
ones once per host and the guest-level ones once per distinct question of its guests.

The record of a host (``RawHost.errors``) holds its errors in this order.  Only the order
lives here: what each stage asks is in :mod:`migcheck.probe.gather`, what it asks for a
guest in the plan the checks declare (:mod:`migcheck.probe.plan`).
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

# host-level stages: asked once per host, whatever the guest
HOST_FACTS = "host facts"  # gather_host: hostname, versions, capabilities
PEERS = "peers"  # gather_peers: the domains it has
HOST_FILES = "host files"  # gather_host_files: /proc, /sys and config files
TARGET_OBJECTS = "target objects"  # gather_target_objects: networks, nwfilters, secrets, pools, free memory
HOST_STAGES = (HOST_FACTS, PEERS, HOST_FILES, TARGET_OBJECTS)

# guest-level stages: asked for a guest (the plan names what)
GUEST = "guest"  # gather_guest: the guest itself, on its source
GUEST_FILES = "guest's host files"  # TCP tables and USB devices, for a guest that needs them
DOMCAPS = "domcaps"  # ask_domcaps: domain capabilities for its emulator/arch/machine/virt type
CPUS = "CPU comparisons"  # ask_cpu: the plan's CPU definitions
PATHS = "paths"  # ask_path: the plan's paths
IMAGES = "image headers"  # ask_image: the first bytes of its disk images that exist here (after PATHS)
RESOLUTION = "resolution"  # gather_resolution: the source's resolver on the target's migration names
GUEST_STAGES = (GUEST, GUEST_FILES, DOMCAPS, CPUS, PATHS, IMAGES, RESOLUTION)

SOURCE = "source"
TARGET = "target"

ORDER: dict[str, tuple[str, ...]] = {
    # the guest first: the target waits for its XML (and for its CPU answers) before its own questions
    SOURCE: (HOST_FACTS, GUEST, DOMCAPS, CPUS, HOST_FILES, PATHS, IMAGES, RESOLUTION),
    TARGET: (HOST_FACTS, PEERS, HOST_FILES, TARGET_OBJECTS, GUEST_FILES, DOMCAPS, PATHS, IMAGES, CPUS),
}

# (role, stage) -> the (role, stage) of the other side that must be done first
PAIR_WAITS: dict[tuple[str, str], tuple[str, str]] = {
    (TARGET, GUEST_FILES): (SOURCE, GUEST),  # the guest's XML: what the target is asked about
    (TARGET, CPUS): (SOURCE, CPUS),  # the source's domain capabilities name a host-passthrough CPU
    (SOURCE, RESOLUTION): (TARGET, HOST_FILES),  # the target's hostname and qemu.conf name its address
}


def stages(role: str, level: Iterable[str] = HOST_STAGES + GUEST_STAGES,
           skip: Iterable[str] = ()) -> tuple[str, ...]:
    """The stages of a role in their order, only those of ``level`` (HOST_STAGES or GUEST_STAGES), without ``skip``."""
    level, skip = set(level), set(skip)
    return tuple(s for s in ORDER[role] if s in level and s not in skip)


class Stop(Exception):
    """Raised by a stage when the stages after it have nothing to ask (the source failed)."""


def run_stages(order: Iterable[str], steps: Mapping[str, Callable[[], object]],
               before: Callable[[str], None] = lambda stage: None,
               after: Callable[[str], None] = lambda stage: None) -> None:
    """Run ``steps[stage]`` for each stage in ``order``: ``before`` and ``after`` each (waits, progress)."""
    for name in order:
        before(name)
        try:
            steps[name]()
        except Stop:
            return
        after(name)


def _split(role: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A role's stages before the first that waits for the other side; that one and the rest."""
    order = ORDER[role]
    for i, name in enumerate(order):
        if (role, name) in PAIR_WAITS:
            return order[:i], order[i:]
    return order, ()


# The fleet audit (audit/probe.py) asks every host once, in two passes over all hosts. The first
# runs what waits for no other host: the host-level stages, the guest's host files (read for all
# its guests at once; audit/fleet.py cuts them per guest) and the source's stages for each guest on
# it. The second, once every host has answered the first, what waits for another host: the
# target's stages for the guests that may move to it, and the source's resolution of its
# candidate targets' names.
FLEET_FIRST = HOST_STAGES + (GUEST_FILES,) + tuple(s for s in _split(SOURCE)[0] if s in GUEST_STAGES)
FLEET_SECOND = tuple(s for s in _split(TARGET)[1] if s != GUEST_FILES) + _split(SOURCE)[1]
