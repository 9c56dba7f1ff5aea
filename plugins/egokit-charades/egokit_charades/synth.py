"""A small synthetic Charades-Ego dataset in the official layout (``egokit synth --task charades-ego OUT``).

Each video shows one solid colour per action (a colour per class, mild noise); the class file holds real Charades
class names; the metadata CSVs have the official columns, with ``actions`` as ``cXXX start end`` items. Some
annotated segments run past the end of their video, as real annotations do.

Layout: ``Charades_v1_classes.txt``, ``CharadesEgo_v1_{train,test}_only1st.csv``, ``videos/<id>.mp4``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egokit.tasks.api import COLOUR_RGB, colour_segments_video, write_csv_atomic, write_text_atomic

__all__ = ["CLASSES", "COLUMNS", "generate", "plan_videos"]

CLASSES = ("c000 Holding some clothes", "c001 Putting clothes somewhere", "c002 Opening a door",
           "c003 Drinking from a cup/glass/bottle", "c004 Taking a picture of something", "c005 Closing a door")
COLUMNS = ["id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions",
           "actions", "length", "egocentric", "charades_video"]
LENGTH = 2.0  # seconds per video


def plan_videos(num_classes: int, videos: int, split: str, seed: int) -> list[tuple[str, list[tuple[int, float, float]]]]:
    """``(id, [(class, start, end), ...])``: one action per video, every fifth video two (the second annotated
    past the video's end)."""
    import numpy as np

    rng = np.random.default_rng([seed, len(split)])
    plan = []
    for v in range(videos):
        first = (v + (0 if split == "test" else 1)) % num_classes
        if v % 5 == 4:
            second = int(rng.choice([c for c in range(num_classes) if c != first]))
            actions = [(first, 0.0, 1.0), (second, 1.0, LENGTH + 0.3)]
        else:
            actions = [(first, 0.0, LENGTH)]
        plan.append((f"{split[:2].upper()}{v:03d}EGO", actions))
    return plan


def generate(out: str | Path, *, seed: int = 0, classes: int = len(CLASSES), videos: int = 12,
             test_videos: int | None = None) -> dict[str, Any]:
    """Write the class file, both metadata CSVs and their videos under ``out``."""
    root = Path(out)
    names = CLASSES[:classes]
    write_text_atomic(root / "Charades_v1_classes.txt", "\n".join(names) + "\n")
    colours = list(COLOUR_RGB.values())
    counts = {}
    for split, count in (("train", videos), ("test", test_videos or videos)):
        rows = []
        for v, (video_id, actions) in enumerate(plan_videos(len(names), count, split, seed)):
            segments, t = [], 0.0
            for cls, start, end in actions:
                seconds = min(end, LENGTH) - t
                segments.append((colours[cls % len(colours)], seconds))
                t += seconds
            colour_segments_video(root / "videos" / f"{video_id}.mp4", segments, seed=seed * 1000 + v + len(split))
            rows.append([video_id, "XYZ1", "Kitchen", "6", "7", "Yes", "A person does things.", "cup;door",
                         "A person does things.", ";".join(f"c{c:03d} {s:.2f} {e:.2f}" for c, s, e in actions),
                         f"{LENGTH:.2f}", "Yes", video_id[:5]])
        write_csv_atomic(root / f"CharadesEgo_v1_{split}_only1st.csv", COLUMNS, rows)
        counts[split] = count
    return {"videos": counts, "classes": len(names), "options": {"data": str(root)},
            "texts": [n.split(" ", 1)[1] for n in names]}
