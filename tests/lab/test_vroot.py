"""tests.lab.vroot without building anything: cache keys, the mirror, reuse and rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab import vroot
from tests.lab.vroot import BACKPORTS, REQUIRED_FILES, VersionedRoot, apt_mirror, ensure_root


def test_key_follows_the_recipe():
    assert BACKPORTS.key == VersionedRoot().key and BACKPORTS.key.startswith("bookworm-bookworm-backports-")
    assert VersionedRoot(packages=("libvirt-daemon-system",)).key != BACKPORTS.key
    assert VersionedRoot(target="bookworm").key != BACKPORTS.key
    assert VersionedRoot.from_state(BACKPORTS.to_state()) == BACKPORTS
    with pytest.raises(ValueError):
        VersionedRoot(packages=("ok", "bad name"))


def test_mirror_from_deb822_and_one_line_sources(tmp_path: Path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "other.sources").write_text("Types: deb\nURIs: https://example.invalid/x\nSuites: nodistro\nComponents: main\n")
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.example.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://security.example.org/debian-security\nSuites: bookworm-security\nComponents: main\n")
    assert apt_mirror("bookworm", tmp_path) == "http://deb.example.org/debian"
    (d / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text("# comment\ndeb [arch=amd64] http://mirror.example.net/debian bookworm main\n")
    assert apt_mirror("bookworm", tmp_path) == "http://mirror.example.net/debian"
    with pytest.raises(vroot.LabError):
        apt_mirror("trixie", tmp_path)


def _fake_build(calls: list):
    def build(spec, tmp: Path, log) -> dict:
        calls.append(tmp.name)
        for f in REQUIRED_FILES:
            (tmp / "root" / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "root" / f).write_text("")
        manifest = {"versions": {"libvirt-daemon": "11.3.0-2~bpo12+1"}}
        (tmp / vroot.MANIFEST).write_text(json.dumps(manifest))
        return manifest
    return build


def test_reuse_when_complete_rebuild_when_not(tmp_path: Path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(vroot, "_build", _fake_build(calls))
    first = ensure_root(BACKPORTS, tmp_path)
    assert first.built_now and first.path == tmp_path / BACKPORTS.key / "root" and len(calls) == 1
    again = ensure_root(BACKPORTS, tmp_path)
    assert not again.built_now and again.versions["libvirt-daemon"].startswith("11.3") and len(calls) == 1
    (first.path / "usr/sbin/libvirtd").unlink()  # incomplete: rebuilt beside it, then swapped in
    stale = tmp_path / f".{BACKPORTS.key}.tmp-999999"  # a build that died
    stale.mkdir()
    third = ensure_root(BACKPORTS, tmp_path)
    assert third.built_now and (third.path / "usr/sbin/libvirtd").exists() and len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [BACKPORTS.key, f"{BACKPORTS.key}.lock"]


def test_a_failed_build_leaves_nothing(tmp_path: Path, monkeypatch):
    def broken(spec, tmp, log):
        (tmp / "root").mkdir(parents=True)
        raise vroot.LabError("debootstrap failed")
    monkeypatch.setattr(vroot, "_build", broken)
    with pytest.raises(vroot.LabError):
        ensure_root(BACKPORTS, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"{BACKPORTS.key}.lock"]
