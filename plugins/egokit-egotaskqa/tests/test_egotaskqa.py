"""EgoTaskQA plugin: official-format parsing, per-category accuracy, and end-to-end fine-tuning on a synthetic QA
set whose answers depend on the video (the colour of the only object), beating the majority-answer baseline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from egokit.errors import CheckpointError, DataError
from tests.conftest import micro_config
from tests.summarize.scenes import NOUNS, one_object_scene, render, write_mp4

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
try:
    import egokit_egotaskqa  # noqa: F401
except ImportError:  # plugin not installed: use the source tree
    sys.path.insert(0, str(ROOT / "plugins" / "egokit-egotaskqa"))
from egokit_egotaskqa import make_task  # noqa: E402
from egokit_egotaskqa.data import EgoTaskQADataset  # noqa: E402


# Real answer sets have hundreds of entries and the head's hidden width is the answer count; pad the toy set so
# the hidden layer is not a 6-unit ReLU bottleneck.
ANSWERS = ["red", "blue", "green", "yellow", "yes", "no"] + [f"unused{i}" for i in range(26)]


def _questions(video: str, colour: str, rng: np.random.Generator) -> list[dict]:
    asked = colour if rng.random() < 0.5 else str(rng.choice([c for c, _ in NOUNS if c != colour]))
    open_questions = [
        {"interval": video, "question": q, "answer_encode": ANSWERS.index(colour),
         "reasoning_type": "open$descriptive$direct"}
        for q in ("Which colour does the object have?", "what is the colour of the thing on the table?")
    ]
    return [
        {"interval": video, "question": "  What colour is the object? ", "answer_encode": ANSWERS.index(colour),
         "reasoning_type": "open$descriptive$direct"},
        {"interval": video, "question": f"Is there a {asked} object?", "answer_encode": 4 if asked == colour else 5,
         "reasoning_type": "binary$descriptive$direct"},
    ] + open_questions


def make_taskqa(root: Path, per_subset: dict[str, int], seed: int = 0, size: int = 32) -> Path:
    """Official layout: direct/{formatted_*_qas_encode.json, answer_set.txt}, qa_videos/<interval>.mp4."""
    rng = np.random.default_rng(seed)
    (root / "direct").mkdir(parents=True)
    (root / "qa_videos").mkdir()
    (root / "direct" / "answer_set.txt").write_text("\n".join(ANSWERS) + "\n")
    k = 0
    for subset, count in per_subset.items():
        records = []
        for i in range(count):
            colour, shape = NOUNS[i % len(NOUNS)]
            name = f"v{k:03d}_{colour}"
            write_mp4(root / "qa_videos" / f"{name}.mp4", render(one_object_scene(rng, colour, shape), np.arange(8) / 8, size), 8)
            records += _questions(name, colour, rng)
            k += 1
        (root / "direct" / f"formatted_{subset}_qas_encode.json").write_text(json.dumps(records))
    return root


def micro_checkpoint(folder: Path, tmp: Path, **overrides) -> Path:
    from egokit.checkpoint import save_pretrained
    from egokit.models import EgoVLPv2
    from egokit.tokenizer import train_bpe_tokenizer

    texts = ["what colour is the object?", "is there a red object?", "there is a blue box", "a green cup",
             "a yellow cone", "a red ball"] * 5
    tokenizer = train_bpe_tokenizer(texts, tmp / "tok", vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    save_pretrained(EgoVLPv2(micro_config(vocab_size=320, **overrides)), folder, tokenizer=tokenizer)
    return folder


def _ctx(checkpoint, options: dict, out: Path):
    from accelerate import Accelerator

    from egokit.tasks.context import TaskContext

    return TaskContext(accelerator=Accelerator(cpu=True), checkpoint=str(checkpoint), options=options, output_dir=out)


def test_dataset_parses_official_format(tmp_path: Path) -> None:
    root = make_taskqa(tmp_path / "qa", {"train": 2, "val": 1, "test": 1})
    ds = EgoTaskQADataset(root, "direct", "train", num_frames=2, image_size=32)
    assert len(ds) == 8 and ds.answers == ANSWERS
    item = ds[0]
    assert item["video"].shape == (2, 3, 32, 32) and item["video"].dtype == torch.uint8
    assert item["question"] == "what colour is the object?" and item["answer"] == 0  # v000 is red
    assert ds.reasoning_types[1] == ["binary", "descriptive", "direct"] and ds[2]["answer"] == 0
    # deterministic evaluation sampling: the same frames twice
    assert torch.equal(ds[0]["video"], ds[0]["video"])
    with pytest.raises(DataError, match="indirect"):
        EgoTaskQADataset(root, "indirect", "test")


def test_bad_answer_index_is_reported(tmp_path: Path) -> None:
    root = make_taskqa(tmp_path / "qa", {"test": 1})
    path = root / "direct" / "formatted_test_qas_encode.json"
    records = json.loads(path.read_text())
    records[0]["answer_encode"] = 99
    path.write_text(json.dumps(records))
    with pytest.raises(DataError, match="answer_encode 99"):
        EgoTaskQADataset(root, "direct", "test")


def test_category_accuracy_hand_made() -> None:
    from egokit.metrics import taskqa_accuracy

    pred = [0, 1, 4, 5, 4]
    answers = [0, 2, 4, 4, 4]
    tags = ["open$descriptive$direct", "open$predictive$direct", "binary$descriptive$direct",
            "binary$predictive$indirect", "binary$descriptive$direct"]
    acc = taskqa_accuracy(pred, answers, tags)
    # open: 1/2; binary: 2/3; descriptive: 3/3; predictive: 0/2; direct: 3/4; indirect: 0/1
    assert acc == {"open": 0.5, "descriptive": 1.0, "direct": 0.75, "predictive": 0.0, "binary": 2 / 3,
                   "indirect": 0.0}


def test_train_beats_majority_and_reloads(tmp_path: Path) -> None:
    root = make_taskqa(tmp_path / "qa", {"train": 32, "val": 4, "test": 16}, seed=1)
    ckpt = micro_checkpoint(tmp_path / "micro", tmp_path, depth=2, fused_layers=1)
    options = {"data": str(root), "num_frames": 2, "batch_size": 16, "num_workers": 0, "epochs": 6, "max_length": 16, "lr": 3e-3, "warmup": 0.1, "log_every": 20}
    spec = make_task()
    result = spec.train(_ctx(ckpt, options, tmp_path / "run"))
    test = EgoTaskQADataset(root, "direct", "test", num_frames=2, image_size=32)
    answers = np.array([r["answer"] for r in test.records])
    majority = np.bincount(answers).max() / len(answers) * 100
    assert result["metrics"]["test"]["all"] > majority + 15, (result["metrics"], majority)
    assert result["metrics"]["test"]["open"] > 60  # colour questions are answered from the video
    # the saved folder (backbone + head + answers) evaluates through the task's evaluate()
    folder = Path(result["checkpoint"]["path"])
    assert (folder / "head.safetensors").is_file() and (folder / "answer_set.txt").read_text().split() == ANSWERS
    again = spec.evaluate(_ctx(folder, {"data": str(root), "num_frames": 2, "num_workers": 0, "max_length": 16}, tmp_path / "eval"))
    assert again["metrics"]["all"] == pytest.approx(result["metrics"]["test"]["all"])
    assert set(again["metrics"]["per_tag"]) == {"open", "binary", "descriptive", "direct"}


def test_evaluate_without_head_says_what_to_do(tmp_path: Path) -> None:
    root = make_taskqa(tmp_path / "qa", {"test": 1})
    ckpt = micro_checkpoint(tmp_path / "micro", tmp_path)
    with pytest.raises(CheckpointError, match="egokit train egotaskqa"):
        make_task().evaluate(_ctx(ckpt, {"data": str(root), "num_frames": 2, "num_workers": 0}, tmp_path / "e"))
