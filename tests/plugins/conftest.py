"""Fixture builders for the task-plugin tests: tiny real-format datasets and a tiny saved checkpoint.

Videos are short H.264 files whose colour identifies the action, so a tiny model can learn the task in a few steps:
EK-100 clips (real rows of ``EPIC_100_retrieval_test.csv`` with timestamps rewritten to fit) in the
``<participant>/<video_id>.MP4`` layout, Charades-Ego videos ``<id>.mp4`` with an official-format metadata CSV.
"""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
EK100_FIXTURES = ROOT / "tests" / "fixtures" / "ek100"



@pytest.fixture
def one_thread():
    """Micro-model matrices are tiny: one thread avoids oversubscribing the shared 2-core runners (modules opt in
    with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Four EK-100 captions with distinct verb and noun classes (so only the same caption is fully relevant).
EK100_CAPTIONS = ("open cupboard", "turn on tap", "wash hands", "take plate")
COLOURS = ((220, 40, 40), (40, 200, 40), (40, 40, 220), (230, 220, 40), (200, 40, 200))
GREY = (128, 128, 128)
FPS = 25

CHARADES_CLASSES = ("c000 Holding some clothes", "c001 Putting clothes somewhere", "c002 Opening a door",
                    "c003 Drinking from a cup/glass/bottle")
# (video id, [(class index, start, end)], length in s); times may run past the video end, as real annotations do.
CHARADES_VIDEOS = (
    ("AB12EGO", [(0, 0.0, 2.0)], 2.0), ("CD34EGO", [(1, 0.0, 2.0)], 2.0), ("EF56EGO", [(2, 0.0, 2.0)], 2.0),
    ("GH78EGO", [(3, 0.0, 2.0)], 2.0), ("IJ90EGO", [(0, 0.0, 1.0), (2, 1.0, 2.3)], 2.0),
    ("KL12EGO", [(1, 0.0, 1.0), (3, 1.0, 2.0)], 2.0), ("MN34EGO", [(3, 0.0, 2.0)], 2.0),
    ("OP56EGO", [(2, 0.0, 2.0)], 2.0),
)


def write_colour_video(path: Path, segments: list[tuple[tuple[int, int, int], float]], *, fps: int = FPS,
                       size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    """H.264 video of solid-colour segments ``[(rgb, seconds), ...]`` with mild noise (W x H = ``size``)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for rgb, seconds in segments:
            for _ in range(round(seconds * fps)):
                image = np.clip(np.array(rgb, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3)), 0, 255)
                frame = av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")
                container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _timestamp(seconds: float) -> str:
    minutes, sec = divmod(seconds, 60.0)
    return f"{int(minutes // 60):02d}:{int(minutes % 60):02d}:{sec:05.2f}"


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def build_ek100(root: Path, clips_per_caption: int = 2) -> Path:
    """EK-100 annotation CSVs (train = test = the toy clips) and videos under ``root``; returns ``root``."""
    with (EK100_FIXTURES / "EPIC_100_retrieval_test.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns, real = list(reader.fieldnames), list(reader)
    picked = []
    for caption in EK100_CAPTIONS:  # real rows, from different videos where possible
        rows = [r for r in real if r["narration"] == caption]
        seen, chosen = set(), []
        for r in rows:
            if r["video_id"] not in seen and len(chosen) < clips_per_caption:
                seen.add(r["video_id"])
                chosen.append(r)
        picked += chosen
    per_video: dict[str, list[dict]] = {}
    for row in picked:
        per_video.setdefault(row["video_id"], []).append(row)
    clips = []
    for v, (video_id, rows) in enumerate(sorted(per_video.items())):
        segments = []
        for k, row in enumerate(rows):  # clip k: [0.2 + 1.4 k, 1.2 + 1.4 k] s, grey in between
            start, stop = 0.2 + 1.4 * k, 1.2 + 1.4 * k
            colour = COLOURS[EK100_CAPTIONS.index(row["narration"])]
            segments += [(GREY, 0.2), (colour, 1.0), (GREY, 0.2)]
            clips.append({**row, "narration_timestamp": _timestamp(start), "start_timestamp": _timestamp(start),
                          "stop_timestamp": _timestamp(stop), "start_frame": str(round(start * FPS)),
                          "stop_frame": str(round(stop * FPS))})
        write_colour_video(root / "videos" / rows[0]["participant_id"] / f"{video_id}.MP4", segments, seed=v)
    first = {}
    for clip in clips:
        first.setdefault(clip["narration"], clip)
    for split in ("train", "test"):
        _write_csv(root / f"EPIC_100_retrieval_{split}.csv", columns, clips)
    _write_csv(root / "EPIC_100_retrieval_test_sentence.csv", ["narration_id", "narration"],
               [{"narration_id": c["narration_id"], "narration": c["narration"]} for c in first.values()])
    _write_csv(root / "EPIC_100_retrieval_train_sentence.csv",
               ["narration_id", "narration", "verb_class", "noun_classes", "verb", "nouns"],
               [{"narration_id": c["narration_id"], "narration": c["narration"], "verb_class": c["verb_class"],
                 "noun_classes": c["all_noun_classes"], "verb": c["verb"], "nouns": c["all_nouns"]}
                for c in first.values()])
    return root


CHARADES_COLUMNS = ["id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions",
                    "actions", "length", "egocentric", "charades_video"]


def build_charades(root: Path) -> Path:
    """Charades-Ego class list, train/test metadata (the same toy videos) and videos under ``root``."""
    (root / "Charades_v1_classes.txt").write_text("\n".join(CHARADES_CLASSES) + "\n")
    rows = []
    for v, (video_id, actions, length) in enumerate(CHARADES_VIDEOS):
        segments, t = [], 0.0
        for cls, start, end in actions:
            seconds = min(end, length) - t
            segments.append((COLOURS[cls], seconds))
            t += seconds
        write_colour_video(root / "videos" / f"{video_id}.mp4", segments, seed=100 + v)
        rows.append({"id": video_id, "subject": "XYZ1", "scene": "Kitchen", "quality": "6", "relevance": "7",
                     "verified": "Yes", "script": "A person does things.", "objects": "cup;door",
                     "descriptions": "A person does things.",
                     "actions": ";".join(f"c{cls:03d} {s:.2f} {e:.2f}" for cls, s, e in actions),
                     "length": f"{length:.2f}", "egocentric": "Yes", "charades_video": video_id[:5]})
    for split in ("train", "test"):
        _write_csv(root / f"CharadesEgo_v1_{split}_only1st.csv", CHARADES_COLUMNS, rows)
    return root


def build_checkpoint(folder: Path, texts: list[str], **config) -> Path:
    """A tiny EgoVLPv2 (``micro_config``) with a BPE tokenizer trained on ``texts``, saved as an egokit folder."""
    from egokit.checkpoint import save_pretrained
    from egokit.models import EgoVLPv2
    from egokit.tokenizer import train_bpe_tokenizer
    from tests.conftest import micro_config

    tokenizer = train_bpe_tokenizer(texts, folder.parent / f"{folder.name}-tokenizer", vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    model = EgoVLPv2(micro_config(vocab_size=len(tokenizer), **config))
    # A fresh micro model maps every caption to nearly the same embedding (cosine > 0.9999), which a few
    # fine-tuning steps cannot separate; a wider text init stands in for pretrained, content-dependent features.
    with torch.no_grad():
        for name, param in model.text_model.named_parameters():
            if param.dim() == 2:
                torch.nn.init.normal_(param, std=0.5)
    return save_pretrained(model, folder, tokenizer=tokenizer)


ALL_TEXTS = [*EK100_CAPTIONS, *(line[5:] for line in CHARADES_CLASSES), "a person puts down the knife",
             "a video of a red square", "someone opens the fridge"]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", ALL_TEXTS)


@pytest.fixture(scope="session")
def ek100_data(tmp_path_factory) -> Path:
    return build_ek100(tmp_path_factory.mktemp("ek100"))


@pytest.fixture(scope="session")
def charades_data(tmp_path_factory) -> Path:
    return build_charades(tmp_path_factory.mktemp("charades"))
