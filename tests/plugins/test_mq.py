"""EgoMQ plugin: `egokit train mq` -> `egokit eval mq` with the default head (VSGN) through `egokit embed` features,
well above a trivial baseline, with the official mAP/recall; the anchor-free head (``head_type=anchor-free``) learns
moments and runs the same flow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from egokit.cli.main import app
from egokit.metrics import mq_map
from tests.conftest import micro_config

pytest.importorskip("egokit_mq", reason="install with: pip install -e plugins/egokit-mq")

from egokit_mq.data import MQClip, Moment, targets  # noqa: E402
from egokit_mq.head import DetectionHead, decode, detection_loss  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_targets_assign_the_shortest_moment():
    clip = MQClip("c", 10.0, (Moment("a", 1.0, 6.0), Moment("b", 2.0, 3.0)))
    labels, dist = targets(clip, np.array([0.5, 2.5, 5.0]), {"a": 0, "b": 1})
    assert labels.tolist() == [[0, 0], [1, 1], [1, 0]]
    assert dist.tolist() == [[0, 0], [0.5, 0.5], [4.0, 1.0]]


def _toy(n: int, rng: np.random.Generator, steps: int = 40, dim: int = 6):
    feats = rng.normal(0, 0.3, (n, steps, dim)).astype(np.float32)
    clips = []
    for i in range(n):
        cuts = np.sort(rng.choice(np.arange(1, steps - 1), 6, replace=False))
        moments = []
        for c, (a, b) in enumerate(zip(cuts[0::2], cuts[1::2])):
            feats[i, a:b + 1, c] += 2.0
            moments.append(Moment(str(c), float(a), float(b + 1)))
        clips.append(MQClip(f"c{i}", float(steps), tuple(moments)))
    return torch.from_numpy(feats), clips


def test_detection_head_learns_moments_on_deterministic_features():
    torch.manual_seed(0)
    feats, clips = _toy(96, np.random.default_rng(0))
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
    test_feats, test_clips = _toy(24, np.random.default_rng(1))
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


@pytest.fixture(scope="module")
def mq_setup(tmp_path_factory):
    from egokit.checkpoint import save_pretrained
    from egokit.models import EgoVLPv2
    from tests.embed.synth_clips import make_split

    root = tmp_path_factory.mktemp("mq_data")
    make_split(root, "train", 12, seed=0)
    make_split(root, "val", 4, seed=1)
    torch.manual_seed(0)
    save_pretrained(EgoVLPv2(micro_config()), root / "ckpt")
    return root


def run_cli(*args) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None:
        raise result.exception
    assert result.exit_code == 0, result.output


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
    run_cli("train", "mq", *common, "dim=32", "epochs=15", "batch_size=4")
    meta = json.loads((root / "features" / "egovlpv2-mq-backbone" / "embed_meta.json").read_text())
    assert meta["recipe"]["frames_per_window"] == 16 and meta["videos"]["clip-val000"]["num_windows"] == 37
    trained = json.loads((tmp_path / "mq_train_results.json").read_text())
    options = trained["config"]["options"]
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
    assert again["config"]["options"]["head_info"]["head_type"] == "vsgn"


def test_anchor_free_head_train_and_eval_on_embed_features(mq_setup, tmp_path):
    from accelerate import Accelerator

    from egokit.tasks.context import TaskContext
    from egokit.tasks.registry import get_task

    root = mq_setup

    def ctx(**options):
        return TaskContext(accelerator=Accelerator(cpu=True), checkpoint=str(root / "ckpt"), output_dir=tmp_path,
                           options={"data": str(root), "features": str(root / "features"), **options})

    task = get_task("mq")
    result = task.train(ctx(head_type="anchor-free", feature_recipe="egovlpv2-mq-backbone", epochs=60, batch_size=4,
                            dim=32, layers=1, dropout=0.0, lr=2e-3))
    assert result["config"]["head_type"] == "anchor-free"
    assert result["metrics"]["average_mAP"] >= _baseline(root) + 25, result["metrics"]
    assert json.loads((tmp_path / "mq_head" / "head.json").read_text())["head_type"] == "anchor-free"
    # no head_type given at evaluation: the saved head decides
    again = task.evaluate(ctx(feature_recipe="egovlpv2-mq-backbone"))
    assert again["metrics"]["average_mAP"] == pytest.approx(result["metrics"]["average_mAP"])
