"""A small synthetic EK-100 retrieval dataset in the official layout (``egokit synth --task ek100-mir OUT``).

Every clip is a solid-colour segment (a colour per caption) between grey gaps, so a tiny model can learn the task
in a few steps. Captions carry real EK-100 verb and noun class ids, and several share a verb or a noun, so the
relevancy matrix (written from the CSVs with the JPoSE rule, as the official pickles) has partial scores too.

Layout::

    EPIC_100_retrieval_{train,test}.csv            clips (official columns)
    EPIC_100_retrieval_{train,test}_sentence.csv   caption columns (train: with verb/noun classes)
    relevancy/caption_relevancy_EPIC_100_retrieval_{train,test}.pkl   (clips x sentences, pickled numpy)
    videos/<participant_id>/<video_id>.MP4
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egokit.tasks.api import COLOUR_RGB, colour_segments_video, write_bytes_atomic, write_csv_atomic

__all__ = ["CAPTIONS", "generate"]

#: (narration, verb, verb class, nouns, noun classes) with EK-100's class ids.
CAPTIONS = (
    ("open cupboard", "open", 3, ["cupboard"], [3]),
    ("turn on tap", "turn-on", 6, ["tap"], [0]),
    ("wash hands", "wash", 2, ["hand"], [11]),
    ("take plate", "take", 0, ["plate"], [2]),
    ("put bowl", "put", 1, ["bowl"], [7]),
    ("close drawer", "close", 4, ["drawer"], [8]),
    ("open fridge", "open", 3, ["fridge"], [12]),
    ("wash plate", "wash", 2, ["plate"], [2]),
)
COLUMNS = ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp", "stop_timestamp",
           "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun", "noun_class", "all_nouns",
           "all_noun_classes"]
GREY = (128, 128, 128)
FPS = 25


def _timestamp(seconds: float) -> str:
    minutes, sec = divmod(seconds, 60.0)
    return f"{int(minutes // 60):02d}:{int(minutes % 60):02d}:{sec:05.2f}"


def _split(root: Path, split: str, captions, clips_per_caption: int, seed: int) -> list[dict[str, str]]:
    """Videos ``P0<v+1>_<split><v>`` each holding one clip of every caption, in a per-video order."""
    import numpy as np

    rng = np.random.default_rng([seed, len(split)])
    colours = list(COLOUR_RGB.values())
    rows = []
    for v in range(clips_per_caption):
        participant = f"P{v + 1:02d}"
        video_id = f"{participant}_{split}{v:02d}"
        segments = []
        for k, c in enumerate(rng.permutation(len(captions))):
            narration, verb, verb_class, nouns, noun_classes = captions[c]
            start, stop = 0.2 + 1.4 * k, 1.2 + 1.4 * k  # clip k: 1 s of colour, 0.2 s grey either side
            segments += [(GREY, 0.2), (colours[c % len(colours)], 1.0), (GREY, 0.2)]
            rows.append({"narration_id": f"{video_id}_{k}", "participant_id": participant, "video_id": video_id,
                         "narration_timestamp": _timestamp(start), "start_timestamp": _timestamp(start),
                         "stop_timestamp": _timestamp(stop), "start_frame": str(round(start * FPS)),
                         "stop_frame": str(round(stop * FPS)), "narration": narration, "verb": verb,
                         "verb_class": str(verb_class), "noun": nouns[0], "noun_class": str(noun_classes[0]),
                         "all_nouns": str(nouns), "all_noun_classes": str(noun_classes)})
        colour_segments_video(root / "videos" / participant / f"{video_id}.MP4", segments, fps=FPS,
                              seed=seed * 1000 + v + (500 if split == "train" else 0))
    write_csv_atomic(root / f"EPIC_100_retrieval_{split}.csv", COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
    first = {}
    for row in rows:  # one sentence column per caption: the first clip narrating it
        first.setdefault(row["narration"], row)
    if split == "train":
        write_csv_atomic(root / f"EPIC_100_retrieval_{split}_sentence.csv",
                         ["narration_id", "narration", "verb_class", "noun_classes", "verb", "nouns"],
                         [[r["narration_id"], r["narration"], r["verb_class"], r["all_noun_classes"], r["verb"],
                           r["all_nouns"]] for r in first.values()])
    else:
        write_csv_atomic(root / f"EPIC_100_retrieval_{split}_sentence.csv", ["narration_id", "narration"],
                         [[r["narration_id"], r["narration"]] for r in first.values()])
    return rows


def generate(out: str | Path, *, seed: int = 0, captions: int = len(CAPTIONS), clips_per_caption: int = 3,
             relevancy: bool = True) -> dict[str, Any]:
    """Write the dataset to ``out``; ``relevancy`` also writes the official-style relevancy pickles (otherwise
    ``egokit eval ek100-mir`` rebuilds the matrix from the CSVs)."""
    import pickle

    from egokit_ek100.data import split_files
    from egokit_ek100.relevancy import relevancy_from_csv

    root = Path(out)
    chosen = CAPTIONS[:captions]
    counts = {}
    for split in ("train", "test"):
        counts[split] = len(_split(root, split, chosen, clips_per_caption, seed))
        if relevancy:
            matrix, _, _ = relevancy_from_csv(*split_files(root, split))
            write_bytes_atomic(root / "relevancy" / f"caption_relevancy_EPIC_100_retrieval_{split}.pkl",
                               pickle.dumps(matrix.astype("float64"), protocol=4))
    return {"clips": counts, "captions": len(chosen), "options": {"data": str(root)},
            "texts": [c[0] for c in chosen]}
