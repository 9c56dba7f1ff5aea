"""EgoNLQ plugin, VSLNet head (head_type=vslnet, the default): learns the synthetic localisation task, never decodes
end < start, and survives a save/load round trip bit-identically; unset sizes take each head's own defaults, and head
folders saved before head_type was recorded still load as the span head they hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from egokit.tasks.api import ConfigError, FeatureSplit, HeadTraining, nlq_recall
from egokit.tasks.options import recipe_drift, resolve_options
from egokit_nlq import NLQ, NLQOptions
from egokit_nlq.head import SpanHead, span_loss, top_spans
from egokit_nlq.vslnet import VSLNetHead

TASK = NLQ()
HEAD_DEFAULTS = {name: TASK.heads[name].defaults for name in TASK.heads.names()}


def build_head(options: NLQOptions, video_dim: int, text_dim: int):
    """The head ``options.head_type`` names for features of these widths, built as training builds it: options
    left unset take the head's own defaults."""
    options = TASK.resolved(options)
    return TASK.heads[options.head_type].build(options, _split(video_dim, text_dim))


def _split(video_dim: int, text_dim: int) -> FeatureSplit:
    return FeatureSplit([{"video": torch.zeros(4, video_dim), "text": torch.zeros(2, text_dim)}])


def save_head(head, folder: Path, options: NLQOptions) -> Path:
    return TASK.save_head(head, folder, options, _split(head.config["video_dim"], head.config["text_dim"]))


def load_head(folder: Path):
    return TASK.load_head(folder, NLQOptions())


def _recall(pred: torch.Tensor, spans: torch.Tensor) -> dict[str, float]:
    gt = {"videos": [{"clips": [{"clip_uid": "c", "annotations": [{"annotation_uid": "a", "language_queries": [
        {"clip_start_sec": float(a), "clip_end_sec": float(b + 1)} for a, b in spans.tolist()]}]}]}]}
    records = [{"clip_uid": "c", "annotation_uid": "a", "query_idx": i,
                "predicted_times": [[float(a), float(b + 1)] for a, b in pred[i].tolist()]} for i in range(len(pred))]
    return nlq_recall(records, gt)


@pytest.mark.parametrize("predictor", ["encoder", "lstm"])
def test_vslnet_learns_to_localise_the_queried_event(predictor, toy):
    torch.manual_seed(0)
    video, text, spans = toy(128, np.random.default_rng(0))
    head = VSLNetHead(6, 6, dim=32, heads=4, conv_layers=2, max_len=32, max_text=3, dropout=0.0, predictor=predictor)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    vmask, tmask = torch.ones(128, 32, dtype=torch.bool), torch.ones(128, 3, dtype=torch.bool)
    for _ in range(80):
        idx = torch.randint(0, 128, (32,))
        s, e, h = head(video[idx], vmask[idx], text[idx], tmask[idx])
        loss = span_loss(s, e, h, vmask[idx], spans[idx, 0], spans[idx, 1], extend=head.highlight_extend)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_video, test_text, test_spans = toy(64, np.random.default_rng(1))
    head.eval()
    with torch.no_grad():
        s, e, _ = head(test_video, vmask[:64], test_text, tmask[:64])
    pred, _ = top_spans(s, e, vmask[:64], k=5)
    ours = _recall(pred, test_spans)
    whole = _recall(torch.tensor([[[0, 31]]] * 64), test_spans)
    assert ours["R@1 IoU=0.3"] >= whole["R@1 IoU=0.3"] + 50.0, (ours, whole)


def test_vslnet_spans_never_end_before_they_start_and_respect_padding():
    torch.manual_seed(1)
    head = VSLNetHead(5, 7, dim=16, heads=2, conv_layers=1, max_len=40, max_text=4).eval()
    lengths = torch.tensor([40, 23, 1, 9])
    vmask = torch.arange(40)[None] < lengths[:, None]
    tmask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    with torch.no_grad():
        s, e, h = head(torch.randn(4, 40, 5), vmask, torch.randn(4, 4, 7), tmask)
    assert (s[~vmask] == -1e4).all() and (e[~vmask] == -1e4).all() and (h[~vmask] == -1e4).all()
    spans, scores = top_spans(s, e, vmask, k=5)
    for row, n, sc in zip(spans, lengths.tolist(), scores):
        valid = sc >= 0  # a 1-step clip has a single valid pair; the other slots are masked (score -1)
        assert valid.any()
        assert (row[valid, 1] >= row[valid, 0]).all() and (row[valid] < n).all()
    # the same holds for random logits, whatever their values
    gen = torch.Generator().manual_seed(0)
    rs, re = torch.randn(64, 30, generator=gen) * 5, torch.randn(64, 30, generator=gen) * 5
    spans, _ = top_spans(rs, re, torch.ones(64, 30, dtype=torch.bool), k=10)
    assert (spans[..., 1] >= spans[..., 0]).all()


def test_extended_highlight_target_widens_the_span():
    mask = torch.ones(1, 30, dtype=torch.bool)
    start, end = torch.tensor([10]), torch.tensor([19])
    # a perfect highlight for [9, 20] (the 10-step span widened by round(0.1 * 10) = 1) costs ~0 only with extend
    logit = torch.full((1, 30), -30.0)
    logit[0, 9:21] = 30.0
    flat = torch.zeros(1, 30)
    loss_ext = span_loss(flat, flat, logit, mask, start, end, highlight_weight=1.0, extend=0.1)
    loss_tight = span_loss(flat, flat, logit, mask, start, end, highlight_weight=1.0)
    assert loss_ext < loss_tight - 1.0


@pytest.mark.parametrize("head_type", ["vslnet", "span"])
def test_head_save_load_round_trip_is_identical(tmp_path, head_type):
    torch.manual_seed(0)
    options = NLQOptions(head_type=head_type, dim=16, heads=2, layers=1, max_len=20, text_length=4, dropout=0.2)
    head = build_head(options, 6, 5)
    with torch.no_grad():  # move off the initialisation so a reload from scratch would differ
        for p in head.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    head.eval()
    folder = save_head(head, tmp_path / "head", options)
    again, info = load_head(folder)
    assert type(again) is type(head) and info["head_type"] == head_type
    video, text = torch.randn(3, 20, 6), torch.randn(3, 4, 5)
    vmask, tmask = torch.arange(20)[None] < torch.tensor([[20], [7], [13]]), torch.ones(3, 4, dtype=torch.bool)
    with torch.no_grad():
        for a, b in zip(head(video, vmask, text, tmask), again(video, vmask, text, tmask)):
            assert torch.equal(a, b)


def test_unset_sizes_and_lr_take_the_chosen_heads_own_defaults():
    default = TASK.resolved(NLQOptions())
    assert default.head_type == TASK.heads.default == "vslnet"
    assert (default.heads, default.layers, default.dropout) == (8, 4, 0.2)  # the official VSLNet sizes
    assert default.finetune.lr == HEAD_DEFAULTS["vslnet"]["lr"]
    span = TASK.resolved(NLQOptions(head_type="span"))
    assert (span.heads, span.layers, span.dropout, span.finetune.lr) == tuple(HEAD_DEFAULTS["span"][k] for k in
                                                                              ("heads", "layers", "dropout", "lr"))
    explicit = TASK.resolved(NLQOptions(head_type="span", heads=2, finetune=HeadTraining(lr=5e-4)))
    assert (explicit.heads, explicit.layers, explicit.finetune.lr) == (2, HEAD_DEFAULTS["span"]["layers"], 5e-4)
    head = build_head(NLQOptions(dim=16, max_len=20, text_length=4), 6, 5)  # unresolved options: same defaults
    assert isinstance(head, VSLNetHead) and head.config["heads"] == 8 and head.config["conv_layers"] == 4
    # the packaged recipe says the same as the dataclass
    assert recipe_drift(TASK) == []
    assert TASK.resolved(resolve_options(TASK)) == default
    with pytest.raises(ConfigError, match="head_type must be one of vslnet, span"):
        TASK.resolved(NLQOptions(head_type="transformer"))
    with pytest.raises(ConfigError, match="head_type must be one of vslnet, span"):
        resolve_options(TASK, overrides=["head_type=transformer"])


def test_head_saved_before_head_type_was_recorded_loads_as_the_span_head(tmp_path):
    # head.json without "head_type" comes from the time when the span head was the only (default) one: it must load
    # as SpanHead whatever the current default is
    assert NLQ.legacy_head == "span" != TASK.heads.default
    torch.manual_seed(0)
    options = NLQOptions(head_type="span", dim=16, heads=2, layers=1, max_len=20, text_length=4)
    head = build_head(options, 6, 5).eval()
    folder = save_head(head, tmp_path / "head", options)
    info = json.loads((folder / "head.json").read_text())
    del info["head_type"]
    # exactly what that release wrote: the config and the task's keys, no format version
    info = {k: info[k] for k in ("config", "feature_recipe", "text_length")}
    (folder / "head.json").write_text(json.dumps(info))
    again, loaded = load_head(folder)
    assert type(again) is SpanHead and "head_type" not in loaded
    video, text = torch.randn(2, 20, 6), torch.randn(2, 4, 5)
    vmask, tmask = torch.ones(2, 20, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)
    with torch.no_grad():
        for a, b in zip(head(video, vmask, text, tmask), again(video, vmask, text, tmask)):
            assert torch.equal(a, b)
