"""Facts parsed once per distinct text: what the audit builds every pair's facts with.

A fleet repeats itself: hosts of one profile return the same capabilities (but for
the host UUID), the same domain capabilities, the same small files. ``FactCache`` is
``facts.host.Parses`` with each distinct text parsed once; ``build_host_facts(raw,
cache)`` gives exactly what ``build_host_facts(raw)`` gives (a unit test compares them).
"""

from __future__ import annotations

import re

from migcheck.facts.host import GuestFacts, Parses
from migcheck.facts.hostfiles import QEMU_CONF
from migcheck.facts.models import Domain, DomainCapabilities, HostCapabilities, Version
from migcheck.probe.raw import RawDomain

_UUID_IN_CAPS = re.compile(r"(<host>\s*<uuid>)([0-9A-Fa-f-]{36})(</uuid>)")
_PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"


class FactCache(Parses):
    def __init__(self) -> None:
        self._caps: dict[str, tuple] = {}
        self._domcaps: dict[str, tuple] = {}
        self._versions: dict[int, Version] = {}
        self._files: dict[tuple, tuple[dict[str, object], dict[str, str]]] = {}
        self.parses = 0

    def caps(self, text: str) -> tuple[HostCapabilities | None, str | None]:
        """Parsed once per text with the host UUID left out, the UUID put back."""
        key, uuid = text, None
        m = _UUID_IN_CAPS.search(text)
        if m and text.count("<uuid>") == 1:
            key, uuid = text[: m.start(2)] + _PLACEHOLDER_UUID + text[m.end(2):], m.group(2)
        hit = self._caps.get(key)
        if hit is None:
            self.parses += 1
            hit = self._caps[key] = Parses.caps(self, key)
        caps, err = hit
        if err is not None and uuid is not None:  # exotic: parse the real text, errors and all
            return Parses.caps(self, text)
        if caps is not None and uuid is not None:
            caps = caps.model_copy(update={"uuid": uuid})
        return caps, err

    def domcaps(self, text: str) -> tuple[DomainCapabilities | None, str | None]:
        hit = self._domcaps.get(text)
        if hit is None:
            self.parses += 1
            hit = self._domcaps[text] = Parses.domcaps(self, text)
        return hit

    def version(self, number: int | None) -> Version | None:
        if not number:
            return None
        v = self._versions.get(number)
        if v is None:
            v = self._versions[number] = Version(number=number)
        return v

    def guest(self, rd: RawDomain, live: Domain | None = None,
              lazy: bool = False) -> tuple[GuestFacts, dict[str, str]]:
        self.parses += 1  # each guest is its own: counted, not cached (the audit keeps what it needs)
        return Parses.guest(self, rd, live, lazy)

    def files(self, files: dict[str, str], errors: dict[str, str]) -> dict[str, object]:
        """Parsed once per distinct set of files (a host's, for every guest it is a target of)."""
        context = {k: errors[k] for k in ("host_files", f"file:{QEMU_CONF}") if k in errors}
        key = (tuple(files.items()), tuple(context.items()))
        hit = self._files.get(key)
        if hit is None:
            self.parses += 1
            added = dict(context)
            facts = Parses.files(self, files, added)
            hit = self._files[key] = (facts, {k: v for k, v in added.items() if k not in context})
        facts, parse_errors = hit
        errors.update(parse_errors)
        return facts
