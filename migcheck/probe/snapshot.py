"""Save a probe to disk and load it back, so a verdict can be replayed offline.

Layout of a snapshot directory::

    snapshot.json            kind ("pair" or "host"), domain, flags, migcheck version
    source/ target/ (pair) or host/ (single host), each with
        raw.json             every raw answer; long texts point to the files below
        capabilities.xml, domain-live.xml, domain-inactive.xml, status.xml,
        qemu-log.txt, cmdline.txt (one argument per line), domcaps-N.xml
        facts.json           the parsed facts, for people to read (not read back)

The raw form is what is replayed: a newer migcheck re-parses it with its own parsers.
"""

from __future__ import annotations

import json
from pathlib import Path

from migcheck.localfile import read_text
from migcheck.probe.raw import RawHost

FORMAT = 1
_REF = "@file:"
MAX_FILE_BYTES = 64 * 1024 * 1024  # each file of a snapshot; its XML documents are refused past 16 MiB anyway


class SnapshotError(Exception):
    pass


def _write(dir_: Path, name: str, text: str) -> str:
    (dir_ / name).write_text(text, encoding="utf-8")
    return _REF + name


def save_host(raw: RawHost, dir_: Path) -> None:
    from migcheck.facts.host import build_host_facts

    dir_.mkdir(parents=True, exist_ok=True)
    data = raw.model_dump(mode="json")
    if raw.capabilities_xml is not None:
        data["capabilities_xml"] = _write(dir_, "capabilities.xml", raw.capabilities_xml)
    data["domcaps_xml"] = {
        key: _write(dir_, f"domcaps-{n}.xml", text) for n, (key, text) in enumerate(sorted(raw.domcaps_xml.items()))
    }
    if raw.domain is not None:
        d = data["domain"]
        for field, name in (("live_xml", "domain-live.xml"), ("inactive_xml", "domain-inactive.xml"),
                            ("status_xml", "status.xml"), ("log_head", "qemu-log.txt")):
            if d.get(field) is not None:
                d[field] = _write(dir_, name, d[field])
        if raw.domain.cmdline is not None:
            (dir_ / "cmdline.txt").write_text("\n".join(a.replace("\n", "\\n") for a in raw.domain.cmdline) + "\n")
    (dir_ / "raw.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    facts = build_host_facts(raw).model_dump(mode="json", exclude={"raw"})
    (dir_ / "facts.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")


def _resolve(dir_: Path, value):
    if isinstance(value, str) and value.startswith(_REF):
        name = value[len(_REF):]
        if "/" in name or name.startswith("."):
            raise SnapshotError(f"{dir_}: bad file reference {name!r}")
        try:
            return read_text(dir_ / name, MAX_FILE_BYTES)
        except OSError as exc:
            raise SnapshotError(f"{dir_ / name}: cannot read it: {exc}") from None
    return value


def load_host(dir_: Path) -> RawHost:
    try:
        data = json.loads(read_text(dir_ / "raw.json", MAX_FILE_BYTES))
    except FileNotFoundError:
        raise SnapshotError(f"{dir_}: no raw.json here; is this a directory written by 'migcheck probe --save'?") from None
    except OSError as exc:
        raise SnapshotError(f"{dir_}/raw.json: cannot read it: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise SnapshotError(f"{dir_}/raw.json: not valid JSON ({exc})") from None
    try:
        data["capabilities_xml"] = _resolve(dir_, data.get("capabilities_xml"))
        data["domcaps_xml"] = {k: _resolve(dir_, v) for k, v in (data.get("domcaps_xml") or {}).items()}
        if data.get("domain"):
            for field in ("live_xml", "inactive_xml", "status_xml", "log_head"):
                data["domain"][field] = _resolve(dir_, data["domain"].get(field))
        return RawHost.model_validate(data)
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{dir_}: {exc}") from None


def save_pair(source: RawHost, target: RawHost, domain: str, flags: list[str], dir_: Path) -> None:
    from migcheck import __version__

    dir_.mkdir(parents=True, exist_ok=True)
    save_host(source, dir_ / "source")
    save_host(target, dir_ / "target")
    meta = {"format": FORMAT, "kind": "pair", "domain": domain, "flags": flags, "migcheck": __version__}
    (dir_ / "snapshot.json").write_text(json.dumps(meta, indent=2) + "\n")


def save_single(raw: RawHost, dir_: Path) -> None:
    from migcheck import __version__

    dir_.mkdir(parents=True, exist_ok=True)
    save_host(raw, dir_ / "host")
    meta = {"format": FORMAT, "kind": "host", "domain": raw.domain.name if raw.domain else None, "migcheck": __version__}
    (dir_ / "snapshot.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_meta(dir_: Path) -> dict:
    try:
        return json.loads(read_text(dir_ / "snapshot.json", MAX_FILE_BYTES))
    except FileNotFoundError:
        raise SnapshotError(f"{dir_}: no snapshot.json; not a migcheck snapshot") from None
    except OSError as exc:
        raise SnapshotError(f"{dir_}/snapshot.json: cannot read it: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise SnapshotError(f"{dir_}/snapshot.json: not valid JSON ({exc})") from None


def load_side(dir_: Path) -> RawHost:
    """The host in a snapshot directory: a single-host probe, or the source of a pair."""
    meta = load_meta(dir_)
    sub = "host" if meta.get("kind") == "host" else "source"
    return load_host(dir_ / sub)

