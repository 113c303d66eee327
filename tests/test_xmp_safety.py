"""memo xmp never clobbers: sidecars it cannot read safely are left alone and reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager

import pytest
from conftest import invoke, write_photo
from xmp_samples import darktable_sidecar, exiv2_xmp, needs_exiv2

from memocli.sidecars import update_sidecar
from memocli.xmp_fields import Wish, apply
from memocli.xmp_packet import MAX_PACKET_BYTES

pytestmark = needs_exiv2

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description
 xmlns:dc="http://purl.org/dc/elements/1.1/" dc:title="&lol2;"/></rdf:RDF></x:xmpmeta>"""


def bad_sidecars(folder):
    """One photo per kind of sidecar memo must not touch, and the reason it gives."""
    cases = {
        "broken": ("<x:xmpmeta><rdf:RDF>", "not valid XML"),
        "latin1": (None, "not UTF-8"),
        "laughs": (BILLION_LAUGHS, "DTDForbidden"),
        "notxmp": ("<html><body>hello</body></html>", "no rdf:RDF"),
        "huge": (None, "too large"),
        "folder": (None, "taken by a directory"),
        "link": (None, "symbolic link"),
    }
    for i, name in enumerate(cases):
        write_photo(folder / f"{name}.jpg", color=(30 * i, 90, 120))
    for name, (text, _) in cases.items():
        if text is not None:
            (folder / f"{name}.jpg.xmp").write_text(text)
    (folder / "latin1.jpg.xmp").write_bytes(
        darktable_sidecar(folder / "x.xmp").read_text().replace("holiday", "fête").encode(
            "latin-1"))
    (folder / "x.xmp").unlink()
    with open(folder / "huge.jpg.xmp", "wb") as f:
        f.truncate(MAX_PACKET_BYTES + 1)
    (folder / "folder.jpg.xmp").mkdir()
    target = darktable_sidecar(folder.parent / "elsewhere.xmp")
    (folder / "link.jpg.xmp").symlink_to(target)
    return {name: reason for name, (_, reason) in cases.items()}


def test_sidecars_memo_cannot_read_are_left_alone_and_the_run_goes_on(tmp_path,
                                                                     tiny_checkpoint):
    folder = tmp_path / "photos"
    write_photo(folder / "good.jpg")
    reasons = bad_sidecars(folder)
    before = {p.name: p.read_bytes() for p in folder.glob("*.xmp") if p.is_file()}
    target_before = (tmp_path / "elsewhere.xmp").read_bytes()

    result = invoke(["xmp", str(folder), "-w", str(tiny_checkpoint), "--stars", "-s"], code=1)
    lines = [line for line in result.output.splitlines() if ".jpg.xmp: " in line]
    assert len(lines) == len(reasons)
    for name, reason in reasons.items():
        assert any(line.startswith(str(folder / f"{name}.jpg.xmp")) and reason in line
                   for line in lines), (name, result.output)
    assert "7 sidecar(s)/file(s) could not be changed" in result.output
    assert "Traceback" not in result.output
    after = {p.name: p.read_bytes() for p in folder.glob("*.xmp") if p.is_file()}
    assert {k: after[k] for k in before} == before
    assert (tmp_path / "elsewhere.xmp").read_bytes() == target_before
    assert exiv2_xmp(folder / "good.jpg.xmp")["Xmp.memo.Rating"]


@contextmanager
def read_only(folder):
    """``folder`` read-only: by its mode, or for root (whom modes do not stop) immutable."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(folder)], capture_output=True, check=False).returncode:
        pytest.skip("root, and no immutable attribute on this file system")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_read_only_folder_is_one_clear_error(tmp_path, tiny_checkpoint):
    folder = tmp_path / "photos"
    write_photo(folder / "a.jpg")
    with read_only(folder):
        result = invoke(["xmp", str(folder), "-w", str(tiny_checkpoint), "-s"], code=1)
    assert "a.jpg.xmp: cannot write sidecar: permission denied" in result.output
    assert "Traceback" not in result.output and not list(folder.glob("*.xmp"))


def test_a_sidecar_changed_while_memo_merges_is_read_again(tmp_path):
    """darktable writing the sidecar between memo's read and write: its change survives."""
    sidecar = darktable_sidecar(tmp_path / "a.jpg.xmp", rating=2)
    wish = Wish(score={"Score": "0.7"}, optin={"rating": 5})
    calls = []

    def change(packet, created):
        calls.append(1)
        if len(calls) == 1:  # darktable saves the sidecar meanwhile (the user rejects)
            sidecar.write_text(sidecar.read_text().replace('xmp:Rating="2"',
                                                           'xmp:Rating="-1" '))
        return apply(packet, wish, overwrite=False)

    update_sidecar(str(sidecar), change)
    assert len(calls) == 2
    read = exiv2_xmp(sidecar)
    assert read["Xmp.xmp.Rating"] == "-1" and read["Xmp.memo.Score"] == "0.7"
    assert "Xmp.memo.Rating" not in read


def test_a_sidecar_keeps_its_permissions(tmp_path):
    sidecar = darktable_sidecar(tmp_path / "a.jpg.xmp")
    sidecar.chmod(0o640)
    update_sidecar(str(sidecar), lambda p, created: apply(p, Wish({"Score": "0.5"}), False))
    assert sidecar.stat().st_mode & 0o777 == 0o640
    assert exiv2_xmp(sidecar)["Xmp.memo.Score"] == "0.5"
