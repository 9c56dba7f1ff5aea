"""A small synthetic QFVS dataset in the official UT-Egocentric layout (``egokit synth --task qfvs OUT``).

Four videos P01..P04 of ``shots`` shots; a shot is ``shot_frames`` JPEG images of one room showing one object on a
table. Its dense tags are the object's concept (an official-style name: ``Cupglass`` is prompted as "Glass", as
officially) and ``Table``, so any two shots share a concept and the semantic F1 is never 0/0. Each video has two
queries (two object concepts it shows) whose oracle summary holds the first shot of each concept.

Layout::

    video_frames/P0v-moviepy/00000.jpg ...                                          shot s = images 5s .. 5s+4
    origin_data/Dense_per_shot_tags/P0v/P0v.txt                                     line s: concepts of shot s
    origin_data/Query-Focused_Summaries/Oracle_Summaries/P0v/<c1>_<c2>_oracle.txt   1-based shot ids
    Tags.mat            Tags{video}.Bin_Vecs{shot}: 1x48 binary concept vectors (this generator's concept order)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egokit.tasks.api import atomic_path, one_object_scene, render_scene, write_text_atomic
from egokit_qfvs.data import VIDEOS, load_video

__all__ = ["CONCEPTS", "generate"]

#: (concept, colour, shape): the object that shows it; its Tags.mat column is its index here.
CONCEPTS = (("Ball", "red", "ball"), ("Box", "blue", "box"), ("Cupglass", "green", "cup"),
            ("Bottle", "yellow", "bottle"), ("Cone", "orange", "cone"), ("Ring", "purple", "ring"))
BACKGROUND = "Table"  # in every shot; its Tags.mat column follows the objects'
NUM_CONCEPTS = 48  # Tags.mat vectors, as the official file
QUERIES_PER_VIDEO = 2


def _write_jpeg(path: Path, image) -> None:
    from PIL import Image

    with atomic_path(path, suffix=".jpg") as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=90)


def _write_tags(path: Path, per_video: list) -> None:
    """The official struct array ``Tags`` (1 x videos) whose field ``Bin_Vecs`` is a (shots x 1) cell of 1x48 rows."""
    import numpy as np
    from scipy.io import savemat

    tags = np.empty((1, len(per_video)), dtype=[("Bin_Vecs", "O")])
    for v, rows in enumerate(per_video):
        cells = np.empty((len(rows), 1), dtype=object)
        for s, row in enumerate(rows):
            cells[s, 0] = row.reshape(1, -1).astype(np.uint8)
        tags[0, v]["Bin_Vecs"] = cells
    with atomic_path(path, suffix=".mat") as tmp:
        savemat(str(tmp), {"Tags": tags})


def generate(out: str | Path, *, seed: int = 0, shots: int = 12, shot_frames: int = 5,
             size: int = 64) -> dict[str, Any]:
    """Write the dataset to ``out`` (``shots`` >= 6 per video, so that every concept can appear)."""
    import numpy as np

    if shots < len(CONCEPTS):
        raise ValueError(f"qfvs synth: shots={shots}, at least {len(CONCEPTS)} (one per concept)")
    root = Path(out)
    origin = root / "origin_data"
    tag_rows, texts, queries = [], set(), 0
    for v, name in enumerate(VIDEOS):
        rng = np.random.default_rng([seed, v])
        shown = rng.permutation(np.resize(np.arange(len(CONCEPTS)), shots))  # every concept, in a random order
        frames = root / "video_frames" / f"{name}-moviepy"
        for s, c in enumerate(shown):
            _, colour, shape = CONCEPTS[c]
            images = render_scene(one_object_scene(rng, colour, shape), np.arange(shot_frames) / 5.0, size)
            for i, image in enumerate(images):
                _write_jpeg(frames / f"{s * shot_frames + i:05d}.jpg", image)
        write_text_atomic(origin / "Dense_per_shot_tags" / name / f"{name}.txt",
                          "".join(f"{CONCEPTS[c][0]},{BACKGROUND}\n" for c in shown))
        rows = np.zeros((shots, NUM_CONCEPTS), dtype=np.uint8)
        rows[np.arange(shots), shown] = 1
        rows[:, len(CONCEPTS)] = 1
        tag_rows.append(rows)
        present = sorted(set(shown.tolist()))
        pairs = [(a, b) for i, a in enumerate(present) for b in present[i + 1:]]
        for k in rng.choice(len(pairs), size=min(QUERIES_PER_VIDEO, len(pairs)), replace=False):
            a, b = pairs[k]
            oracle = sorted(int(np.flatnonzero(shown == c)[0]) + 1 for c in (a, b))
            c1, c2 = CONCEPTS[a][0], CONCEPTS[b][0]
            write_text_atomic(origin / "Query-Focused_Summaries" / "Oracle_Summaries" / name / f"{c1}_{c2}_oracle.txt",
                              "".join(f"{i}\n" for i in oracle))
            queries += 1
    _write_tags(root / "Tags.mat", tag_rows)
    for name in VIDEOS:  # the prompts of every query, as the task reads them back
        texts.update(p for q in load_video(root, name, shot_frames).queries for p in q.prompts())
    return {"videos": len(VIDEOS), "shots": shots * len(VIDEOS), "queries": queries, "texts": sorted(texts),
            # one segment per video: padding 12 shots to the official 200 would make training ten times slower
            "options": {"data": str(root), "segment_shots": shots,
                        **({"shot_frames": shot_frames} if shot_frames != 5 else {})}}
