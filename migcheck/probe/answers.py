"""One question's answer from a host: the value it gave (or None) and the errors it met.

The gathering functions for a guest's questions (:func:`migcheck.probe.gather.ask_domcaps`,
``ask_cpu``, ``ask_path``, ``ask_image``) return an :class:`Answer`; ``migcheck SRC DST VM``
puts the answers into its record (:class:`migcheck.probe.raw.RawHost`), the fleet audit keeps
them per host and question (:mod:`migcheck.audit.fleet`). The errors are keyed as the record
keeps them (``path:/x``, ``domcaps:KEY``, ``cpu_compare``, ...), so both hold the same texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


@dataclass
class Answer(Generic[T]):
    """The value (domcaps XML text | CpuCompareAnswer | PathStat | image header hex, or None) and its errors."""

    value: T | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def into(self, values: dict, key: str, errors: dict[str, str]) -> None:
        """Put this answer into a record: its value under ``key`` (when there is one), its errors beside."""
        if self.value is not None:
            values[key] = self.value
        errors.update(self.errors)


def failure_text(exc: Exception) -> str:
    """Why a question went unanswered, as the record keeps it: libvirt's own text, else the exception's."""
    import libvirt  # only on failure: this module stays importable before libvirt is (probe/session.py)

    from migcheck.connectors.libvirt_conn import error_text

    if isinstance(exc, libvirt.libvirtError):
        return error_text(exc)
    return f"{type(exc).__name__}: {exc}"


def asked(name: str, fn: Callable[[], T]) -> Answer[T]:
    """Run one question; on failure the answer is None with why under ``name``."""
    try:
        return Answer(fn())
    except Exception as exc:  # noqa: BLE001 - an unexpected answer is an unknown fact
        return Answer(None, {name: failure_text(exc)})
