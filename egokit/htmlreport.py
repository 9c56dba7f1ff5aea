"""Static HTML reports for search results and summaries: one self-contained file, no server, no JavaScript.

Thumbnails are embedded as JPEG data URIs, so the page can be moved or mailed on its own; each moment links to
its video with a media fragment (``clip.mp4#t=start,end``: browsers start playback at ``start`` and pause at
``end``), the link relative to the page's folder, and a native ``<details>`` element holds an in-page player.
Scores are shown as numbers and bars; a summary gets an inline SVG timeline of every shot's score.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from egokit.io import write_text_atomic

__all__ = ["Moment", "clip_href", "image_data_uri", "moments_page", "summary_page", "write_page"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#15171a;color:#e8e8e8;margin:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px}p.sub{color:#9aa;margin:0 0 16px;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:14px}
figure{margin:0;background:#22262b;border-radius:8px;overflow:hidden;border:2px solid transparent}
figure.sel{border-color:#f2b134}
figure img{width:100%;display:block;aspect-ratio:16/9;object-fit:contain;background:#000}
figcaption{padding:6px 8px 8px;font-size:13px;line-height:1.45}
.rank{font-weight:700;color:#f2b134}.vid{color:#9cd;word-break:break-all}.t{font-family:ui-monospace,monospace}
.bar{height:5px;background:#3a3f45;border-radius:3px;margin-top:4px}.bar>span{display:block;height:5px;
background:#45b38a;border-radius:3px}details{margin-top:4px}summary{cursor:pointer;color:#9cd}video{width:100%}
a{color:#9cd}table{border-collapse:collapse;font-size:13px}td,th{padding:2px 10px;text-align:left}
svg{background:#22262b;border-radius:8px;max-width:100%}
"""


@dataclass
class Moment:
    """A card of a report: a thumbnail, a title line, a time range of a video and its score."""

    image: np.ndarray  # (H, W, 3) uint8
    video: str  # what the card names
    href_file: str | os.PathLike  # the file that plays it
    start: float  # seconds of href_file
    end: float
    label_start: float  # seconds shown (of the whole video)
    label_end: float
    score: float
    rank: int | None = None
    extra: str = ""  # e.g. "VTM 0.93"
    selected: bool = False


def image_data_uri(image: np.ndarray, quality: int = 85) -> str:
    """``data:image/jpeg;base64,...`` of an (H, W, 3) uint8 image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def clip_href(video: str | os.PathLike, start: float, end: float, page_dir: str | os.PathLike) -> str:
    """URL of ``video`` relative to ``page_dir`` (a ``file:`` URI when no relative path exists) with the media
    fragment ``#t=start,end`` (seconds)."""
    video = Path(video).resolve()
    try:
        url = quote(Path(os.path.relpath(video, Path(page_dir).resolve())).as_posix())
    except ValueError:  # another drive (Windows)
        url = video.as_uri()
    return f"{url}#t={max(0.0, start):.3f},{max(0.0, end):.3f}"


def _time(seconds: float) -> str:
    minutes, sec = divmod(max(0.0, seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{sec:04.1f}" if hours else f"{minutes}:{sec:04.1f}"


def _card(m: Moment, page_dir: Path, score_range: tuple[float, float]) -> str:
    href = html.escape(clip_href(m.href_file, m.start, m.end, page_dir), quote=True)
    lo, hi = score_range
    width = 100.0 if hi <= lo else 100.0 * (m.score - lo) / (hi - lo)
    rank = f'<span class="rank">#{m.rank}</span> ' if m.rank is not None else ""
    extra = f" &middot; {html.escape(m.extra)}" if m.extra else ""
    alt = html.escape(f"{m.video} {_time(m.label_start)}-{_time(m.label_end)}", quote=True)
    return (
        f'<figure class="{"sel" if m.selected else ""}"><a href="{href}" title="play {alt}">'
        f'<img src="{image_data_uri(m.image)}" alt="{alt}" loading="lazy"></a><figcaption>'
        f'{rank}<span class="vid">{html.escape(m.video)}</span><br>'
        f'<span class="t">{_time(m.label_start)} &ndash; {_time(m.label_end)}</span> &middot; '
        f'score <b>{m.score:.4f}</b>{extra}'
        f'<div class="bar"><span style="width:{max(2.0, min(100.0, width)):.1f}%"></span></div>'
        f'<details><summary>play here</summary><video controls preload="none" src="{href}"></video></details>'
        f'</figcaption></figure>'
    )


def _page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title><style>{CSS}</style>'
            f'</head><body>\n{body}\n</body></html>\n')


def moments_page(title: str, sections: Sequence[tuple[str, Sequence[Moment]]], page_dir: str | os.PathLike, *,
                 subtitle: str = "") -> str:
    """A page with one titled grid of moment cards per section (e.g. one per search query)."""
    page_dir = Path(page_dir)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if subtitle:
        parts.append(f'<p class="sub">{html.escape(subtitle)}</p>')
    for heading, moments in sections:
        scores = [m.score for m in moments]
        rng = (min(scores), max(scores)) if scores else (0.0, 1.0)
        rng = (min(rng[0], 0.0), rng[1])
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append('<div class="grid">' + "".join(_card(m, page_dir, rng) for m in moments) + "</div>"
                     if moments else "<p>no results</p>")
    return _page(title, "\n".join(parts))


def _timeline(shots: Sequence[tuple[float, float, float, bool]], video: str | os.PathLike, page_dir: Path) -> str:
    """Inline SVG: one bar per shot ``(start, end, score, selected)``, height rising with the score from the lowest
    to the highest shot, each a link to its clip."""
    if not shots:
        return ""
    width, height, pad = 900, 140, 20
    total = max(end for _, end, _, _ in shots) or 1.0
    lo, hi = min(score for _, _, score, _ in shots), max(score for _, _, score, _ in shots)
    bars = []
    for start, end, score, selected in shots:
        x = pad + (width - 2 * pad) * start / total
        w = max(1.0, (width - 2 * pad) * (end - start) / total - 1)
        # scores often differ in the 3rd decimal (VTM probabilities near 0.5): the lowest shot gets 10 % of the
        # height, the highest 100 %
        h = (height - 2 * pad) * (1.0 if hi - lo < 1e-12 else 0.1 + 0.9 * (score - lo) / (hi - lo))
        href = html.escape(clip_href(video, start, end, page_dir), quote=True)
        tip = html.escape(f"{_time(start)}-{_time(end)}  score {score:.3f}{'  (selected)' if selected else ''}")
        bars.append(f'<a href="{href}"><rect x="{x:.1f}" y="{height - pad - h:.1f}" width="{w:.1f}" '
                    f'height="{max(h, 1):.1f}" fill="{"#f2b134" if selected else "#4f6f8f"}"><title>{tip}</title>'
                    f'</rect></a>')
    axis = (f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#777"/>'
            f'<text x="{pad}" y="{height - 4}" fill="#aaa" font-size="11">0:00</text>'
            f'<text x="{width - pad}" y="{height - 4}" fill="#aaa" font-size="11" text-anchor="end">'
            f'{_time(total)}</text><text x="{pad}" y="14" fill="#aaa" font-size="11">score per shot, from {lo:.4f} '
            f'(lowest bar) to {hi:.4f} (highest); selected shots in yellow</text>')
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="shot scores over time">{axis}{"".join(bars)}</svg>')


def summary_page(summary, moments: Sequence[Moment], page_dir: str | os.PathLike) -> str:
    """A summary's page: query, scorer and budget, the score timeline of every shot, the selected shots' cards."""
    page_dir = Path(page_dir)
    selected = set(summary.selected)
    shots = [(s.start, s.end, float(sc), s.index in selected) for s, sc in zip(summary.shots, summary.scores)]
    chosen = sum(s.duration for i, s in enumerate(summary.shots) if i in selected)
    sub = (f"{Path(summary.video).name} · scorer {summary.scorer} · {len(summary.selected)}/{len(summary.shots)} "
           f"shots selected ({chosen:.1f} s)")
    scores = [m.score for m in moments]
    rng = (min(min(scores), 0.0), max(scores)) if scores else (0.0, 1.0)
    body = [f"<h1>Summary: “{html.escape(summary.query)}”</h1>", f'<p class="sub">{html.escape(sub)}</p>',
            _timeline(shots, summary.video, page_dir), "<h2>Selected shots</h2>",
            '<div class="grid">' + "".join(_card(m, page_dir, rng) for m in moments) + "</div>"]
    return _page(f"Summary: {summary.query}", "\n".join(body))


def write_page(text: str, path: str | os.PathLike) -> Path:
    """Write a page atomically."""
    return write_text_atomic(path, text)
