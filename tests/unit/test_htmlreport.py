"""The self-contained HTML report: structure, escaping, embedded PNGs, and rendering in headless Chromium."""
from __future__ import annotations

import base64
import html
import math
import re
import shutil
import struct
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from pipeline.htmlreport import FileSection, loudness_figure, render_report, y_limits

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL_FILE = 'reel "1" <A&B> \'quoted\' — ünïcödé 映画.mov'
EVIL_ERROR = "ffmpeg: <script>alert('x & y')</script> & exit 1"
RUN_ID = "2024-05-01T10-00-00 run & <test> ü"


def _pngsize(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _curves(seconds: float, seed: int) -> dict[str, np.ndarray]:
    """Short-term loudness as the pipeline gives it: one value per 0.1 s over complete 3 s windows."""
    n = int(round(seconds / 0.1)) - 30 + 1
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 0.1
    mix = -23.0 + 4 * np.sin(t / 9) + rng.normal(0, 0.6, n)
    dx = mix - 2.5 + rng.normal(0, 0.8, n)
    dx[100:180] = -np.inf                                   # no dialogue for a while: silence reads -inf
    me = mix - 7.0 + rng.normal(0, 0.8, n)
    return {"MIX": mix, "DX": dx, "ME": me}


def _sections() -> list[FileSection]:
    common = dict(hop_s=0.1, target_lufs=-23.0, tolerance_lu=0.5)
    good = FileSection(
        title="Reel 1 — opening", file="/media/in/reel1.mov", status="ok", qc="pass",
        figures={"input LUFS": -19.4, "output LUFS": -23.02, "dialog-gated LUFS": -22.7, "speech %": 41.3,
                 "true peak dBTP": -1.4, "true peak DX dBTP": -3.2, "gain dB": -3.6, "limiter dB": 0.0,
                 "null residual dBFS": -math.inf, "LRA LU": 8.2},
        short_term=_curves(60.0, 1), speech=((2.0, 11.5), (20.0, 33.0), (41.0, 58.0)), duration_s=60.0, **common)
    bad = FileSection(
        title="", file=EVIL_FILE, status="ok", qc="fail",
        qc_reasons=("integrated -21.8 LUFS outside -23.0 ±0.5", "true peak -0.4 dBTP above -1.0"),
        figures={"output LUFS": -21.8, "true peak dBTP": -0.4, "LRA LU": math.nan},
        short_term=_curves(45.0, 2), speech=((5.0, 30.0),), duration_s=45.0, **common)
    failed = FileSection(title="Reel 3 <u>underlined</u>", file="/media/in/reel3 & co.mxf", status="failed",
                         error=EVIL_ERROR, **common)
    return [good, bad, failed]


class _Page(HTMLParser):
    """Collects what the checks need: tags with attributes, ids, links, images, text, summary rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.imgs: list[dict] = []
        self.text: list[str] = []
        self.title = ""
        self.summary_rows = 0
        self._stack: list[str] = []
        self._in_summary_body = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            assert a["id"] not in self.ids, f"duplicate id {a['id']}"
            self.ids.add(a["id"])
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        if tag == "img":
            self.imgs.append(a)
        if tag == "tbody" and "summary-table" in self._open_ids():
            self._in_summary_body = True
        if tag == "tr" and self._in_summary_body:
            self.summary_rows += 1
        if tag not in {"img", "meta", "br", "link", "input", "hr"}:
            self._stack.append((tag, a.get("id")))

    def _open_ids(self) -> set[str]:
        return {i for _, i in self._stack if i}

    def handle_endtag(self, tag):
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break
        if tag == "tbody":
            self._in_summary_body = False

    def handle_data(self, data):
        if self._stack and self._stack[-1][0] == "title":
            self.title += data
        self.text.append(data)


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


@pytest.fixture(scope="module")
def page() -> str:
    return render_report(RUN_ID, _sections(), profile="EBU R128 <broadcast>", model="htdemucs_ft",
                         created="2024-05-01 10:00 UTC")


def test_structure_images_and_anchors(page):
    p = _parse(page)
    assert p.title == f"reelsplit run {RUN_ID}"
    assert p.summary_rows == 3
    # one embedded PNG per ok file, each a real 1000 x 350 PNG
    assert len(p.imgs) == 2
    for img in p.imgs:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        data = base64.b64decode(img["src"][len(prefix):], validate=True)
        assert _pngsize(data) == (1000, 350)
        assert img["alt"]
    # every in-page link resolves; every file has a section linked from the summary
    local = [h for h in p.hrefs if h.startswith("#")]
    assert local and all(h[1:] in p.ids for h in local)
    assert {f"#file-{i}" for i in (1, 2, 3)} <= set(local)
    assert len(p.hrefs) == len(local), "only in-page links"


def test_user_strings_are_escaped(page):
    p = _parse(page)
    tags = {t for t, _ in p.tags}
    assert "script" not in tags and "u" not in tags   # "<script>" / "<u>" from user data stayed text
    assert "<script" not in page.lower()
    text = "".join(p.text)
    # decoded back to exactly what the user gave: escaped, not mangled
    assert EVIL_ERROR in text and EVIL_FILE in text and "Reel 3 <u>underlined</u>" in text
    assert "EBU R128 <broadcast>" in text
    # attributes (title="...") hold the raw file name too, without breaking out of the quotes
    assert any(a.get("title") == EVIL_FILE for _, a in p.tags)


def test_self_contained(page):
    low = page.lower()
    assert "http://" not in low and "https://" not in low and "file:" not in low
    assert "<link" not in low and "@import" not in low and "url(" not in low and "@font-face" not in low
    srcs = [a["src"] for _, a in _parse(page).tags if "src" in a]
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_content_per_status(page):
    assert page.count('class="checks"') == 1
    assert "integrated -21.8 LUFS outside -23.0 ±0.5" in page
    assert "−∞" in page          # the null residual of an exact split
    assert 'class="error"' in page
    skipped = FileSection(title="Reel 9", file="r9.mov", status="skipped")
    short = FileSection(title="Sting", file="sting.wav", status="ok", qc="pass",
                        short_term={"MIX": np.empty(0), "DX": np.empty(0), "ME": np.empty(0)},
                        target_lufs=-23.0, tolerance_lu=0.5, duration_s=1.2)
    text = render_report("r", [skipped, short], profile="p", model="m", created="c")
    assert "outputs were complete and current" in text
    assert "too short for short-term loudness" in text
    assert "<img" not in text
    with pytest.raises(ValueError, match="too short"):
        loudness_figure(short)


def test_figure_handles_silence_and_missing_target():
    n = 200
    silent = {"MIX": np.full(n, -np.inf), "DX": np.full(n, -np.inf), "ME": np.full(n, -np.inf)}
    sec = FileSection(title="", file="silence.wav", status="ok", short_term=silent, duration_s=23.0)
    assert _pngsize(loudness_figure(sec)) == (1000, 350)
    assert y_limits(-23.0, [np.array([-np.inf, -20.0])]) == (-53.0, -13.0)
    assert y_limits(-23.0, [np.array([-8.0])]) == (-53.0, -5.0)
    assert y_limits(-23.0, [np.array([-np.inf])]) == (-53.0, -13.0)
    assert y_limits(math.nan, [np.array([-10.0, -np.inf])]) == (-50.0, -7.0)


def test_bad_status_rejected():
    with pytest.raises(ValueError, match="status"):
        FileSection(title="", file="x", status="done")
    with pytest.raises(ValueError, match="qc"):
        FileSection(title="", file="x", status="ok", qc="passed")


def test_size_for_ten_files():
    """Ten 10-minute reels stay well under a few MB."""
    sec = _sections()[0]
    long = FileSection(**{**sec.__dict__, "short_term": _curves(600.0, 3), "duration_s": 600.0})
    size = len(loudness_figure(long)) * 4 / 3 * 10
    assert size < 2.5e6, size


CHROMIUM = shutil.which("chromium")


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.skipif(not CHROMIUM, reason="chromium not installed (Debian package `chromium`)")
def test_renders_in_headless_chromium(page, tmp_path):
    path = tmp_path / "run.html"
    path.write_text(page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    t0 = time.monotonic()
    out = _chromium(f"--screenshot={shot}", "--window-size=1200,2000", path.as_uri(), profile=tmp_path / "p1")
    seconds = time.monotonic() - t0
    assert shot.exists(), f"no screenshot (rc {out.returncode}): {out.stderr[-2000:]}"
    data = shot.read_bytes()
    assert _pngsize(data) == (1200, 2000)
    import matplotlib.image
    pixels = matplotlib.image.imread(str(shot))
    assert float(pixels[..., :3].var()) > 0.001, "blank screenshot"
    print(f"chromium screenshot: {seconds:.1f} s")

    dom = _chromium("--dump-dom", path.as_uri(), profile=tmp_path / "p2")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f"<title>reelsplit run {html.escape(RUN_ID, quote=False)}</title>" in dom.stdout
    assert dom.stdout.count("data:image/png;base64,") == 2


def test_recognised_lines_beside_their_timecodes():
    """Each recognised line's text sits in the same row as its timecode (media time m:ss where there is none),
    escaped; a section without words has no dialogue table."""
    lines = (("01:00:01:04", 1.186, "Where were you <last> night?"), ("", 75.2, "Out & about."))
    page = render_report("r", [FileSection("a", "a.mov", "ok", lines=lines), FileSection("b", "b.wav", "ok")],
                         profile="ebu-r128", model="m", created="now")
    assert page.count('<table class="words">') == 1 and "2 recognised lines" in page
    rows = [(html.unescape(tc), html.unescape(text)) for tc, text in
            re.findall(r'<tr><td class="tc">(.*?)</td><td>(.*?)</td></tr>', page)]
    assert rows == [("01:00:01:04", "Where were you <last> night?"), ("1:15", "Out & about.")]
