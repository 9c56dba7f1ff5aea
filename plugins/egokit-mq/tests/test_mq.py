"""EgoMQ plugin: `egokit train mq` -> `egokit eval mq` with the default head (VSGN) through `egokit embed` features,
well above a trivial baseline, with the official mAP/recall; the anchor-free head (``head_type=anchor-free``) learns
moments and runs the same flow; `egokit synth --task mq` data runs train -> eval with a random tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from egokit.tasks.api import TaskContext, mq_map
from egokit.testing import cpu_accelerator, run_cli, tiny_checkpoint
from egokit_mq import MQOptions, MQTask, MQTraining
from egokit_mq.data import MQClip, Moment, targets
from egokit_mq.head import DetectionHead, decode, detection_loss

TASK = MQTask()


def test_targets_assign_the_shortest_moment():
    clip = MQClip("c", 10.0, (Moment("a", 1.0, 6.0), Moment("b", 2.0, 3.0)))
    labels, dist = targets(clip, np.array([0.5, 2.5, 5.0]), {"a": 0, "b": 1})
    assert labels.tolist() == [[0, 0], [1, 1], [1, 0]]
    assert dist.tolist() == [[0, 0], [0.5, 0.5], [4.0, 1.0]]


def test_detection_head_learns_moments_on_deterministic_features(toy):
    torch.manual_seed(0)
    feats, clips = toy(96, np.random.default_rng(0))
    times = torch.arange(40).float() + 0.5
    index = {"0": 0, "1": 1, "2": 2}
    labels, dist = zip(*(targets(c, times.numpy(), index) for c in clips))
    labels, dist = torch.stack(labels), torch.stack(dist)
    head = DetectionHead(6, 3, dim=32, heads=4, layers=1, max_len=40, dropout=0.0)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    mask = torch.ones(32, 40, dtype=torch.bool)
    for _ in range(80):
        idx = torch.randint(0, 96, (32,))
        logits, d = head(feats[idx], mask)
        loss = detection_loss(logits, d, mask, labels[idx], dist[idx], torch.ones(32))
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_feats, test_clips = toy(24, np.random.default_rng(1))
    head.eval()
    with torch.no_grad():
        logits, d = head(test_feats, torch.ones(24, 40, dtype=torch.bool))
    dets = [{"clip_uid": c.clip_uid, "label": str(k), "start": s, "end": e, "score": p}
            for i, c in enumerate(test_clips) for k, s, e, p in decode(logits[i], d[i], times, 1.0, 40.0)]
    gt = [{"clip_uid": c.clip_uid, "label": m.label, "start": m.start, "end": m.end} for c in test_clips
          for m in c.moments]
    whole = [{"clip_uid": c.clip_uid, "label": str(k), "start": 0.0, "end": 40.0, "score": 1.0}
             for c in test_clips for k in range(3)]
    ours, base = mq_map(dets, gt), mq_map(whole, gt)
    assert ours["mAP@0.5"] >= base["mAP@0.5"] + 50, (ours, base)


def _run(root, out, **options):
    """``task.train`` / ``task.evaluate`` called directly, as a plugin's own code would."""
    ctx = TaskContext(accelerator=cpu_accelerator(), checkpoint=str(root / "ckpt"), output_dir=out,
                      fusion_mode=TASK.fusion_mode, task_name=TASK.name)
    return ctx, MQOptions(data=str(root), features=str(root / "features"), **options)


def _baseline(root) -> float:
    """Average mAP of the trivial answer: every ground-truth class over the whole 20 s clip."""
    gt = [{"clip_uid": f"clip-{v['video_uid']}", "label": lab["label"], "start": lab["start_time"],
           "end": lab["end_time"]} for v in json.loads((root / "moments_val.json").read_text())["videos"]
          for lab in v["clips"][0]["annotations"][0]["labels"]]
    whole = [{"clip_uid": g["clip_uid"], "label": g["label"], "start": 0.0, "end": 20.0, "score": 1.0} for g in gt]
    return mq_map(whole, gt)["average_mAP"]


def test_default_head_train_then_eval_via_the_cli(mq_setup, tmp_path):
    """No head_type: `egokit train mq` trains VSGN with its own depth and learning rate (only the width and the
    budget are shrunk for the toy data); `egokit eval mq` rebuilds it from the saved folder."""
    root = mq_setup
    common = ["--ckpt", root / "ckpt", "-o", tmp_path, f"data={root}", f"features={root / 'features'}",
              "feature_recipe=egovlpv2-mq-backbone"]
    run_cli("train", "mq", *common, "dim=32", "finetune.epochs=15", "finetune.batch_size=4")
    meta = json.loads((root / "features" / "egovlpv2-mq-backbone" / "embed_meta.json").read_text())
    assert meta["recipe"]["frames_per_window"] == 16 and meta["videos"]["clip-val000"]["num_windows"] == 37
    trained = json.loads((tmp_path / "mq_train_results.json").read_text())
    assert trained["config"]["options"]["head_type"] is None  # what was asked; what ran is in details
    options = trained["config"]["details"]["options"]
    assert options["head_type"] == "vsgn" and options["layers"] == 2
    info = json.loads((tmp_path / "mq_head" / "head.json").read_text())
    assert info["head_type"] == "vsgn" and info["config"]["head_layers"] == 2
    detections = json.loads((tmp_path / "mq_detections.json").read_text())["results"]
    assert detections and set(detections[0]) == {"clip_uid", "label", "start", "end", "score"}
    baseline = _baseline(root)
    assert trained["metrics"]["average_mAP"] >= baseline + 25, (trained["metrics"], baseline)
    run_cli("eval", "mq", *common)
    again = json.loads((tmp_path / "mq_results.json").read_text())
    assert again["metrics"]["average_mAP"] == pytest.approx(trained["metrics"]["average_mAP"])
    assert again["config"]["details"]["head_info"]["head_type"] == "vsgn"


def test_anchor_free_head_train_and_eval_on_embed_features(mq_setup, tmp_path):
    root = mq_setup
    training = MQTraining(epochs=60, batch_size=4, lr=2e-3)
    ctx, options = _run(root, tmp_path, head_type="anchor-free", feature_recipe="egovlpv2-mq-backbone", dim=32,
                        layers=1, dropout=0.0, finetune=training)
    result = TASK.train(ctx, options)
    assert result.details["options"]["head_type"] == "anchor-free"
    assert result.metrics["average_mAP"] >= _baseline(root) + 25, result.metrics
    assert json.loads((tmp_path / "mq_head" / "head.json").read_text())["head_type"] == "anchor-free"
    # no head_type given at evaluation: the saved head decides
    again = TASK.evaluate(*_run(root, tmp_path, feature_recipe="egovlpv2-mq-backbone"))
    assert again.metrics["average_mAP"] == pytest.approx(result.metrics["average_mAP"])


def test_synthetic_dataset_trains_and_evaluates_end_to_end(tmp_path):
    """`egokit synth --task mq OUT` -> `egokit train mq` -> `egokit eval mq` with a random tiny checkpoint and the
    default options (official feature recipe, VSGN)."""
    summary = TASK.synth(tmp_path / "data", seed=3)
    data = tmp_path / "data"
    assert summary["options"] == {"data": str(data)}
    gt = json.loads((data / "moments_val.json").read_text())
    labels = {lab["label"] for v in gt["videos"] for c in v["clips"] for a in c["annotations"] for lab in a["labels"]}
    classes = json.loads((data / "moment_classes_idx.json").read_text())
    assert labels <= set(summary["texts"]) and labels <= set(classes)
    assert len(list((data / "videos").glob("*.mp4"))) == 16
    ckpt = tiny_checkpoint(tmp_path / "ckpt", summary["texts"])
    common = ["--ckpt", ckpt, "--data", summary["options"]["data"], "-o", tmp_path / "run"]
    run_cli("train", "mq", *common)
    trained = json.loads((tmp_path / "run" / "mq_train_results.json").read_text())
    assert trained["config"]["details"]["options"]["feature_recipe"] == "egovlpv2-mq"
    assert (tmp_path / "run" / "mq_head" / "head.safetensors").is_file()
    run_cli("eval", "mq", *common)
    results = json.loads((tmp_path / "run" / "mq_results.json").read_text())
    metrics = results["metrics"]
    for spec in TASK.metrics:
        assert 0.0 <= metrics[spec.name] <= 100.0, (spec.name, metrics)
        assert metrics[spec.name] == pytest.approx(trained["metrics"][spec.name])
    assert metrics["average_mAP"] >= _baseline(data) + 25, metrics  # a random tiny model's features suffice
    assert results["artifacts"]["predictions"] == str(tmp_path / "run" / "mq_detections.json")
    detections = json.loads((tmp_path / "run" / "mq_detections.json").read_text())
    assert detections["version"] == "1.0" and detections["results"]
    assert {d["clip_uid"] for d in detections["results"]} <= {f"clip-val{v:03d}" for v in range(4)}
    assert all(0.0 <= d["start"] <= d["end"] <= 20.0 and d["label"] in labels for d in detections["results"])
