"""A small synthetic EgoMQ dataset in the official layout (``egokit synth --task mq OUT``).

Each video is a textured grey background on which a large square of one colour (``red``, ``green``, ``blue``: the
moment classes) is visible during each moment; every colour appears once per clip for 3-5 s, in random order,
without overlap. One clip per video spans the whole video (20 s at 6 fps, 48 px).

Layout: ``moments_{train,val}.json`` (the official ``videos -> clips -> annotations -> labels`` structure, with
clip-relative ``start_time`` / ``end_time`` and their video-relative and frame counterparts),
``moment_classes_idx.json`` (``name -> index`` with ``Background`` at 0) and ``videos/<video_uid>.mp4``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egokit.tasks.api import event_video, write_json_atomic

__all__ = ["CLASSES", "DURATION", "FPS", "generate", "plan_events", "write_split"]

CLASSES = ("red", "green", "blue")
DURATION = 20.0  # seconds per video (= its one clip)
FPS = 6


def plan_events(rng, duration: float) -> list[tuple[str, float, float]]:
    """The three classes, each visible once for 3-5 s, in random order, without overlap: ``(name, start, end)``."""
    order = rng.permutation(len(CLASSES))
    slots = duration / len(CLASSES)
    events = []
    for k, c in enumerate(order):
        length = float(rng.uniform(3.0, 5.0))
        start = k * slots + float(rng.uniform(0.2, slots - length - 0.2))
        events.append((CLASSES[c], round(start, 2), round(start + length, 2)))
    return events


def _label(name: str, start: float, end: float) -> dict[str, Any]:
    return {"start_time": start, "end_time": end, "start_frame": round(start * 30), "end_frame": round(end * 30),
            "video_start_time": start, "video_end_time": end, "video_start_frame": round(start * 30),
            "video_end_frame": round(end * 30), "label": name, "primary": True}


def write_split(root: str | Path, split: str, videos: int, *, seed: int = 0,
                duration: float = DURATION) -> dict[str, list[tuple[str, float, float]]]:
    """Write ``root/videos/<split>NNN.mp4`` and ``root/moments_<split>.json``; return the events of each video."""
    import numpy as np

    root = Path(root)
    rng = np.random.default_rng([seed, len(split)])
    entries, truth = [], {}
    for v in range(videos):
        uid = f"{split}{v:03d}"
        events = plan_events(rng, duration)
        event_video(root / "videos" / f"{uid}.mp4", events, duration, fps=FPS, seed=v)
        truth[uid] = events
        frames = round(duration * 30)  # the official frame fields count at 30 fps
        clip = {"clip_uid": f"clip-{uid}", "video_start_sec": 0.0, "video_end_sec": duration,
                "video_start_frame": 0, "video_end_frame": frames, "clip_start_sec": 0.0, "clip_end_sec": duration,
                "clip_start_frame": 0, "clip_end_frame": frames, "source_clip_uid": f"source-{uid}",
                "annotations": [{"annotator_uid": f"annotator-{v % 3}",
                                 "labels": [_label(name, s, e) for name, s, e in events]}]}
        entries.append({"video_uid": uid, "split": split, "clips": [clip]})
    write_json_atomic(root / f"moments_{split}.json",
                      {"version": "v1", "date": "synthetic", "description": "egokit synthetic EgoMQ",
                       "manifest": "videos/", "split": split, "videos": entries})
    return truth


def generate(out: str | Path, *, seed: int = 0, train_videos: int = 12, val_videos: int = 4) -> dict[str, Any]:
    """The class map and both splits under ``out`` (val drawn with ``seed + 1``)."""
    root = Path(out)
    write_json_atomic(root / "moment_classes_idx.json",
                      {"Background": 0, **{name: i + 1 for i, name in enumerate(CLASSES)}})
    write_split(root, "train", train_videos, seed=seed)
    write_split(root, "val", val_videos, seed=seed + 1)
    return {"videos": {"train": train_videos, "val": val_videos}, "classes": len(CLASSES),
            "options": {"data": str(root)}, "texts": list(CLASSES)}
