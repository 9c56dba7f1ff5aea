"""Window arithmetic: which frames of a clip each feature window is made of, and the times it covers.

Pure index/time math, no decoding, so every rule can be tested exactly on videos whose frames encode their index.
Frame ``i`` of a stream with rate ``fps`` is shown during ``[i / fps, (i + 1) / fps)``; readers fetch it at the
middle of that interval (``egokit.data.sampling.slot_times``).

Two schemes:

``ego4d`` (the official EgoNLQ/EgoMQ extraction, spec §5.4/§5.5)
    For a clip ``[start, end)`` of a video with ``V`` frames and a target of ``r`` windows per second with ``F``
    frames each, the official code samples ``M`` frames and groups them into consecutive windows::

        M     = int((end - start) * r * F + 1)                # float product evaluated in this order
        edges = linspace(start * fps, min(end * fps, V), M + 1).astype(int)    # truncation toward zero
        frame[j] = (edges[j] + edges[j + 1] - 1) // 2         # middle of bin j (clamped to 0..V-1)
        n_windows = M // F; window k = frames[k*F : (k+1)*F]  # the incomplete tail is dropped

    e.g. a 480-s clip with ``r = 1.87``: ``F = 16`` (MQ) gives ``M = 14362`` frames -> 897 windows, ``F = 4``
    (NLQ) gives ``M = 3591`` -> 897 windows. The official code multiplies by a hard-coded 30 fps; egokit uses the
    stream's rate, which is the same number on Ego4D's 30-fps videos. Window ``k`` covers
    ``[edges[k*F], edges[(k+1)*F]) / fps`` seconds.

``sliding``
    Windows of ``window_frames`` consecutive source frames starting every ``stride`` seconds (window ``k`` starts at
    frame ``first + floor(k * stride * fps)``); ``F`` frames are sampled from each window at bin middles
    (``egokit.data.sampling.sample_frame_indices``, 'uniform'). ``window_frames = F`` reads every frame.

Last partial window (both schemes): dropped. Only windows whose frames all lie inside the clip and the video are
emitted, as the official truncation to a multiple of ``F`` does; a clip shorter than one window has zero windows.
Window times are seconds relative to the clip start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from egokit.data.sampling import frame_range, sample_frame_indices
from egokit.errors import DataError

__all__ = ["WINDOWINGS", "WindowPlan", "ego4d_windows", "sliding_windows"]

WINDOWINGS = ("ego4d", "sliding")
_EPS = 1e-6  # tolerance in frames for float times on frame boundaries


@dataclass(frozen=True)
class WindowPlan:
    """Frames (``(n_windows, F)`` source-frame indices) and ``[start, end)`` times (s, from the clip start)."""

    frames: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def _check(start: float, end: float, fps: float, num_video_frames: int, frames_per_window: int) -> None:
    if fps <= 0 or num_video_frames < 1:
        raise DataError(f"invalid video: fps={fps}, frames={num_video_frames}")
    if frames_per_window < 1:
        raise DataError(f"frames per window must be >= 1, got {frames_per_window}")
    if not (0 <= start < end and math.isfinite(end)):
        raise DataError(f"invalid clip range [{start}, {end}) s: need 0 <= start < end")
    if start * fps >= num_video_frames - _EPS:
        raise DataError(f"clip start {start:.3f} s is at or after the end of the video "
                        f"({num_video_frames} frames at {fps:g} fps = {num_video_frames / fps:.3f} s)")


def ego4d_windows(start: float, end: float, fps: float, num_video_frames: int, frames_per_window: int,
                  windows_per_second: float = 1.87) -> WindowPlan:
    """The official EgoNLQ/EgoMQ windows of clip ``[start, end)`` (formula in the module doc)."""
    _check(start, end, fps, num_video_frames, frames_per_window)
    if windows_per_second <= 0:
        raise DataError(f"windows per second must be positive, got {windows_per_second}")
    f = frames_per_window
    samples = int((end - start) * windows_per_second * f + 1)
    lo, hi = max(0.0, start * fps), min(end * fps, float(num_video_frames))
    edges = np.linspace(lo, hi, num=samples + 1).astype(int)
    frames = np.clip((edges[:-1] + edges[1:] - 1) // 2, 0, num_video_frames - 1)
    n = samples // f
    grid = frames[: n * f].reshape(n, f)
    starts = edges[0 : n * f : f] / fps - start
    ends = edges[f : n * f + 1 : f] / fps - start
    return WindowPlan(grid.astype(np.int64), starts.astype(np.float64), ends.astype(np.float64))


def sliding_windows(start: float, end: float, fps: float, num_video_frames: int, frames_per_window: int,
                    window_frames: int, stride: float) -> WindowPlan:
    """Windows of ``window_frames`` source frames every ``stride`` s, ``frames_per_window`` sampled from each."""
    _check(start, end, fps, num_video_frames, frames_per_window)
    if window_frames < 1:
        raise DataError(f"window length must be >= 1 frame, got {window_frames}")
    if stride <= 0:
        raise DataError(f"stride must be positive, got {stride} s")
    first, last = frame_range(start, end, fps)
    last = min(last, num_video_frames - 1)
    rows, starts, ends = [], [], []
    k = 0
    while True:
        a = first + math.floor(k * stride * fps + _EPS)
        b = a + window_frames - 1
        if b > last:
            break
        rows.append(sample_frame_indices(a, b, frames_per_window, "uniform"))
        starts.append(a / fps - start)
        ends.append((b + 1) / fps - start)
        k += 1
    frames = np.asarray(rows, dtype=np.int64).reshape(len(rows), frames_per_window)
    return WindowPlan(frames, np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64))
