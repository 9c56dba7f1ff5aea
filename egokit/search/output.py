"""What a search writes: ``results.json``, a contact sheet per query and, optionally, a static HTML report."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egokit.io import write_json_atomic
from egokit.search.query import Hit, SearchIndex

__all__ = ["THUMB_SIZE", "hit_frames", "write_search_results"]

THUMB_SIZE = (192, 108)  # width, height of a thumbnail (16:9 box; frames are fitted inside)


def hit_frames(index: SearchIndex, hits: Sequence[Hit], size: tuple[int, int] = THUMB_SIZE,
               missing: list[str] | None = None) -> list[np.ndarray]:
    """The middle frame of each hit's window, fitted to ``size``; each video is opened once. A video that cannot
    be read (moved, deleted) gets grey placeholders and its path is appended to ``missing``."""
    from egokit.data.video import read_frames_at
    from egokit.errors import DataError
    from egokit.summarize.sheet import fit_frame

    by_video: dict[str, list[int]] = defaultdict(list)
    for i, hit in enumerate(hits):
        by_video[hit.video].append(i)
    out: list[np.ndarray] = [np.full((size[1], size[0], 3), 64, dtype=np.uint8) for _ in hits]
    for uid, positions in by_video.items():
        video = index.video(uid)
        times = [(hits[i].start + hits[i].end) / 2 for i in positions]
        try:
            frames = read_frames_at(video.source, times, short_side=2 * size[1])
        except DataError:
            if missing is not None:
                missing.append(video.path)
            continue
        for i, frame in zip(positions, frames):
            out[i] = fit_frame(frame.permute(1, 2, 0).contiguous().numpy(), *size)
    return out


def _label(hit: Hit) -> str:
    from egokit.summarize.sheet import format_time

    name = hit.video if len(hit.video) <= 10 else hit.video[:9] + "~"
    score = f"{hit.vtm:.2f}v" if hit.vtm is not None else f"{hit.score:.2f}"
    return f"{hit.rank}. {name} {format_time(hit.start)} {score}"


def write_search_results(index: SearchIndex, results: Sequence[tuple[str, Sequence[Hit]]], out_dir: str | os.PathLike,
                         *, sheet: bool = True, html: bool = False, columns: int | None = None,
                         extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``results.json`` (every query's hits), ``contact_sheet.png`` (``contact_sheet-<q>.png`` per query when
    there are several) and, with ``html``, ``report.html``. Returns the written paths by name."""
    from egokit.summarize.sheet import contact_sheet, save_png

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"index": str(index.path.resolve()), "count": len(index), "dim": index.dim, **(extra or {}),
              "queries": [{"query": q, "hits": [h.to_dict() for h in hits]} for q, hits in results]}
    paths = {"json": write_json_atomic(out_dir / "results.json", record)}
    if not (sheet or html):
        return paths
    missing: list[str] = []
    frames = [hit_frames(index, hits, missing=missing) if hits else [] for _, hits in results]
    if missing:
        import warnings

        warnings.warn(f"cannot read {len(set(missing))} indexed video(s) (e.g. {missing[0]}): their thumbnails are "
                      "grey placeholders", stacklevel=2)
    if sheet:
        for q, ((_, hits), images) in enumerate(zip(results, frames), 1):
            if not hits:
                continue
            name = "contact_sheet.png" if len(results) == 1 else f"contact_sheet-{q}.png"
            paths[name] = save_png(contact_sheet(images, [_label(h) for h in hits], columns), out_dir / name)
    if html:
        from egokit.htmlreport import Moment, moments_page, write_page

        sections = []
        for (query, hits), images in zip(results, frames):
            moments = []
            for hit, image in zip(hits, images):
                video = index.video(hit.video)
                file, offset = video.clip_file(hit.start)
                moments.append(Moment(image=image, video=hit.video, href_file=file, start=hit.start - offset,
                                      end=hit.end - offset, label_start=hit.start, label_end=hit.end,
                                      score=hit.score, rank=hit.rank,
                                      extra=f"VTM {hit.vtm:.3f}" if hit.vtm is not None else ""))
            sections.append((f"“{query}”", moments))
        sub = f"{len(index):,} windows of {len(index.videos)} videos · {index.path.resolve()}"
        page = moments_page("egokit search", sections, out_dir, subtitle=sub)
        paths["html"] = write_page(page, out_dir / "report.html")
    return paths
