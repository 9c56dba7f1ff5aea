"""Splitting a video into shots and choosing the frames each shot is judged by.

egokit uses fixed-length shots (``shot_seconds`` each; a last piece shorter than half a shot joins the previous
shot). This mirrors QFVS, whose UT-Egocentric shots are fixed 5-second windows, and keeps budgets in seconds exact;
a content-change detector would make shot lengths depend on camera motion, which in egocentric video is constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from egokit.errors import DataError


@dataclass(frozen=True)
class Shot:
    index: int
    start: float  # seconds
    end: float  # seconds, exclusive

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2


def fixed_shots(duration: float, shot_seconds: float) -> list[Shot]:
    """Consecutive shots of ``shot_seconds`` covering ``[0, duration)``."""
    if not shot_seconds > 0:
        raise DataError(f"shot length must be positive, got {shot_seconds} s")
    if not duration > 0:
        raise DataError(f"the video has no duration ({duration} s); is it empty?")
    bounds = []
    t = 0.0
    while t < duration - 1e-9:
        bounds.append([t, min(t + shot_seconds, duration)])
        t += shot_seconds
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < shot_seconds / 2:
        tail = bounds.pop()
        bounds[-1][1] = tail[1]
    return [Shot(i, float(a), float(b)) for i, (a, b) in enumerate(bounds)]


def frame_times(shot: Shot, num_frames: int) -> list[float]:
    """Middles of ``num_frames`` equal bins of the shot (deterministic, the 'uniform' sampling of egokit)."""
    step = shot.duration / num_frames
    return [shot.start + (k + 0.5) * step for k in range(num_frames)]
