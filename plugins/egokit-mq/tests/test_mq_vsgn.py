"""EgoMQ plugin, VSGN head (head_type=vsgn, the default): learns the synthetic detection task, its anchors and
matching behave, and it survives a save/load round trip bit-identically; unset options take each head's own defaults,
and head folders saved before head_type was recorded still load as the anchor-free head they hold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from egokit.tasks.api import ConfigError, FeatureSplit, mq_map
from egokit.tasks.options import recipe_drift, resolve_options
from egokit_mq import MQOptions, MQTask, MQTraining
from egokit_mq.data import MQClip, Moment, collate, segments_in_cells
from egokit_mq.head import DetectionHead
from egokit_mq.heads import build_head
from egokit_mq.vsgn import VSGNHead, vsgn_detections, vsgn_loss

TASK = MQTask()
DEFAULT_HEAD, LEGACY_HEAD = TASK.heads.default, TASK.legacy_head
HEAD_DEFAULTS = {name: TASK.heads[name].defaults for name in TASK.heads.names()}


def save_head(head, folder, options, classes):
    return TASK.save_head(head, folder, options, FeatureSplit(None, info={"classes": classes}))


def load_head(folder):
    return TASK.load_head(folder, MQOptions())


def _segments(clips, times):
    index = {"0": 0, "1": 1, "2": 2}
    return collate([{"video": torch.zeros(len(times), 1), "times": torch.from_numpy(times), "labels": torch.zeros(
        len(times), 3), "dist": torch.zeros(len(times), 2), "segments": segments_in_cells(c, times, index),
        "index": i} for i, c in enumerate(clips)])["segments"]


def test_segments_are_in_step_cells():
    clip = MQClip("c", 10.0, (Moment("a", 1.0, 3.0), Moment("zzz", 0.0, 1.0)))
    times = np.array([0.25, 0.75, 1.25, 1.75, 2.25])  # 0.5 s steps: cell i covers [0.5 i, 0.5 i + 0.5) s
    assert segments_in_cells(clip, times, {"a": 4}).tolist() == [[2.0, 6.0, 4.0]]


def test_vsgn_learns_moments_on_deterministic_features(toy):
    torch.manual_seed(0)
    feats, clips = toy(96, np.random.default_rng(0))
    times = np.arange(40) + 0.5
    segments = _segments(clips, times)
    head = VSGNHead(6, 3, dim=32, levels=4, head_layers=1)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    mask = torch.ones(24, 40, dtype=torch.bool)
    for _ in range(40):
        idx = torch.randint(0, 96, (24,))
        loss = vsgn_loss(head(feats[idx], mask), segments[idx], mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_feats, test_clips = toy(24, np.random.default_rng(1))
    head.eval()
    with torch.no_grad():
        out = head(test_feats, torch.ones(24, 40, dtype=torch.bool))
    t = torch.from_numpy(times).float()
    dets = [{"clip_uid": c.clip_uid, "label": str(k), "start": s, "end": e, "score": p}
            for i, c in enumerate(test_clips) for k, s, e, p in vsgn_detections(out, i, 40, t, 1.0, 40.0)]
    assert all(0.0 <= d["start"] <= d["end"] <= 40.0 for d in dets)
    gt = [{"clip_uid": c.clip_uid, "label": m.label, "start": m.start, "end": m.end} for c in test_clips
          for m in c.moments]
    whole = [{"clip_uid": c.clip_uid, "label": str(k), "start": 0.0, "end": 40.0, "score": 1.0}
             for c in test_clips for k in range(3)]
    ours, base = mq_map(dets, gt), mq_map(whole, gt)
    assert ours["mAP@0.5"] >= base["mAP@0.5"] + 50, (ours, base)


def test_vsgn_predictions_do_not_depend_on_batch_padding():
    torch.manual_seed(0)
    head = VSGNHead(4, 2, dim=16, levels=3, neighbours=4, head_layers=1).eval()
    video = torch.randn(1, 13, 4)
    padded = torch.cat([video, torch.randn(1, 11, 4)], dim=1)
    with torch.no_grad():
        alone = head(video, torch.ones(1, 13, dtype=torch.bool))
        batch = head(padded, torch.arange(24)[None] < 13)
    for key in ("cls", "refined"):
        n = alone[key].shape[1]
        keep = alone["anchor_mask"][0]
        # the padded batch has more anchors per level; compare the ones at the same (level, position, scale)
        a_anchors, b_anchors = alone["anchors"][keep], batch["anchors"][batch["anchor_mask"][0]]
        assert torch.equal(a_anchors, b_anchors) and n > 0
        torch.testing.assert_close(alone[key][0][keep], batch[key][0][batch["anchor_mask"][0]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone["start"][0], batch["start"][0, :13], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("head_type", ["vsgn", "anchor-free"])
def test_head_save_load_round_trip_is_identical(tmp_path, head_type):
    torch.manual_seed(0)
    options = MQOptions(head_type=head_type, dim=16, heads=2, layers=1)
    head = build_head(options, 6, 3)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    head.eval()
    folder = save_head(head, tmp_path / "head", options, ["a", "b", "c"])
    again, info = load_head(folder)
    assert type(again) is type(head) and info["head_type"] == head_type and info["classes"] == ["a", "b", "c"]
    video, mask = torch.randn(2, 21, 6), torch.arange(21)[None] < torch.tensor([[21], [9]])
    with torch.no_grad():
        first, second = head(video, mask), again(video, mask)
    if isinstance(first, dict):
        assert first.keys() == second.keys()
        first, second = list(first.values()), list(second.values())
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_unset_depth_and_lr_take_the_chosen_heads_own_defaults():
    default = TASK.resolved(MQOptions())
    assert default.head_type == DEFAULT_HEAD == "vsgn"
    assert (default.layers, default.finetune.lr) == (HEAD_DEFAULTS["vsgn"]["layers"], HEAD_DEFAULTS["vsgn"]["lr"])
    anchor_free = TASK.resolved(MQOptions(head_type="anchor-free"))
    assert (anchor_free.layers, anchor_free.finetune.lr) == (HEAD_DEFAULTS["anchor-free"]["layers"],
                                                             HEAD_DEFAULTS["anchor-free"]["lr"])
    assert TASK.resolved(MQOptions(layers=3, finetune=MQTraining(lr=1e-4))).layers == 3
    head = build_head(MQOptions(dim=16), 6, 3)  # unresolved options: same defaults
    assert isinstance(head, VSGNHead) and head.config["head_layers"] == HEAD_DEFAULTS["vsgn"]["layers"]
    # the packaged recipe (mq.yaml) states the same defaults
    assert TASK.resolved(resolve_options(TASK)) == default and recipe_drift(TASK) == []
    with pytest.raises(ConfigError, match="head_type must be one of vsgn, anchor-free"):
        TASK.resolved(MQOptions(head_type="actionformer"))
    with pytest.raises(ConfigError, match="head_type must be one of vsgn, anchor-free"):
        resolve_options(TASK, overrides=["head_type=actionformer"])


def test_head_saved_before_head_type_was_recorded_loads_as_the_anchor_free_head(tmp_path):
    # head.json without "head_type" comes from the time when the anchor-free head was the only (default) one: it must
    # load as DetectionHead whatever the current default is
    assert LEGACY_HEAD == "anchor-free" != DEFAULT_HEAD
    torch.manual_seed(0)
    options = MQOptions(head_type="anchor-free", dim=16, heads=2, layers=1)
    head = build_head(options, 6, 3).eval()
    folder = save_head(head, tmp_path / "head", options, ["a", "b", "c"])
    info = json.loads((folder / "head.json").read_text())
    for key in ("head_type", "format", "task"):  # the head.json of that time: config, feature_recipe, classes
        del info[key]
    (folder / "head.json").write_text(json.dumps(info))
    again, loaded = load_head(folder)
    assert type(again) is DetectionHead and "head_type" not in loaded and loaded["classes"] == ["a", "b", "c"]
    video, mask = torch.randn(2, 21, 6), torch.arange(21)[None] < torch.tensor([[21], [9]])
    with torch.no_grad():
        for a, b in zip(head(video, mask), again(video, mask)):
            assert torch.equal(a, b)
