"""The run's self-contained HTML report (`OUT/reports/<run>.html`): a summary table of every input file with
its QC verdict, then one section per file with a short-term loudness plot (PNG embedded as base64) with its QC
events by kind, its figures, its failed checks and, from pipeline.excerpts, excerpts of MIX / DX / M&E to hear
(Opus embedded as base64, a MIX / DX / M&E switch) with DX / M&E spectrograms, and its events in a sortable table.
No external CSS, JS, fonts, images or audio: it opens offline in any browser. A section is kept under
excerpts.SECTION_CAP_BYTES by dropping its last excerpts."""
from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
from matplotlib.figure import Figure  # a bare Figure renders with Agg; pyplot (and its global state) unused
from matplotlib.ticker import FuncFormatter, MultipleLocator

from .excerpts import SECTION_CAP_BYTES, Excerpt, Listed, Listening
from .qcevents import KINDS

STATUSES = ("ok", "failed", "skipped")
VERDICTS = ("pass", "fail", "")

# Keys of FileSection.figures that the summary table shows (the section's own table shows every key).
FIG_OUTPUT_LUFS = "output LUFS"
FIG_TRUE_PEAK = "true peak dBTP"        # max over every written stem
FIG_SPEECH_PCT = "speech %"

SHORT_TERM_WINDOW_S = 3.0               # EBU Tech 3341 short-term window; value i covers [i*hop, i*hop + 3 s)
STEMS = (("MIX", "MIX", "#3b3b3b"), ("DX", "DX", "#1f6fb4"), ("ME", "M&E", "#e07b1a"))  # key, label, colour
_PNG_SIZE_IN, _PNG_DPI = (10.0, 3.5), 100                       # 1000 x 350 px
EVENT_LANE_PX = 18                      # height of one kind's lane of QC events under the loudness plot
KIND_COLOURS = {"speech_in_me": "#d62728", "bed_in_dx": "#9467bd", "silent_channel": "#7f7f7f",
                "dropout": "#8c564b", "clicks": "#e377c2", "phase": "#17becf", "lfe_band": "#bcbd22",
                "dc_offset": "#2ca02c", "clipping": "#ff7f0e", "duration_mismatch": "#1f77b4"}
_REASONS_SHOWN = 90                     # characters of QC reasons in a summary cell before "…"


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays field by field is ambiguous
class FileSection:
    """What the report shows for one input file. Levels in LUFS, peaks in dBTP, times in seconds."""

    title: str
    file: str
    status: str                                 # ok | failed | skipped
    error: str = ""                             # one line when failed
    qc: str = ""                                # pass | fail | "" (no verdict: failed/skipped)
    qc_reasons: tuple[str, ...] = ()            # each failed check, "measured vs allowed"
    figures: Mapping[str, float] = field(default_factory=dict)  # name (with unit) -> value; FIG_* keys summarised
    hop_s: float = 0.1                          # short-term loudness hop
    short_term: Mapping[str, np.ndarray] = field(default_factory=dict)  # "MIX"/"DX"/"ME" -> LUFS per hop; -inf = silence
    target_lufs: float = math.nan
    tolerance_lu: float = math.nan
    speech: tuple[tuple[float, float], ...] = ()  # dialogue regions (start_s, end_s)
    duration_s: float = math.nan
    lines: tuple[tuple[str, float, str], ...] = ()  # recognised lines: (timecode or "", start_s, text)
    listening: Listening | None = None          # QC events and excerpts to hear (pipeline.excerpts)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if self.qc not in VERDICTS:
            raise ValueError(f"qc must be 'pass', 'fail' or '', got {self.qc!r}")
        if not self.hop_s > 0:
            raise ValueError(f"hop_s must be > 0 s, got {self.hop_s!r}")

    @property
    def has_short_term(self) -> bool:
        """True when at least one stem has short-term loudness values (audio of 3 s or more)."""
        return any(np.size(v) for v in self.short_term.values())


# --------------------------------------------------------------------------------------------------
# the plot


def _clock(seconds: float, _pos: object = None) -> str:
    """Axis label for a time in seconds: m:ss, or h:mm:ss from an hour on."""
    s = int(round(max(seconds, 0.0)))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


_TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200)


def _tick_step(span_s: float, most: int = 12) -> float:
    """The smallest clock-friendly tick spacing (1 s … 2 h) giving at most `most` intervals over span_s."""
    return float(next((step for step in _TICK_STEPS_S if span_s / step <= most), _TICK_STEPS_S[-1]))


def y_limits(target_lufs: float, curves: Iterable[np.ndarray]) -> tuple[float, float]:
    """Loudness axis range: target − 30 .. max(target + 10, loudest finite value + 3) LU. Without a target
    (nan) the range follows the data: loudest − 40 .. loudest + 3 (−60 .. 0 when everything is silent)."""
    finite = [c[np.isfinite(c)] for c in curves]
    peak = max((float(c.max()) for c in finite if c.size), default=math.nan)
    if math.isfinite(target_lufs):
        top = target_lufs + 10.0 if math.isnan(peak) else max(target_lufs + 10.0, peak + 3.0)
        return target_lufs - 30.0, top
    if math.isnan(peak):
        return -60.0, 0.0
    return peak - 40.0, peak + 3.0


def loudness_figure(section: FileSection) -> bytes:
    """PNG of the short-term loudness of MIX, DX and M&E over time, the target as a line with the tolerance as a
    band, the speech regions as bars in a strip under the plot and, when the section has QC events, one lane per
    kind under that (coloured by kind, failing events solid) with the failing ones shaded on the plot too.
    1000 × 350 px without events, taller by EVENT_LANE_PX per kind with them.

    Value i of each curve is drawn at the end of its window, i*hop_s + 3 s; −inf (silence) is not drawn.
    Raises ValueError when no stem has short-term values (audio shorter than 3 s).
    """
    if not section.has_short_term:
        raise ValueError(f"{section.file}: too short for short-term loudness (needs {SHORT_TERM_WINDOW_S:g} s)")
    curves = {key: np.asarray(section.short_term[key], dtype=np.float64).ravel()
              for key, _, _ in STEMS if key in section.short_term}
    longest = max(c.size for c in curves.values())
    end = section.duration_s if math.isfinite(section.duration_s) and section.duration_s > 0 else \
        (longest - 1) * section.hop_s + SHORT_TERM_WINDOW_S
    kinds = event_kinds(section)
    width, height = _PNG_SIZE_IN
    fig = Figure(figsize=(width, height + len(kinds) * EVENT_LANE_PX / _PNG_DPI), dpi=_PNG_DPI, layout="constrained")
    ratios = [7, 1] + ([len(kinds) * EVENT_LANE_PX * 7 / 245] if kinds else [])
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    ax, strip = axes[0], axes[1]
    _draw_curves(ax, section, curves)
    ax.set_xlim(0.0, end)
    _draw_speech(strip, section)
    if kinds:
        _draw_events(ax, axes[2], section, kinds, end)
    bottom = axes[-1]
    bottom.xaxis.set_major_formatter(FuncFormatter(_clock))
    bottom.xaxis.set_major_locator(MultipleLocator(_tick_step(end)))
    bottom.set_xlabel("time (m:ss)" if end < 3600 else "time (h:mm:ss)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_PNG_DPI, metadata={"Software": None},
                pil_kwargs={"optimize": True})
    return buf.getvalue()


def _draw_curves(ax, section: FileSection, curves: Mapping[str, np.ndarray]) -> None:
    """The target, its tolerance band and the three loudness curves on `ax`."""
    target, tol = section.target_lufs, section.tolerance_lu
    if math.isfinite(target):
        if math.isfinite(tol) and tol > 0:
            ax.axhspan(target - tol, target + tol, color="#2e9d4f", alpha=0.2, lw=0, zorder=1,
                       label=f"target {target:g} ±{tol:g} LU")
        # the target line stays visible on top of the curves
        ax.axhline(target, color="#1b7a3a", lw=1.0, ls="--", zorder=5,
                   label=None if math.isfinite(tol) and tol > 0 else f"target {target:g} LUFS")
    for key, label, colour in STEMS:
        if key not in curves or not curves[key].size:
            continue
        values = curves[key].copy()
        values[~np.isfinite(values)] = np.nan          # a gap in the line, not a plunge to -inf
        t = np.arange(values.size) * section.hop_s + SHORT_TERM_WINDOW_S
        ax.plot(t, values, color=colour, lw=1.4 if key == "MIX" else 1.0, label=label,
                alpha=1.0 if key == "MIX" else 0.9, zorder=2 if key == "MIX" else 3)
    ax.set_ylim(*y_limits(target, curves.values()))
    ax.set_ylabel("short-term LUFS")
    ax.grid(True, color="#dddddd", lw=0.6)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=5, frameon=False, fontsize=9,
              borderaxespad=0.2, handlelength=1.8)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)


def _draw_speech(strip, section: FileSection) -> None:
    bars = [(s, e - s) for s, e in section.speech if e > s]
    if bars:
        strip.broken_barh(bars, (0.15, 0.7), facecolors="#1f6fb4", alpha=0.75)
    strip.set_ylim(0.0, 1.0)
    strip.set_yticks([])
    strip.set_ylabel("speech", rotation=0, ha="right", va="center", fontsize=9)
    for spine in ("top", "right", "left"):
        strip.spines[spine].set_visible(False)


def event_kinds(section: FileSection) -> list[str]:
    """The kinds of the section's listed events, in qcevents.KINDS order."""
    present = {item.event.kind for item in section.listening.events} if section.listening else set()
    return [k for k in KINDS if k in present] + sorted(present - set(KINDS))


def _draw_events(ax, lanes, section: FileSection, kinds: list[str], end: float) -> None:
    """One lane per kind on `lanes` (failing events solid, the others faint; at least 0.2 % of the reel wide, so
    a click shows), and the failing events shaded across the loudness plot `ax`."""
    least = end * 0.002
    for lane, kind in enumerate(reversed(kinds)):
        items = [i for i in section.listening.events if i.event.kind == kind]
        colour = KIND_COLOURS.get(kind, "#777777")
        for fails, alpha in ((False, 0.35), (True, 0.95)):
            bars = [(i.event.start_s, max(i.event.duration_s, least)) for i in items if i.fails == fails]
            if bars:
                lanes.broken_barh(bars, (lane + 0.15, 0.7), facecolors=colour, alpha=alpha, lw=0)
                if fails:
                    ax.broken_barh(bars, (0, 1), transform=ax.get_xaxis_transform(), facecolors=colour,
                                   alpha=0.12, lw=0, zorder=0)
    lanes.set_ylim(0.0, len(kinds))
    lanes.set_yticks([i + 0.5 for i in range(len(kinds))], list(reversed(kinds)), fontsize=7)
    lanes.tick_params(axis="y", length=0)
    for spine in ("top", "right", "left"):
        lanes.spines[spine].set_visible(False)


# --------------------------------------------------------------------------------------------------
# the page

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#222;
 margin:0;padding:24px 32px 48px;background:#fafafa;font-size:14px;line-height:1.45}
main{max-width:1080px;margin:0 auto}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:0 0 2px}
.meta{color:#555;margin:0 0 4px}
.meta b{color:#222;font-weight:600}
.counts span{display:inline-block;margin-right:14px}
table{border-collapse:collapse;background:#fff}
th,td{padding:5px 10px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
th{font-weight:600;background:#f0f0f0;font-size:13px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
#summary-table{width:100%;margin:16px 0 28px;border:1px solid #ddd}
tr.v-pass{background:#f1f9f3} tr.v-fail{background:#fdf1f0} tr.v-failed{background:#fbe9e7}
tr.v-skipped{background:#f4f4f4;color:#555}
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600;white-space:nowrap}
.b-pass,.b-ok{background:#d7efdd;color:#1d6b34} .b-fail,.b-failed{background:#f7d4d0;color:#a3231a}
.b-skipped,.b-none{background:#e6e6e6;color:#555}
.reasons{color:#a3231a;font-size:13px}
section.file{background:#fff;border:1px solid #ddd;border-radius:6px;padding:16px 20px;margin:0 0 20px}
.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;color:#555;
 word-break:break-all;margin:0 0 10px}
.plot{max-width:100%;height:auto;display:block;margin:6px 0}
.caption{color:#666;font-size:12px;margin:0 0 12px}
.figs{font-size:13px;margin:10px 0 0;border:1px solid #e4e4e4}
.figs th{background:#f6f6f6;font-weight:500;color:#444}
.figs td{padding-right:18px}
.checks-h{color:#a3231a;font-weight:600;margin:8px 0 2px}
.checks{color:#a3231a;margin:0;padding-left:20px}
.error{background:#fbe9e7;border-left:4px solid #c62828;padding:8px 12px;color:#8e1b12;
 font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;white-space:pre-wrap;
 word-break:break-word}
.note{color:#666;font-style:italic}
.top{float:right;font-size:12px;color:#777;text-decoration:none}
a{color:#1f5f9e}
.listen-h,.events-h{font-weight:600;margin:14px 0 6px}
.excerpts{display:flex;flex-wrap:wrap;gap:12px}
.ex{border:1px solid #e4e4e4;border-radius:5px;padding:8px 10px;width:calc(50% - 6px);min-width:320px}
.ex-fail{border-color:#e2a29b}
.ex-h{margin:0;font-weight:600;font-size:13px}
.ex .caption{margin:0 0 4px}
.abc button{font:inherit;font-size:12px;padding:2px 10px;margin:0 4px 4px 0;border:1px solid #bbb;
 border-radius:4px;background:#f4f4f4;cursor:pointer}
.abc button.on{background:#1f5f9e;color:#fff;border-color:#1f5f9e}
.ex audio{width:100%;height:32px;display:block}
.ex audio[hidden]{display:none}
.spec{max-width:100%;height:auto;display:block;margin-top:6px}
table.events{font-size:12px;border:1px solid #e4e4e4;width:100%}
table.events th{cursor:pointer;user-select:none}
table.events td.tc{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:nowrap}
tr.ev-fail{background:#fdf1f0} tr.ev-fail td:first-child{color:#a3231a;font-weight:600}
"""

# The page's only script, present when a section has events or excerpts: the MIX / DX / M&E switch (the shown
# player hands its position and play state to the chosen one), each player's duration into data-duration once
# known (what the headless-browser test reads), and sorting an events table by the clicked column (data-v when
# a cell has one, as a number when both are numbers).
_JS = """
document.querySelectorAll(".ex").forEach(function(ex){
 ex.querySelectorAll("audio").forEach(function(a){
  function dur(){if(isFinite(a.duration))a.setAttribute("data-duration",a.duration.toFixed(3));}
  a.addEventListener("loadedmetadata",dur);a.addEventListener("durationchange",dur);dur();});
 ex.querySelectorAll(".abc button").forEach(function(b){b.addEventListener("click",function(){
  var now=ex.querySelector("audio:not([hidden])"),next=ex.querySelector('audio[data-stem="'+b.dataset.stem+'"]');
  if(!next||next===now)return;var t=now.currentTime,playing=!now.paused;now.pause();now.hidden=true;
  next.hidden=false;next.currentTime=t;if(playing)next.play();
  ex.querySelectorAll(".abc button").forEach(function(o){o.classList.toggle("on",o===b);});});});});
document.querySelectorAll("table.sortable th").forEach(function(th,col){th.addEventListener("click",function(){
 var body=th.closest("table").tBodies[0],up=th.dataset.dir!=="up";th.dataset.dir=up?"up":"down";
 function key(r){var c=r.cells[col];return c.dataset.v!==undefined?c.dataset.v:c.textContent;}
 var rows=Array.prototype.slice.call(body.rows);rows.sort(function(a,b){var x=key(a),y=key(b),
  nx=parseFloat(x),ny=parseFloat(y),d=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return up?d:-d;});
 rows.forEach(function(r){body.appendChild(r);});});});
"""


def _e(text: object) -> str:
    """HTML-escape any value for text and quoted attributes."""
    return html.escape(str(text), quote=True)


def _num(value: float | None, digits: int = 1) -> str:
    """A figure as text: one decimal by default, "−∞" for -inf (silence), "—" when missing or nan."""
    if value is None:
        return "—"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "−∞" if v < 0 else "+∞"
    return f"{v:.{digits}f}".replace("-", "−")


def _speech_pct(sec: FileSection) -> float:
    """Speech share in %: the figure when given, else from the regions and the duration (nan if unknown)."""
    if FIG_SPEECH_PCT in sec.figures:
        return float(sec.figures[FIG_SPEECH_PCT])
    if sec.speech and math.isfinite(sec.duration_s) and sec.duration_s > 0:
        return 100.0 * sum(max(0.0, e - s) for s, e in sec.speech) / sec.duration_s
    return math.nan


def _verdict_class(sec: FileSection) -> str:
    return f"v-{sec.qc}" if sec.status == "ok" and sec.qc else f"v-{sec.status}"


def _badge(word: str, kind: str) -> str:
    return f'<span class="badge b-{kind}">{_e(word)}</span>'


def _qc_badge(sec: FileSection) -> str:
    return _badge(sec.qc, sec.qc) if sec.qc else _badge("—", "none")


def _abbrev(reasons: tuple[str, ...]) -> str:
    """Summary cell text: the reasons joined by "; ", cut at _REASONS_SHOWN characters."""
    text = "; ".join(reasons)
    return text if len(text) <= _REASONS_SHOWN else text[: _REASONS_SHOWN - 1].rstrip() + "…"


def _summary(sections: list[FileSection]) -> str:
    rows = []
    for i, sec in enumerate(sections, 1):
        name = sec.title or sec.file
        reasons = _abbrev(sec.qc_reasons) if sec.qc_reasons else (sec.error if sec.status == "failed" else "")
        full = "; ".join(sec.qc_reasons) or sec.error
        rows.append(
            f'<tr class="{_verdict_class(sec)}"><td class="num">{i}</td>'
            f'<td><a href="#file-{i}" title="{_e(sec.file)}">{_e(name)}</a></td>'
            f"<td>{_badge(sec.status, sec.status)}</td><td>{_qc_badge(sec)}</td>"
            f'<td class="num">{_num(sec.figures.get(FIG_OUTPUT_LUFS))}</td>'
            f'<td class="num">{_num(sec.figures.get(FIG_TRUE_PEAK))}</td>'
            f'<td class="num">{_num(_speech_pct(sec), 0)}</td>'
            f'<td class="reasons" title="{_e(full)}">{_e(reasons)}</td></tr>'
        )
    return ('<table id="summary-table"><thead><tr><th class="num">#</th><th>file</th><th>status</th><th>QC</th>'
            '<th class="num">integrated out<br>LUFS</th><th class="num">true peak<br>dBTP</th>'
            '<th class="num">speech<br>%</th><th>failed checks / error</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _figures_table(figures: Mapping[str, float], per_row: int = 3) -> str:
    """The figures as a small table, `per_row` name/value pairs to a row."""
    if not figures:
        return ""
    cells = [f'<th>{_e(k)}</th><td class="num">{_num(v)}</td>' for k, v in figures.items()]
    cells += ["<th></th><td></td>"] * (-len(cells) % per_row)
    rows = "".join("<tr>" + "".join(cells[i:i + per_row]) + "</tr>" for i in range(0, len(cells), per_row))
    return f'<table class="figs"><tbody>{rows}</tbody></table>'


def _plot_block(sec: FileSection) -> str:
    if not sec.has_short_term:
        return (f'<p class="note">too short for short-term loudness (needs at least '
                f"{SHORT_TERM_WINDOW_S:g} s of audio)</p>")
    png = base64.b64encode(loudness_figure(sec)).decode("ascii")
    tol = f" ±{sec.tolerance_lu:g} LU" if math.isfinite(sec.tolerance_lu) else ""
    target = f"target {sec.target_lufs:g} LUFS{tol} (green); " if math.isfinite(sec.target_lufs) else ""
    return (f'<img class="plot" width="1000" height="350" alt="short-term loudness of MIX, DX and M&amp;E: '
            f'{_e(sec.file)}" src="data:image/png;base64,{png}">'
            f'<p class="caption">Short-term loudness (3 s window, drawn at its end; silence not drawn), '
            f"{_e(target)}bars below: detected dialogue{_events_caption(sec)}.</p>")


def _events_caption(sec: FileSection) -> str:
    if not event_kinds(sec):
        return ""
    shown = len(sec.listening.events)
    which = f"the worst {shown} of {sec.listening.total}" if sec.listening.total > shown else "all"
    return f"; under it the QC events ({which}), a lane per kind, failing ones solid and shaded on the plot"


def _lines_block(sec: FileSection) -> str:
    """The recognised lines, each text beside its timecode (media time where the source has no timecode)."""
    if not sec.lines:
        return ""
    rows = "".join(f"<tr><td class=\"tc\">{_e(tc or _clock(start))}</td><td>{_e(text)}</td></tr>"
                   for tc, start, text in sec.lines)
    return (f'<details class="words"><summary>Dialogue: {len(sec.lines)} recognised lines</summary>'
            f'<table class="words"><tr><th>TC in</th><th>text</th></tr>{rows}</table></details>')


STEM_LABELS = {key: label for key, label, _ in STEMS}


def _audio_tag(key: str, data: bytes, on: bool) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return (f'<audio data-stem="{key}" controls preload="metadata"{"" if on else " hidden"} '
            f'src="data:audio/webm;codecs=opus;base64,{b64}"></audio>')


def _excerpt(i: int, k: int, ex: Excerpt) -> str:
    """One excerpt: its title, the MIX / DX / M&E switch over three time-aligned players (the event's own stem
    first), and its spectrogram."""
    stem = ex.listed.event.stem if ex.listed is not None else ""
    first = stem if stem in ex.audio else ("MIX" if "MIX" in ex.audio else next(iter(ex.audio)))
    buttons = "".join(f'<button type="button" data-stem="{key}"{" class=on" if key == first else ""}>'
                      f"{_e(STEM_LABELS.get(key, key))}</button>" for key in ex.audio)
    players = "".join(_audio_tag(key, data, key == first) for key, data in ex.audio.items())
    detail = f" — {_e(ex.listed.event.detail)}" if ex.listed is not None and ex.listed.event.detail else ""
    spec = ""
    if ex.spectrogram:
        b64 = base64.b64encode(ex.spectrogram).decode("ascii")
        spec = (f'<img class="spec" width="640" height="280" alt="spectrogram of DX and M&amp;E, '
                f'{ex.start_s:.1f}–{ex.end_s:.1f} s" src="data:image/png;base64,{b64}">')
    return (f'<div class="ex{" ex-fail" if ex.listed is not None and ex.listed.fails else ""}" '
            f'id="file-{i}-ex-{k}" data-seconds="{ex.end_s - ex.start_s:.3f}">'
            f'<p class="ex-h">{_e(ex.title)}{detail}</p>'
            f'<p class="caption">{_clock(ex.start_s)}–{_clock(ex.end_s)} ({ex.start_s:.2f}–{ex.end_s:.2f} s of '
            f'media time)</p><div class="abc">{buttons}</div>{players}{spec}</div>')


def _excerpt_index(listening: Listening) -> dict[tuple, int]:
    """Which excerpt (its number) plays each excerpted event, by the event's identity."""
    return {(ex.listed.event, ex.listed.tc_in): k for k, ex in enumerate(listening.excerpts, 1)
            if ex.listed is not None}


def _event_row(i: int, item: Listed, heard: int | None) -> str:
    e = item.event
    tc_in = item.tc_in or _clock(e.start_s)
    level = "" if e.level_db is None or not math.isfinite(e.level_db) else f"{e.level_db:.1f}"
    play = f' <a href="#file-{i}-ex-{heard}" title="listen">&#9654;</a>' if heard else ""
    return (f'<tr class="{"ev-fail" if item.fails else "ev"}"><td data-v="{int(item.fails)}">'
            f'{"fail" if item.fails else ""}</td><td>{_e(e.kind)}{play}</td>'
            f'<td class="tc" data-v="{e.start_s:.3f}">{_e(tc_in)}</td>'
            f'<td class="tc" data-v="{e.end_s:.3f}">{_e(item.tc_out or _clock(e.end_s))}</td>'
            f'<td class="num" data-v="{e.duration_s:.3f}">{e.duration_s:.2f}</td><td>{_e(e.stem)}</td>'
            f'<td>{_e(e.channel)}</td><td class="num" data-v="{level or "-1e9"}">{level.replace("-", "−")}</td>'
            f'<td class="num">{e.words}</td><td>{_e(e.detail)}</td></tr>')


def _events_table(i: int, listening: Listening) -> str:
    """The events as a table sortable by any column (click its header), failing ones highlighted."""
    if not listening.events:
        return ""
    heard = _excerpt_index(listening)
    rows = "".join(_event_row(i, item, heard.get((item.event, item.tc_in))) for item in listening.events)
    fails = sum(item.fails for item in listening.events)
    more = (f" (the worst {len(listening.events)} of {listening.total}; all are in {_e(listening.source)})"
            if listening.total > len(listening.events) else "")
    heads = "".join(f'<th{" class=num" if n else ""}>{h}</th>' for h, n in (
        ("QC", 0), ("kind", 0), ("TC in", 0), ("TC out", 0), ("seconds", 1), ("stem", 0), ("channel", 0),
        ("level dB", 1), ("words", 1), ("detail", 0)))
    return (f'<p class="events-h">QC events: {listening.total}, {fails} failing{more}. Click a header to sort.</p>'
            f'<table class="events sortable"><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>')


def _listening_block(i: int, sec: FileSection, excerpts: tuple[Excerpt, ...], dropped: int) -> str:
    listening = sec.listening
    if listening is None:
        return ""
    parts = []
    if excerpts:
        cut = f" {dropped} more left out to keep this section under {SECTION_CAP_BYTES / 1e6:g} MB." if dropped else ""
        parts.append(f'<p class="listen-h">Listen: {len(excerpts)} excerpts, {_e(listening.downmix)}, at the '
                     f"delivered level. Switch MIX / DX / M&amp;E while playing: the position is kept.{cut}</p>")
        parts.append('<div class="excerpts">' + "".join(_excerpt(i, k, ex) for k, ex in enumerate(excerpts, 1))
                     + "</div>")
    if listening.note:
        parts.append(f'<p class="note">{_e(listening.note)}</p>')
    parts.append(_events_table(i, listening))
    return "\n".join(p for p in parts if p)


def _section(i: int, sec: FileSection) -> str:
    """The section of file i, its excerpts dropped from the last while it would exceed SECTION_CAP_BYTES."""
    excerpts = sec.listening.excerpts if sec.listening is not None else ()
    plot = _plot_block(sec) if sec.status == "ok" else ""
    for keep in range(len(excerpts), -1, -1):
        text = _section_text(i, sec, plot, excerpts[:keep], len(excerpts) - keep)
        if len(text.encode("utf-8")) <= SECTION_CAP_BYTES:
            break
    return text


def _section_text(i: int, sec: FileSection, plot: str, excerpts: tuple[Excerpt, ...], dropped: int) -> str:
    parts = [f'<section class="file {_verdict_class(sec)}" id="file-{i}">',
             '<a class="top" href="#summary">↑ summary</a>',
             f"<h2>{i}. {_e(sec.title or sec.file)} {_badge(sec.status, sec.status)} {_qc_badge(sec)}</h2>",
             f'<p class="path">{_e(sec.file)}</p>']
    if sec.status == "failed":
        parts.append(f'<div class="error">{_e(sec.error or "failed (no error message)")}</div>')
    elif sec.status == "skipped":
        parts.append('<p class="note">Skipped: outputs were complete and current.</p>')
    else:
        parts.append(plot)
    if sec.qc_reasons:
        parts.append('<p class="checks-h">Failed checks</p><ul class="checks">'
                     + "".join(f"<li>{_e(r)}</li>" for r in sec.qc_reasons) + "</ul>")
    parts.append(_listening_block(i, sec, excerpts, dropped))
    parts.append(_figures_table(sec.figures))
    parts.append(_lines_block(sec))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def render_report(run_id: str, sections: list[FileSection], *, profile: str, model: str, created: str) -> str:
    """The whole HTML page for one run: header (run id, profile, model, date, counts), summary table with a
    row per file linking to its section (anchors `#file-1`, `#file-2`, … in input order), then the sections.
    Every user string is escaped; images are inline PNG and audio inline WebM/Opus, so the page needs nothing but
    itself. The one script (the stem switch, the players' durations, table sorting) is there only when a section
    has events or excerpts."""
    status = {s: sum(sec.status == s for sec in sections) for s in STATUSES}
    verdict = {v: sum(sec.qc == v for sec in sections) for v in ("pass", "fail")}
    counts = (f"<span><b>{len(sections)}</b> files:</span>"
              + "".join(f"<span><b>{status[s]}</b> {_badge(s, s)}</span>" for s in STATUSES)
              + f"<span>QC: <b>{verdict['pass']}</b> {_badge('pass', 'pass')}</span>"
              + f"<span><b>{verdict['fail']}</b> {_badge('fail', 'fail')}</span>")
    body = "\n".join(_section(i, sec) for i, sec in enumerate(sections, 1))
    listening = any(sec.listening is not None and (sec.listening.events or sec.listening.excerpts)
                    for sec in sections)
    script = f"<script>{_JS}</script>" if listening else ""
    title = f"reelsplit run {_e(run_id)}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{_CSS}</style></head>
<body><main>
<header id="summary"><h1>{title}</h1>
<p class="meta">profile <b>{_e(profile)}</b> · model <b>{_e(model)}</b> · created <b>{_e(created)}</b></p>
<p class="meta counts">{counts}</p></header>
{_summary(sections)}
{body}
</main>{script}</body></html>
"""
