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
        except UnicodeDecodeError as exc:
            raise SnapshotError(f"{dir_ / name}: not UTF-8 text ({exc}); damaged: probe again with --save") from None
    return value


def _read_object(path: Path, missing: str) -> dict:
    """The JSON object in one file of a snapshot, or SnapshotError naming the file and what is wrong."""
    try:
        data = json.loads(read_text(path, MAX_FILE_BYTES))
    except FileNotFoundError:
        raise SnapshotError(missing) from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read it: {exc}") from None
    except RecursionError:
        raise SnapshotError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise SnapshotError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SnapshotError(f"{path}: a JSON {_kind(data)} where migcheck writes an object; "
                            "not a migcheck snapshot, or damaged: probe again with --save")
    return data


def _kind(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def _validation_line(exc) -> str:
    """A pydantic ValidationError in one line: where in the file, and what was expected."""
    errors = exc.errors()
    parts = [f"{'.'.join(map(str, e['loc'])) or 'the top'}: {e['msg'].lower()} (got {_kind(e.get('input'))})"
             for e in errors[:3]]
    return "; ".join(parts) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")


def load_host(dir_: Path) -> RawHost:
    from pydantic import ValidationError

    where = dir_ / "raw.json"
    data = _read_object(where, f"{dir_}: no raw.json here; is this a directory written by 'migcheck probe --save'?")
    for field, kind in (("domain", dict), ("domcaps_xml", dict)):
        if data.get(field) is not None and not isinstance(data[field], kind):
            raise SnapshotError(f"{where}: {field}: a JSON {_kind(data[field])} where migcheck writes an object; "
                                "damaged: probe again with --save")
    data["capabilities_xml"] = _resolve(dir_, data.get("capabilities_xml"))
    data["domcaps_xml"] = {k: _resolve(dir_, v) for k, v in (data.get("domcaps_xml") or {}).items()}
    if data.get("domain"):
        for field in ("live_xml", "inactive_xml", "status_xml", "log_head"):
            data["domain"][field] = _resolve(dir_, data["domain"].get(field))
    try:
        return RawHost.model_validate(data)
    except ValidationError as exc:
        raise SnapshotError(f"{where}: {_validation_line(exc)}; damaged: probe again with --save") from None
    except RecursionError:
        raise SnapshotError(f"{where}: nested too deeply; damaged: probe again with --save") from None


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
    """snapshot.json, checked: the format this migcheck reads, a known kind, a guest name, a list of flags."""
    where = dir_ / "snapshot.json"
    meta = _read_object(where, f"{dir_}: no snapshot.json; not a migcheck snapshot")
    fmt = meta.get("format")
    if type(fmt) is not int or fmt != FORMAT:  # noqa: E721 - True == 1, but is no format number
        raise SnapshotError(f"{where}: format {json.dumps(fmt)}, but this migcheck reads format {FORMAT}: "
                            "replay it with the migcheck that wrote it, or probe again with --save")
    if meta.get("kind") not in ("pair", "host"):
        raise SnapshotError(f"{where}: kind {json.dumps(meta.get('kind'))}: expected \"pair\" or \"host\"")
    if meta.get("domain") is not None and not isinstance(meta["domain"], str):
        raise SnapshotError(f"{where}: domain: a JSON {_kind(meta['domain'])} where a guest name was expected")
    flags = meta.get("flags")
    if flags is not None and not (isinstance(flags, list) and all(isinstance(f, str) for f in flags)):
        raise SnapshotError(f"{where}: flags: expected a list of virsh migrate flags (strings), "
                            f"got a JSON {_kind(flags)}")
    return meta


def load_side(dir_: Path) -> RawHost:
    """The host in a snapshot directory: a single-host probe, or the source of a pair."""
    meta = load_meta(dir_)
    sub = "host" if meta.get("kind") == "host" else "source"
    return load_host(dir_ / sub)

