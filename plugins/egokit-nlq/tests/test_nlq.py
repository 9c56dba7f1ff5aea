"""EgoNLQ plugin: `egokit train nlq` -> `egokit eval nlq` with the default head (VSLNet) through `egokit embed`
features and the official submission format, well above trivial baselines; the span head (``head_type=span``) learns
localisation and runs the same flow; `egokit synth --task nlq` data runs train -> eval with a random tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from egokit.tasks.api import HeadTraining, TaskContext, nlq_recall
from egokit.testing import cpu_accelerator, run_cli, tiny_checkpoint
from egokit_nlq import NLQ, NLQOptions
from egokit_nlq.head import SpanHead, span_loss, top_spans

TASK = NLQ()


def test_span_head_learns_to_localise_the_queried_event(toy):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    video, text, spans = toy(128, rng)
    head = SpanHead(6, 6, dim=32, heads=4, layers=2, max_len=32, max_text=3, dropout=0.0)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    vmask, tmask = torch.ones(128, 32, dtype=torch.bool), torch.ones(128, 3, dtype=torch.bool)
    for _ in range(80):
        idx = torch.randint(0, 128, (32,))
        s, e, h = head(video[idx], vmask[idx], text[idx], tmask[idx])
        loss = span_loss(s, e, h, vmask[idx], spans[idx, 0], spans[idx, 1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_video, test_text, test_spans = toy(64, np.random.default_rng(1))
    head.eval()
    s, e, _ = head(test_video, vmask[:64], test_text, tmask[:64])
    pred, _ = top_spans(s, e, vmask[:64], k=5)
    gt = {"videos": [{"clips": [{"clip_uid": "c", "annotations": [{"annotation_uid": "a", "language_queries": [
        {"clip_start_sec": float(a), "clip_end_sec": float(b + 1)} for a, b in test_spans.tolist()]}]}]}]}
    records = [{"clip_uid": "c", "annotation_uid": "a", "query_idx": i,
                "predicted_times": [[float(a), float(b + 1)] for a, b in pred[i].tolist()]} for i in range(64)]
    whole = [{**r, "predicted_times": [[0.0, 32.0]]} for r in records]
    head_r = nlq_recall(records, gt)
    base_r = nlq_recall(whole, gt)
    assert head_r["R@1 IoU=0.3"] >= base_r["R@1 IoU=0.3"] + 50.0, (head_r, base_r)


def _run(root, out, **options):
    """``task.train`` / ``task.evaluate`` called directly, as a plugin's own code would."""
    ctx = TaskContext(accelerator=cpu_accelerator(), checkpoint=str(root / "ckpt"), output_dir=out,
                      fusion_mode=TASK.fusion_mode, task_name=TASK.name)
    return ctx, NLQOptions(data=str(root), features=str(root / "features"), **options)


def _baseline(root, results: list[dict]) -> float:
    """R@1 IoU 0.3 of the better trivial answer: the whole 20 s clip or its middle 4 s."""
    gt = json.loads((root / "nlq_val.json").read_text())
    whole = [{**r, "predicted_times": [[0.0, 20.0]]} for r in results]
    fixed = [{**r, "predicted_times": [[8.0, 12.0]]} for r in results]
    return max(nlq_recall(whole, gt)["R@1 IoU=0.3"], nlq_recall(fixed, gt)["R@1 IoU=0.3"])


def test_default_head_train_then_eval_via_the_cli(nlq_setup, tmp_path):
    """No head_type: `egokit train nlq` trains VSLNet with its own sizes and learning rate (only the width, the budget
    and dropout -- 36 training queries -- are set for the toy data); `egokit eval nlq` rebuilds it from the saved
    folder."""
    root = nlq_setup
    common = ["--ckpt", root / "ckpt", "-o", tmp_path, f"data={root}", f"features={root / 'features'}"]
    run_cli("train", "nlq", *common, "dim=32", "finetune.epochs=30", "finetune.batch_size=12", "dropout=0")
    meta = json.loads((root / "features" / "egovlpv2-nlq" / "embed_meta.json").read_text())
    assert meta["recipe"]["name"] == "egovlpv2-nlq" and len(meta["videos"]) == 16
    assert meta["videos"]["clip-val000"]["queries"] == ["ann-val000:0", "ann-val000:1", "ann-val000:2"]
    trained = json.loads((tmp_path / "nlq_train_results.json").read_text())
    assert trained["config"]["options"]["head_type"] is None  # what was asked; what ran is in details
    options = trained["config"]["details"]["options"]
    assert options["head_type"] == "vslnet"
    assert (options["heads"], options["layers"]) == (8, 4)  # the official sizes
    assert options["finetune"]["lr"] == TASK.heads["vslnet"].defaults["lr"]
    info = json.loads((tmp_path / "nlq_head" / "head.json").read_text())
    assert info["head_type"] == "vslnet" and info["config"]["heads"] == 8 and info["config"]["conv_layers"] == 4
    submission = json.loads((tmp_path / "nlq_predictions.json").read_text())
    assert submission["challenge"] == "ego4d_nlq_challenge" and len(submission["results"]) == 12
    first = submission["results"][0]
    assert set(first) == {"clip_uid", "annotation_uid", "query_idx", "predicted_times"}
    assert len(first["predicted_times"]) == 5
    baseline = _baseline(root, submission["results"])
    assert trained["metrics"]["R@1 IoU=0.3"] >= baseline + 30, (trained["metrics"], baseline)
    # evaluation reloads the saved head and reproduces the numbers from the cached features
    run_cli("eval", "nlq", *common)
    again = json.loads((tmp_path / "nlq_results.json").read_text())
    assert again["metrics"]["R@1 IoU=0.3"] == trained["metrics"]["R@1 IoU=0.3"]
    assert again["config"]["details"]["head_info"]["head_type"] == "vslnet"


def test_span_head_train_and_eval_on_embed_features(nlq_setup, tmp_path):
    training = HeadTraining(epochs=60, batch_size=12, lr=2e-3)
    ctx, options = _run(nlq_setup, tmp_path, head_type="span", dim=32, dropout=0.0, finetune=training)
    result = TASK.train(ctx, options)
    assert result.details["options"]["head_type"] == "span"
    submission = json.loads((tmp_path / "nlq_predictions.json").read_text())
    baseline = _baseline(nlq_setup, submission["results"])
    assert result.metrics["R@1 IoU=0.3"] >= baseline + 30, (result.metrics, baseline)
    assert json.loads((tmp_path / "nlq_head" / "head.json").read_text())["head_type"] == "span"
    # no head_type given at evaluation: the saved head decides
    again = TASK.evaluate(*_run(nlq_setup, tmp_path))
    assert again.metrics["R@1 IoU=0.3"] == result.metrics["R@1 IoU=0.3"]
    assert again.details["head_info"]["head_type"] == "span"


def test_synthetic_dataset_trains_and_evaluates_end_to_end(tmp_path):
    """`egokit synth --task nlq OUT` -> `egokit train nlq` -> `egokit eval nlq` with a random tiny checkpoint."""
    summary = TASK.synth(tmp_path / "data", seed=3)
    gt = json.loads((tmp_path / "data" / "nlq_val.json").read_text())
    assert summary["options"] == {"data": str(tmp_path / "data")}
    assert {q["query"] for v in gt["videos"] for c in v["clips"] for a in c["annotations"]
            for q in a["language_queries"]} <= set(summary["texts"])
    assert len(list((tmp_path / "data" / "videos").glob("*.mp4"))) == 16
    ckpt = tiny_checkpoint(tmp_path / "ckpt", summary["texts"])
    common = ["--ckpt", ckpt, "--data", summary["options"]["data"], "-o", tmp_path / "run"]
    run_cli("train", "nlq", *common)
    trained = json.loads((tmp_path / "run" / "nlq_train_results.json").read_text())["metrics"]
    assert (tmp_path / "run" / "nlq_head" / "head.safetensors").is_file()
    run_cli("eval", "nlq", *common)
    results = json.loads((tmp_path / "run" / "nlq_results.json").read_text())
    metrics = results["metrics"]
    for spec in TASK.metrics:
        assert 0.0 <= metrics[spec.name] <= 100.0, (spec.name, metrics)
        assert metrics[spec.name] == trained[spec.name]
    assert results["artifacts"]["predictions"] == str(tmp_path / "run" / "nlq_predictions.json")
    submission = json.loads((tmp_path / "run" / "nlq_predictions.json").read_text())
    assert len(submission["results"]) == 12
    assert all(0.0 <= a < b <= 20.0 for r in submission["results"] for a, b in r["predicted_times"])
