"""EK-100 clip timing: ``HH:MM:SS.ff`` timestamps and LaViLa-style segment frame ids.

The official EK-100 loader (adapted from LaViLa) works in *frame ids* of the decoded file: ``start = round(fps *
t_start)``, ``end = ceil(fps * t_stop)``, the range split into ``num_segments`` equal segments, and one frame per
segment (a random one for training, the middle one for testing). egokit reproduces this arithmetic exactly
(including numpy's round-half-to-even) and reads frame ``i`` as the frame shown at the middle of its nominal
interval, ``(i + 0.5) / fps`` (:func:`egokit.data.sampling.slot_times`), which is frame ``i`` itself on the
constant-rate EK-100 files.

Difference from the official code: an id past the last frame of the file (a stop time beyond the end of a
shorter or re-encoded copy) is clamped to the last frame; decord would raise instead.
"""

from __future__ import annotations

import math
import re

import numpy as np

from egokit.tasks.api import DataError

__all__ = ["clip_frame_ids", "get_frame_ids", "parse_timestamp"]

_TIMESTAMP = re.compile(r"(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)")


def parse_timestamp(text: str, where: str = "timestamp") -> float:
    """Seconds from an EK-100 ``HH:MM:SS.ff`` timestamp (``"00:01:02.50"`` -> 62.5)."""
    match = _TIMESTAMP.fullmatch(str(text).strip())
    if match is None:
        raise DataError(f"{where}: expected a timestamp like '00:01:02.50' (HH:MM:SS.ff), got {text!r}")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def get_frame_ids(start_frame: int, end_frame: int, num_segments: int, *, jitter: bool,
                  rng: np.random.Generator | None = None) -> list[int]:
    """One frame id per segment of ``[start_frame, end_frame]`` (LaViLa ``get_frame_ids``).

    Segment ``i`` spans ``s = round(seg * i) + start`` .. ``e = min(round(seg * (i + 1)) + start, end)`` with
    ``seg = (end - start - 1) / num_segments``; ``jitter`` draws uniformly from ``s..e`` (inclusive), otherwise the
    middle ``(s + e) // 2`` is taken.
    """
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    if jitter and rng is None:
        rng = np.random.default_rng()
    seg = float(end_frame - start_frame - 1) / num_segments
    ids = []
    for i in range(num_segments):
        s = int(np.round(seg * i) + start_frame)
        e = min(int(np.round(seg * (i + 1)) + start_frame), end_frame)
        ids.append(int(rng.integers(s, e + 1)) if jitter else (s + e) // 2)
    return ids


def clip_frame_ids(start: float, stop: float, fps: float, num_frames: int, total_frames: int, *, jitter: bool,
                   rng: np.random.Generator | None = None) -> list[int]:
    """Frame ids of a clip ``[start, stop]`` seconds in a file of ``total_frames`` frames at ``fps``."""
    start_frame, end_frame = int(np.round(fps * start)), math.ceil(fps * stop)
    ids = get_frame_ids(start_frame, end_frame, num_frames, jitter=jitter, rng=rng)
    return [min(max(i, 0), total_frames - 1) for i in ids]
