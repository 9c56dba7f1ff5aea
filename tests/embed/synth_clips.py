"""Tiny synthetic localisation data: videos where coloured objects (egokit synth colours) appear at known times,
written with the synth H.264 writer, plus official-format NLQ and MQ annotations for them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from egokit.synth.taxonomy import COLOURS
from egokit.synth.writer import encode_chunks

NAMES = ("red", "green", "blue")
RGB = {name: np.array(rgb, dtype=np.uint8) for name, rgb in COLOURS}


def plan_events(rng: np.random.Generator, duration: float) -> list[tuple[str, float, float]]:
    """The three colours, each visible once for 3-5 s, in random order, without overlap."""
    order = rng.permutation(len(NAMES))
    slots = duration / len(NAMES)
    events = []
    for k, c in enumerate(order):
        length = float(rng.uniform(3.0, 5.0))
        start = k * slots + float(rng.uniform(0.2, slots - length - 0.2))
        events.append((NAMES[c], round(start, 2), round(start + length, 2)))
    return events


def write_video(path: Path, events, duration: float, fps: int = 6, size: int = 48, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    background = (110 + rng.integers(0, 30, (size, size, 3))).astype(np.uint8)

    def frame(i: int) -> np.ndarray:
        img = background.copy()
        t = (i + 0.5) / fps
        for name, start, end in events:
            if start <= t < end:
                img[size // 5: -size // 5, size // 5: -size // 5] = RGB[name]
        return img

    tmp = path.parent / f".{path.stem}"
    encode_chunks(frame, int(duration * fps), tmp, fps, int(duration * fps), preset="ultrafast")
    (tmp / "0.mp4").replace(path)
    shutil.rmtree(tmp)


def make_split(root: Path, split: str, videos: int, duration: float = 20.0, seed: int = 0) -> dict:
    """Write ``root/videos/<uid>.mp4`` and ``root/nlq_<split>.json`` / ``moments_<split>.json``; return events."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, len(split)])
    nlq, mq, truth = {"videos": []}, {"videos": []}, {}
    for v in range(videos):
        uid = f"{split}{v:03d}"
        events = plan_events(rng, duration)
        write_video(root / "videos" / f"{uid}.mp4", events, duration, seed=v)
        truth[uid] = events
        clip = {"clip_uid": f"clip-{uid}", "video_start_sec": 0.0, "video_end_sec": duration,
                "clip_start_sec": 0.0, "clip_end_sec": duration}
        queries = [{"clip_start_sec": s, "clip_end_sec": e, "query": f"When did I see the {name} object?"}
                   for name, s, e in events]
        nlq["videos"].append({"video_uid": uid, "clips": [{**clip, "annotations": [
            {"annotation_uid": f"ann-{uid}", "language_queries": queries}]}]})
        labels = [{"start_time": s, "end_time": e, "label": name, "primary": True} for name, s, e in events]
        mq["videos"].append({"video_uid": uid, "clips": [{**clip, "annotations": [{"labels": labels}]}]})
    (root / f"nlq_{split}.json").write_text(json.dumps(nlq))
    (root / f"moments_{split}.json").write_text(json.dumps(mq))
    (root / "moment_classes_idx.json").write_text(json.dumps({"Background": 0, **{n: i + 1 for i, n in enumerate(NAMES)}}))
    return truth
