"""A small synthetic EgoTaskQA dataset in the official layout (``egokit synth --task egotaskqa OUT``).

Every video is one second of a still room with a single coloured object; its four questions ask for the colour
(open, three phrasings) or whether an object of some colour is there (binary, yes/no), so the answers can only come
from the video. Layout::

    direct/answer_set.txt                         one answer per line (line i = class i)
    direct/formatted_{train,val,test}_qas_encode.json
    qa_videos/<interval>.mp4
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egokit.tasks.api import one_object_scene, render_scene, write_json_atomic, write_text_atomic, write_video

__all__ = ["ANSWERS", "NOUNS", "generate"]

#: The objects the videos show: (colour, shape).
NOUNS = (("red", "ball"), ("blue", "box"), ("green", "cup"), ("yellow", "cone"))
# Real answer sets have hundreds of entries and the head's hidden width is the answer count; the padding keeps the
# toy head's hidden layer from being a 6-unit ReLU bottleneck.
ANSWERS = ["red", "blue", "green", "yellow", "yes", "no"] + [f"unused{i}" for i in range(26)]
OPEN_QUESTIONS = ("  What colour is the object? ", "Which colour does the object have?",
                  "what is the colour of the thing on the table?")
SUBSETS = {"train": 32, "val": 4, "test": 16}
FPS = 8


def _questions(video: str, colour: str, rng) -> list[dict[str, Any]]:
    asked = colour if rng.random() < 0.5 else str(rng.choice([c for c, _ in NOUNS if c != colour]))
    first, *others = OPEN_QUESTIONS

    def open_question(text: str) -> dict[str, Any]:
        return {"interval": video, "question": text, "answer_encode": ANSWERS.index(colour),
                "reasoning_type": "open$descriptive$direct"}

    binary = {"interval": video, "question": f"Is there a {asked} object?",
              "answer_encode": ANSWERS.index("yes" if asked == colour else "no"),
              "reasoning_type": "binary$descriptive$direct"}
    return [open_question(first), binary, *(open_question(q) for q in others)]


def generate(out: str | Path, subsets: dict[str, int] | None = None, *, seed: int = 0,
             size: int = 32) -> dict[str, Any]:
    """Write ``subsets`` (``{"train": 32, "val": 4, "test": 16}`` videos by default; 4 questions each) to ``out``."""
    import numpy as np

    out = Path(out)
    rng = np.random.default_rng(seed)
    write_text_atomic(out / "direct" / "answer_set.txt", "\n".join(ANSWERS) + "\n")
    counts: dict[str, int] = {}
    texts = set(ANSWERS)
    k = 0
    for subset, count in (subsets or SUBSETS).items():
        records = []
        for i in range(count):
            colour, shape = NOUNS[i % len(NOUNS)]
            name = f"v{k:03d}_{colour}"
            frames = render_scene(one_object_scene(rng, colour, shape), np.arange(FPS) / FPS, size)
            write_video(out / "qa_videos" / f"{name}.mp4", frames, FPS)
            records += _questions(name, colour, rng)
            k += 1
        write_json_atomic(out / "direct" / f"formatted_{subset}_qas_encode.json", records, indent=None)
        counts[subset] = len(records)
        texts.update(r["question"].strip().lower() for r in records)
    # A short fine-tuning (a random egovlpv2-tiny answers the colour questions after it, on a CPU in ~30 s).
    options = {"data": str(out), "num_frames": 4, "finetune.epochs": 3, "finetune.batch_size": 16,
               "finetune.lr": 1e-3}
    return {"videos": k, "questions": counts, "answers": len(ANSWERS), "texts": sorted(texts), "options": options}
