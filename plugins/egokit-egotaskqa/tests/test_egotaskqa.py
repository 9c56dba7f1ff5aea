"""EgoTaskQA plugin: official-format parsing, per-category accuracy, end-to-end fine-tuning on a synthetic QA set
whose answers depend on the video (the colour of the only object), beating the majority-answer baseline, heads
written by egokit 0.1, and `egokit synth` -> train -> eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from egokit.tasks.api import CheckpointError, DataError
from egokit.testing import run_cli, tiny_checkpoint
from egokit_egotaskqa import EgoTaskQA
from egokit_egotaskqa.data import EgoTaskQADataset
from egokit_egotaskqa.synth import ANSWERS
from egokit_egotaskqa.synth import generate as make_taskqa

TEXTS = ["what colour is the object?", "is there a red object?", "there is a blue box", "a green cup",
         "a yellow cone", "a red ball"] * 5


def micro_checkpoint(folder: Path, **overrides) -> Path:
    """A tiny fusion model (untouched text init) with a tokenizer trained on colour questions."""
    return tiny_checkpoint(folder, TEXTS, spread_text=False, vocab_size=320, **overrides)


def _results(folder: Path, action: str = "eval") -> dict:
    name = "egotaskqa_results.json" if action == "eval" else "egotaskqa_train_results.json"
    return json.loads((folder / name).read_text())


def test_dataset_parses_official_format(tmp_path: Path) -> None:
    root = tmp_path / "qa"
    make_taskqa(root, {"train": 2, "val": 1, "test": 1})
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
    root = tmp_path / "qa"
    make_taskqa(root, {"test": 1})
    path = root / "direct" / "formatted_test_qas_encode.json"
    records = json.loads(path.read_text())
    records[0]["answer_encode"] = 99
    path.write_text(json.dumps(records))
    with pytest.raises(DataError, match="answer_encode 99"):
        EgoTaskQADataset(root, "direct", "test")


def test_category_accuracy_hand_made() -> None:
    from egokit.tasks.api import taskqa_accuracy

    pred = [0, 1, 4, 5, 4]
    answers = [0, 2, 4, 4, 4]
    tags = ["open$descriptive$direct", "open$predictive$direct", "binary$descriptive$direct",
            "binary$predictive$indirect", "binary$descriptive$direct"]
    acc = taskqa_accuracy(pred, answers, tags)
    # open: 1/2; binary: 2/3; descriptive: 3/3; predictive: 0/2; direct: 3/4; indirect: 0/1
    assert acc == {"open": 0.5, "descriptive": 1.0, "direct": 0.75, "predictive": 0.0, "binary": 2 / 3,
                   "indirect": 0.0}


def test_train_beats_majority_and_reloads(tmp_path: Path) -> None:
    root = tmp_path / "qa"
    make_taskqa(root, {"train": 32, "val": 4, "test": 16}, seed=1)
    ckpt = micro_checkpoint(tmp_path / "micro", depth=2, fused_layers=1)
    common = ["num_frames=2", "batch_size=16", "num_workers=0", "max_length=16"]
    run_cli("train", "egotaskqa", "--ckpt", ckpt, "--data", root, "-o", tmp_path / "run", *common,
            "finetune.batch_size=16", "finetune.epochs=6", "finetune.lr=3e-3", "finetune.warmup=0.1",
            "finetune.log_every=20")
    result = _results(tmp_path / "run", "train")
    test = EgoTaskQADataset(root, "direct", "test", num_frames=2, image_size=32)
    answers = np.array([r["answer"] for r in test.records])
    majority = np.bincount(answers).max() / len(answers) * 100
    assert result["metrics"]["test"]["all"] > majority + 15, (result["metrics"], majority)
    assert result["metrics"]["test"]["open"] > 60  # colour questions are answered from the video
    # the saved folder (backbone + head + answers) evaluates through `egokit eval`
    folder = Path(result["artifacts"]["checkpoint"])
    assert (folder / "head.safetensors").is_file() and (folder / "answer_set.txt").read_text().split() == ANSWERS
    head = json.loads((folder / "head.json").read_text())
    assert head["head_type"] == "taskqa" and head["config"]["num_answers"] == len(ANSWERS)
    assert head["best_epoch"] == result["metrics"]["val"]["epoch"] == result["config"]["details"]["best_epoch"]
    run_cli("eval", "egotaskqa", "--ckpt", folder, "--data", root, "-o", tmp_path / "eval", "num_frames=2",
            "num_workers=0", "max_length=16")
    again = _results(tmp_path / "eval")
    assert again["metrics"]["all"] == pytest.approx(result["metrics"]["test"]["all"])
    assert set(again["metrics"]["per_tag"]) == {"open", "binary", "descriptive", "direct"}
    # the best epoch is kept on disk, not in memory: one checkpoint folder, validated every epoch
    assert [r["epoch"] for r in result["history"] if "eval" in r] == list(range(6))


def test_evaluate_without_head_says_what_to_do(tmp_path: Path) -> None:
    root = tmp_path / "qa"
    make_taskqa(root, {"test": 1})
    ckpt = micro_checkpoint(tmp_path / "micro")
    with pytest.raises(CheckpointError, match="egokit train egotaskqa"):
        run_cli("eval", "egotaskqa", "--ckpt", ckpt, "--data", root, "-o", tmp_path / "e", "num_frames=2",
                "num_workers=0")


def test_heads_of_egokit_0_1_still_load(tmp_path: Path) -> None:
    """A folder written by egokit 0.1 (bare head.safetensors + answer_set.txt + egotaskqa.json, no head.json)
    evaluates exactly as the same head in the current head format."""
    from safetensors.torch import save_file

    from egokit.tasks.api import save_head
    from egokit_egotaskqa.model import TaskQAHead

    root = tmp_path / "qa"
    make_taskqa(root, {"test": 3})
    ckpt = micro_checkpoint(tmp_path / "micro")
    torch.manual_seed(0)
    head = TaskQAHead(32, len(ANSWERS))
    scores = {}
    for name in ("legacy", "current"):
        folder = tmp_path / name
        folder.mkdir()
        for item in ckpt.iterdir():  # the backbone folder
            (folder / item.name).symlink_to(item)
        (folder / "answer_set.txt").write_text("\n".join(ANSWERS) + "\n")
        if name == "legacy":
            save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / "head.safetensors"))
            (folder / "egotaskqa.json").write_text(json.dumps({"split": "direct", "best_epoch": 0,
                                                               "num_answers": len(ANSWERS)}))
        else:
            save_head(folder, head, "taskqa", head.config, task="egotaskqa")
        run_cli("eval", "egotaskqa", "--ckpt", folder, "--data", root, "-o", tmp_path / f"out-{name}",
                "num_frames=2", "num_workers=0")
        scores[name] = _results(tmp_path / f"out-{name}")["metrics"]
    assert scores["legacy"] == scores["current"] and scores["legacy"]["num_questions"] == 12
    # a head whose answer count differs from the answer set is refused, naming both counts
    make_taskqa(tmp_path / "small", {"test": 1})
    (tmp_path / "small" / "direct" / "answer_set.txt").write_text("\n".join(ANSWERS[:6]) + "\n")
    with pytest.raises(CheckpointError, match="32 answers but the answer set has 6"):
        run_cli("eval", "egotaskqa", "--ckpt", tmp_path / "legacy", "--data", tmp_path / "small", "-o",
                tmp_path / "out-small", "num_frames=2", "num_workers=0")


def test_synth_train_eval(tmp_path: Path) -> None:
    """`egokit synth --task egotaskqa` data, then `egokit train` and `egokit eval` with the options synth returns."""
    data = tmp_path / "data"
    summary = EgoTaskQA().synth(data, seed=0)
    assert summary["options"]["data"] == str(data) and "what colour is the object?" in summary["texts"]
    run_cli("synth", "--task", "egotaskqa", tmp_path / "cli", "--no-model")  # the CLI writes the same dataset
    for name in ("answer_set.txt", "formatted_train_qas_encode.json", "formatted_test_qas_encode.json"):
        assert (tmp_path / "cli" / "direct" / name).read_text() == (data / "direct" / name).read_text()
    assert sorted(p.name for p in (data / "qa_videos").iterdir()) == \
        sorted(p.name for p in (tmp_path / "cli" / "qa_videos").iterdir())

    ckpt = tiny_checkpoint(tmp_path / "ckpt", summary["texts"])
    options = [f"{k}={v}" for k, v in summary["options"].items() if k != "data"]
    fast = ["num_workers=0", "finetune.epochs=2"]
    run_cli("train", "egotaskqa", "--ckpt", ckpt, "--data", data, "-o", tmp_path / "run", *options, *fast)
    trained = _results(tmp_path / "run", "train")
    folder = tmp_path / "run" / "checkpoint"
    assert {"config.json", "model.safetensors", "head.json", "head.safetensors", "answer_set.txt"} <= \
        {p.name for p in folder.iterdir()}
    assert trained["metrics"]["steps"] > 0 and 0 <= trained["metrics"]["val"]["all"] <= 100
    assert trained["metrics"]["test"]["num_questions"] == summary["questions"]["test"]
    run_cli("eval", "egotaskqa", "--ckpt", folder, "--data", data, "-o", tmp_path / "eval", *options, *fast)
    metrics = _results(tmp_path / "eval")["metrics"]
    assert metrics["all"] == pytest.approx(trained["metrics"]["test"]["all"])
    assert all(0 <= metrics[k] <= 100 for k in ("all", "open", "binary"))
    assert set(metrics["per_tag"]) == {"open", "binary", "descriptive", "direct"}
