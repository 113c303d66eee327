"""memo xmp: sidecars the catalogues read, merged into and never clobbered.

Every check reads back with a real reader (exiftool, exiv2) or compares the XML itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import invoke, write_photo
from photo_formats import write_heic
from xmp_samples import (
    darktable_sidecar,
    exiftool_tags,
    exiv2_xmp,
    history,
    needs_exiftool,
    needs_exiv2,
)

from memocli.xmp_packet import Packet

pytestmark = [needs_exiftool, needs_exiv2]


@pytest.fixture
def library(tmp_path):
    """Five JPEGs, a RAW+JPEG pair (fake RAW: naming only), a PNG and a HEIC."""
    folder = tmp_path / "photos"
    for i in range(5):
        write_photo(folder / f"img_{i}.jpg", color=(20 + 45 * i,) * 3)
    write_photo(folder / "pair.JPG", color=(230, 40, 40))
    (folder / "pair.CR2").write_bytes(b"not really a raw file")
    write_photo(folder / "flat.png", color=(40, 200, 90))
    write_heic(folder / "phone.HEIC")
    return folder


def meaning(path: Path) -> dict[str, str]:
    return Packet.parse(path.read_bytes()).properties()


def test_darktable_sidecar_keeps_history_rating_and_tags(library, tiny_checkpoint):
    sidecar = darktable_sidecar(library / "img_1.jpg.xmp", rating=2)
    before, steps = meaning(sidecar), history(sidecar)
    invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--stars", "--keywords", "-s"])

    assert history(sidecar) == steps
    after = meaning(sidecar)
    kept = {k: v for k, v in after.items() if "ns.memocli.org" not in k}
    changed = {k for k in kept if kept[k] != before.get(k)}
    assert changed <= {"{http://purl.org/dc/elements/1.1/}subject",
                       "{http://ns.adobe.com/lightroom/1.0/}hierarchicalSubject"}
    packet = Packet.parse(sidecar.read_bytes())
    memo_ns = "http://ns.memocli.org/xmp/1.0/"
    assert packet.bag("http://purl.org/dc/elements/1.1/", "subject") == [
        "holiday", *packet.bag(memo_ns, "Keywords")]
    assert packet.bag("http://ns.adobe.com/lightroom/1.0/", "hierarchicalSubject") == [
        "places|beach", *packet.bag(memo_ns, "HierarchicalKeywords")]
    tags = exiftool_tags(sidecar)
    assert tags["XMP-xmp:Rating"] == 2  # the user's, untouched
    assert "holiday" in tags["XMP-dc:Subject"] and "places|beach" in tags[
        "XMP-lr:HierarchicalSubject"]
    assert 0 <= float(tags["XMP-memo:Score"]) <= 1
    steps_read = exiftool_tags(sidecar, "struct", "XMP-darktable:History")
    assert [s["Operation"] for s in steps_read["XMP-darktable:History"]] == [
        "exposure", "colorbalancergb"]
    assert steps_read["XMP-darktable:History"][1]["Multi_name"] == "<tone> & more"
    for other in sorted(library.glob("img_[02-4].jpg.xmp")):  # no rating before: memo's
        read = exiv2_xmp(other)
        assert read["Xmp.xmp.Rating"] == read["Xmp.memo.Rating"]
        assert 1 <= int(read["Xmp.xmp.Rating"]) <= 5


def test_every_photo_gets_a_sidecar_with_its_score_rank_and_stars(library, tiny_checkpoint):
    result = invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--stars",
                     "--star-map", "50:5,0:1", "--label", "40", "--label-colour", "Red"])
    rows = {}
    for photo in ("img_0.jpg", "img_1.jpg", "img_2.jpg", "img_3.jpg", "img_4.jpg", "pair.JPG",
                  "flat.png", "phone.HEIC", "pair.CR2"):
        rows[photo] = exiv2_xmp(library / f"{photo}.xmp")
    assert rows["pair.CR2"]["Xmp.memo.Score"] == rows["pair.JPG"]["Xmp.memo.Score"]
    del rows["pair.CR2"]
    ranks = sorted(int(r["Xmp.memo.Rank"]) for r in rows.values())
    assert ranks == list(range(1, 9)) and {r["Xmp.memo.Photos"] for r in rows.values()} == {"8"}
    for r in rows.values():
        pct = float(r["Xmp.memo.Percentile"])
        assert r["Xmp.xmp.Rating"] == ("5" if pct >= 50 else "1")
        assert r.get("Xmp.xmp.Label") == ("Red" if pct >= 60 else None)
        assert len(r["Xmp.memo.ContentHash"]) == 64 and r["Xmp.memo.Model"].startswith(
            "vnet_tiny")
    assert "changed 9 sidecar(s)" in result.output


def test_adobe_naming_is_for_raw_files_and_the_pair_belongs_to_the_raw(library,
                                                                      tiny_checkpoint):
    result = invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--sidecar", "adobe",
                     "--keywords"])
    assert sorted(p.name for p in library.glob("*.xmp")) == ["pair.xmp"]
    tags = exiftool_tags(library / "pair.xmp")
    assert tags["XMP-memo:Score"] and "memo|top" in tags["XMP-lr:HierarchicalSubject"]
    assert "7 photo(s) not RAW get no Adobe sidecar" in result.output

    invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--sidecar", "both", "-s"])
    assert {"pair.xmp", "pair.CR2.xmp", "pair.JPG.xmp", "img_0.jpg.xmp"} <= {
        p.name for p in library.glob("*.xmp")}


def test_remove_restores_the_meaning_exactly(library, tiny_checkpoint):
    sidecar = darktable_sidecar(library / "img_2.jpg.xmp", rating=3)
    before = meaning(sidecar)
    invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--stars", "--keywords",
            "--label", "100", "--overwrite", "-s"])
    assert exiv2_xmp(sidecar)["Xmp.memo.UserRating"] == "3"  # kept for --remove
    assert exiv2_xmp(sidecar)["Xmp.xmp.Label"] == "Green"

    result = invoke(["xmp", str(library), "--remove"])
    assert meaning(sidecar) == before
    assert history(sidecar) == history(darktable_sidecar(library / "fresh.xmp", rating=3))
    assert sorted(p.name for p in library.glob("*.xmp")) == ["fresh.xmp", "img_2.jpg.xmp"]
    assert "changed 9 sidecar(s)" in result.output


def test_stars_replace_an_unrated_zero_and_remove_finds_either_naming(library,
                                                                      tiny_checkpoint):
    zero = darktable_sidecar(library / "img_4.jpg.xmp", rating=0)  # XMP's "unrated"
    before = meaning(zero)
    invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--stars", "--sidecar", "both",
            "-s"])
    read = exiv2_xmp(zero)
    assert read["Xmp.xmp.Rating"] == read["Xmp.memo.Rating"] != "0"
    assert exiv2_xmp(library / "pair.xmp")["Xmp.memo.Rating"]

    invoke(["xmp", str(library), "--remove", "-s"])  # no --sidecar: both namings
    assert meaning(zero) == before
    assert sorted(p.name for p in library.glob("*.xmp")) == ["img_4.jpg.xmp"]


def test_a_later_run_changes_only_what_memo_wrote(library, tiny_checkpoint):
    args = ["xmp", str(library), "-w", str(tiny_checkpoint), "--stars", "-s"]
    invoke(args)
    mine, users = library / "img_0.jpg.xmp", library / "img_1.jpg.xmp"
    text = users.read_text()
    memo_stars = exiv2_xmp(users)["Xmp.xmp.Rating"]
    users.write_text(text.replace(f'xmp:Rating="{memo_stars}"', 'xmp:Rating="-1"'))  # rejected
    mine_before = mine.read_bytes()

    invoke(args + ["--star-map", "0:4"])
    assert exiv2_xmp(users)["Xmp.xmp.Rating"] == "-1"  # the user's reject stays
    assert "Xmp.memo.Rating" not in exiv2_xmp(users)  # no longer memo's
    assert exiv2_xmp(mine)["Xmp.xmp.Rating"] == "4" and mine.read_bytes() != mine_before

    invoke(["xmp", str(library), "--remove", "-s"])
    assert exiv2_xmp(users) == {"Xmp.xmp.Rating": "-1"}
    assert not mine.exists()


def test_dry_run_writes_nothing_and_says_what_would_change(library, tiny_checkpoint):
    sidecar = darktable_sidecar(library / "img_3.jpg.xmp")
    before = sidecar.read_bytes()
    result = invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--stars", "--dry-run"])
    assert sidecar.read_bytes() == before
    assert sorted(p.name for p in library.glob("*.xmp")) == ["img_3.jpg.xmp"]
    assert "img_0.jpg.xmp: memo:Score=" in result.output and "xmp:Rating=" in result.output
    assert "would change 9 sidecar(s)" in result.output


def test_embed_keeps_every_other_tag(tmp_path, tiny_checkpoint):
    from photo_formats import exif_bytes

    photo = write_photo(tmp_path / "shot.jpg", exif=exif_bytes(make="Canon", model="R5"))
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Creator=Ann",
                    "-IPTC:Keywords=trip", "-XMP-xmp:Label=Blue", str(photo)], check=True)
    before = exiftool_tags(photo)
    invoke(["xmp", str(photo), "-w", str(tiny_checkpoint), "--embed", "--stars",
            "--label", "100", "-s"])
    after = exiftool_tags(photo)
    memo_keys = {"XMP-memo:", "XMP-xmp:Rating", "System:File", "File:", "XMP-x:"}
    same = {k for k in before if not k.startswith(tuple(memo_keys))}
    assert {k: after.get(k) for k in same} == {k: before[k] for k in same}
    assert after["XMP-xmp:Label"] == "Blue" and after["XMP-xmp:Rating"] == 5
    assert after["XMP-memo:Rating"] == 5 and "XMP-memo:Label" not in after
    assert after["IFD0:Make"] == "Canon" and after["IPTC:Keywords"] == "trip"
    assert "XMP-memo:ContentHash" not in after  # it would change the hash it names

    again = invoke(["xmp", str(photo), "-w", str(tiny_checkpoint), "--embed", "--stars",
                    "--label", "100"])
    assert "1 from the cache, 0 scored now" in again.stderr  # exiftool changed no pixel
    assert "changed 1 sidecar(s)/file(s), 1 already up to date" in again.stderr
    assert exiftool_tags(photo) == after | {k: v for k, v in exiftool_tags(photo).items()
                                            if k.startswith(("System:", "File:"))}

    invoke(["xmp", str(photo), "--embed", "--remove", "-s"])
    back = exiftool_tags(photo)
    assert not [k for k in back if k.startswith("XMP-memo:")] and "XMP-xmp:Rating" not in back
    assert {k: back.get(k) for k in same} == {k: before[k] for k in same}
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_embed_without_exiftool_says_how_to_install_it(library, tiny_checkpoint, monkeypatch,
                                                      tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--embed"], code=1)
    assert "needs exiftool" in result.output and "apt install libimage-exiftool-perl" in (
        result.output)
    assert not list(library.glob("*.xmp"))


@pytest.mark.parametrize("spec", ["95:5,50:3", "a:5", "95:6", "101:1,0:1"])
def test_a_wrong_star_map_is_a_usage_error(library, tiny_checkpoint, spec):
    result = invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--star-map", spec],
                    code=2)
    assert "--star-map" in result.output


def test_no_stars_where_the_user_rated_in_another_sidecar_or_inside_the_photo(
        library, tiny_checkpoint):
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-xmp:Rating=3",
                    str(library / "img_0.jpg")], check=True)
    darktable_sidecar(library / "pair.xmp", rating=4)  # rated in Lightroom: the RAW's
    invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--stars", "-s"])
    for name in ("img_0.jpg.xmp", "pair.JPG.xmp", "pair.CR2.xmp"):
        read = exiv2_xmp(library / name)
        assert "Xmp.memo.Score" in read and "Xmp.xmp.Rating" not in read, name
    assert exiv2_xmp(library / "img_1.jpg.xmp")["Xmp.memo.Rating"]
    assert exiv2_xmp(library / "pair.xmp")["Xmp.xmp.Rating"] == "4"


def test_diverse_labels_the_varied_picks_of_export_diverse(library, tiny_checkpoint):
    """--label 40 --diverse labels as many photos as --label 40 does, the ones
    `memo export --diverse` lists first; without --label it is a usage error."""
    invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--label", "40", "--diverse",
            "--trade-off", "0.3", "-s"])
    labelled = {p.name.removesuffix(".xmp") for p in library.glob("*.xmp")
                if exiv2_xmp(p).get("Xmp.xmp.Label") == "Green"} - {"pair.CR2"}
    rows = json.loads(invoke(["export", str(library), "-", "--format", "json", "-w",
                              str(tiny_checkpoint), "--diverse", "--trade-off", "0.3", "-s"]
                             ).stdout)
    by_rank = {Path(r["path"]).name for r in rows if r["percentile"] >= 60}  # --label 40's
    picks = {Path(r["path"]).name for r in rows[:len(by_rank)]}
    assert labelled == picks and len(picks) == len(by_rank) > 1
    assert picks != by_rank  # the fixture's photos are alike enough for variety to tell
    result = invoke(["xmp", str(library), "-w", str(tiny_checkpoint), "--diverse"], code=2)
    assert "give --label" in result.output
