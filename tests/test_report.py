"""`memo report`: the HTML contact sheet, checked as text and in headless Chromium."""

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import TEST_DEVICE, invoke, tiny_checkpoint_at, write_photo
from PIL import Image
from test_bursts import scene, write_burst_and_other

WEIRD = 'we"ird <b>&amp; é.jpg'  # quotes, markup, an entity and unicode in a file name


class Page(HTMLParser):
    """The parts of a report the tests look at."""

    def __init__(self, text: str):
        super().__init__()
        self.cards: list[dict] = []  # attributes of each figure.card, in document order
        self.images: list[dict] = []
        self.bursts: list[list[int]] = []  # ranks of the cards in each burst section
        self.body: dict = {}
        self._in_burst = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = attrs.get("class", "").split()
        if tag == "body":
            self.body = attrs
        elif tag == "section" and "burst" in classes:
            self.bursts.append([])
            self._in_burst = True
        elif tag == "figure" and "card" in classes:
            self.cards.append(attrs)
            if self._in_burst:
                self.bursts[-1].append(int(attrs["data-rank"]))
        elif tag == "img":
            self.images.append(attrs)

    def handle_endtag(self, tag):
        if tag == "section":
            self._in_burst = False

    def ranks(self) -> list[int]:
        return [int(c["data-rank"]) for c in self.cards]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A report of a burst, an unrelated photo in the same second, others; and its export."""
    root = tmp_path_factory.mktemp("report")
    lib = root / "lib"
    write_burst_and_other(lib)
    scene(lib / WEIRD, 3)
    write_photo(lib / "wide.png", color=(30, 90, 200), size=(600, 300))
    ckpt = tiny_checkpoint_at(root / "tiny.pt")
    common = ["-w", str(ckpt), "--cache", str(root / "c.db"), "--device", TEST_DEVICE,
              "--workers", "0", "--burst-similarity", "0.97",
              "--include-all"]  # module-scoped: conftest's MEMO_INCLUDE_ALL is not set yet
    out = root / "out" / "report.html"
    result = invoke(["report", str(lib), "--out", str(out), "--heatmaps", "2", *common])
    rows = json.loads(invoke(["export", str(lib), "-", "--format", "json", "-s", *common]
                             ).stdout)
    return out, rows, result


def test_report_lists_every_photo_by_score_with_the_burst_grouped(built):
    out, rows, result = built
    assert f"wrote {out}: 6 photo(s), 2 heatmap(s)" in result.stderr
    page = Page(out.read_text(encoding="utf-8"))
    by_rank = {r["rank"]: r for r in rows}
    assert sorted(page.ranks()) == list(range(1, 7))
    # best frames in score order, each burst's other frames right after its best one
    assert page.ranks() == sorted(by_rank, key=lambda k: (by_rank[k]["burst"], k))
    for card in page.cards:
        row = by_rank[int(card["data-rank"])]
        assert int(card["data-burst"]) == row["burst"]
        assert float(card["data-score"]) == pytest.approx(row["raw_score"], abs=1e-6)
    frames = sorted(r["rank"] for r in rows if Path(r["path"]).name.startswith("burst_"))
    assert page.bursts == [frames]
    first = next(c for c in page.cards if int(c["data-rank"]) == frames[0])
    assert "alt" not in first["class"].split()
    assert all("alt" in c["class"].split() for c in page.cards
               if int(c["data-rank"]) in frames[1:])


def test_report_embeds_small_jpegs_escapes_names_and_needs_no_network(built):
    out, rows, _ = built
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    heat = [i for i in page.images if i.get("class") == "heat"]
    photos = [i for i in page.images if i.get("class") != "heat"]
    assert len(photos) == 6 and len(heat) == 2
    assert all(i["loading"] == "lazy" for i in page.images)
    sizes = {}
    for img in page.images:
        assert img["src"].startswith("data:image/jpeg;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1])))
        assert picture.format == "JPEG"
        sizes[img["alt"]] = picture.size
    assert sizes["wide.png"] == (256, 128)  # thumbnails, not the photos
    heads = {r["rank"] for r in rows if r["burst"] == r["rank"]}
    heat_cards = [c for c in page.cards if "has-heat" in c["class"].split()]
    assert [int(c["data-rank"]) for c in heat_cards] == sorted(heads)[:2]
    assert "<b>&amp;" not in text and WEIRD not in text
    assert 'alt="we&quot;ird &lt;b&gt;&amp;amp; é.jpg"' in text
    assert sum(int(n) for n in re.findall(r": (\d+) photo\(s\)</title>", text)) == 6


def test_report_refuses_a_folder_as_out(tmp_path, make_photos, tiny_checkpoint):
    photos = make_photos(1)
    result = invoke(["report", str(photos[0]), "--out", str(tmp_path), "-w",
                     str(tiny_checkpoint)], code=2)
    assert "is a directory" in result.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_dom(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """The DOM of ``page`` after its script ran in headless Chromium, and the console
    lines it logged."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install "
                                             "chromium); .ci/run installs it")
def test_report_renders_in_headless_chromium(built, tmp_path):
    out, rows, _ = built
    dom, console = chromium_dom(out, tmp_path)
    page = Page(dom)  # the DOM after the page's script ran
    assert page.body.get("data-photos") == "6"  # set by the script: it ran to the end
    by_rank = {r["rank"]: r for r in rows}
    assert page.ranks() == sorted(by_rank, key=lambda k: (by_rank[k]["burst"], k))
    assert console == []  # the page logs nothing: any message is an error


def test_report_group_by_folder_heads_each_folder_with_its_photos(tmp_path, tiny_checkpoint):
    lib = tmp_path / "lib"
    for folder, colours in (("trip", [(200, 40, 40), (40, 200, 40), (90, 90, 200)]),
                            ("home", [(220, 200, 40), (30, 30, 30)])):
        for i, colour in enumerate(colours):
            write_photo(lib / folder / f"{folder}_{i}.jpg", color=colour, size=(120, 90))
    common = ["-w", str(tiny_checkpoint), "--workers", "0", "--group-by", "folder"]
    out = tmp_path / "groups.html"
    invoke(["report", str(lib), "--out", str(out), "--heatmaps", "0", *common])
    rows = json.loads(invoke(["export", str(lib), "-", "--format", "json", "-s", *common]
                             ).stdout)
    texts = [out.read_text(encoding="utf-8")]
    if CHROMIUM is not None:  # as a browser shows it, after the page's script ran
        dom, console = chromium_dom(out, tmp_path)
        assert console == []
        texts.append(dom)
    for text in texts:
        page = Groups(text)
        # one section per folder, in export's order (the folder of the best photo first)
        assert [name for name, _, _ in page.groups] == list(
            dict.fromkeys(r["group"] for r in rows))
        for name, heading, ranks in page.groups:
            expected = [r["rank"] for r in rows if r["group"] == name]
            assert sorted(ranks) == expected and f"{len(expected)} photo(s)" in heading


class Groups(HTMLParser):
    """Each ``--group-by`` section of a report: its name, heading and cards' ranks."""

    def __init__(self, text: str):
        super().__init__()
        self.groups: list[tuple[str, str, list[int]]] = []
        self._depth = 0  # sections open inside the current group
        self._in_heading = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "group" in attrs.get("class", "").split():
            self.groups.append((attrs["aria-label"], "", []))
            self._depth = 1
        elif tag == "section" and self._depth:
            self._depth += 1
        elif tag == "h2" and self._depth == 1:
            self._in_heading = True
        elif tag == "figure" and self._depth:
            self.groups[-1][2].append(int(attrs["data-rank"]))

    def handle_endtag(self, tag):
        if tag == "section" and self._depth:
            self._depth -= 1
        elif tag == "h2":
            self._in_heading = False

    def handle_data(self, data):
        if self._in_heading:
            name, heading, ranks = self.groups[-1]
            self.groups[-1] = (name, heading + data, ranks)
