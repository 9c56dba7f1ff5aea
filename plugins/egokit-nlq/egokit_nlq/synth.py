"""A small synthetic EgoNLQ dataset in the official layout (``egokit synth --task nlq OUT``).

Each video is a textured grey background on which a large square of each of three colours (red, green, blue)
appears once, for 3-5 s, in random order and without overlap. Each video is one clip with one annotation holding
three queries, "When did I see the <colour> object?", whose answer is the time that colour is visible.

Layout: ``nlq_{train,val}.json`` (official format: ``videos -> clips -> annotations -> language_queries`` with
clip-relative ``clip_start_sec`` / ``clip_end_sec``) and ``videos/<video_uid>.mp4``. Video ``<split>NNN`` holds clip
``clip-<split>NNN`` with annotation ``ann-<split>NNN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egokit.tasks.api import event_video, write_json_atomic

__all__ = ["NAMES", "generate", "plan_events", "query_text"]

NAMES = ("red", "green", "blue")


def query_text(colour: str) -> str:
    return f"When did I see the {colour} object?"


def plan_events(rng, duration: float) -> list[tuple[str, float, float]]:
    """The three colours, each visible once for 3-5 s, in random order, without overlap."""
    order = rng.permutation(len(NAMES))
    slots = duration / len(NAMES)
    events = []
    for k, c in enumerate(order):
        length = float(rng.uniform(3.0, 5.0))
        start = k * slots + float(rng.uniform(0.2, slots - length - 0.2))
        events.append((NAMES[c], round(start, 2), round(start + length, 2)))
    return events


def generate(out: str | Path, *, seed: int = 0, videos: int = 12, val_videos: int = 4,
             duration: float = 20.0) -> dict[str, Any]:
    """Write ``videos/<uid>.mp4`` and ``nlq_{train,val}.json`` under ``out``; returns counts, the options to pass
    and the query texts."""
    import numpy as np

    if duration < 15.0:
        raise ValueError("duration must be at least 15 s (three 3-5 s events in equal slots)")
    root = Path(out)
    counts = {}
    for split, count in (("train", videos), ("val", val_videos)):
        rng = np.random.default_rng([seed, len(split)])
        data: dict[str, Any] = {"version": "v1", "description": "egokit synthetic EgoNLQ", "videos": []}
        queries = 0
        for v in range(count):
            uid = f"{split}{v:03d}"
            events = plan_events(rng, duration)
            event_video(root / "videos" / f"{uid}.mp4", events, duration, seed=seed * 1000 + v)
            clip = {"clip_uid": f"clip-{uid}", "video_start_sec": 0.0, "video_end_sec": duration,
                    "clip_start_sec": 0.0, "clip_end_sec": duration}
            language = [{"clip_start_sec": s, "clip_end_sec": e, "video_start_sec": s, "video_end_sec": e,
                         "template": "Objects: When did I see object X?", "query": query_text(name),
                         "slot_x": f"{name} object"} for name, s, e in events]
            data["videos"].append({"video_uid": uid, "clips": [{**clip, "annotations": [
                {"annotation_uid": f"ann-{uid}", "language_queries": language}]}]})
            queries += len(language)
        write_json_atomic(root / f"nlq_{split}.json", data)
        counts[split] = f"{count} videos, {queries} queries"
    return {**counts, "duration": f"{duration:g} s per video", "options": {"data": str(root)},
            "texts": [query_text(name) for name in NAMES]}
