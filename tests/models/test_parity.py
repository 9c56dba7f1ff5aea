"""Numerical parity with the official EgoVLPv2 implementation (outputs shipped in tests/fixtures)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import egokit

TOL = 1e-8


@pytest.fixture(scope="module")
def parity(request):
    root = request.config.rootpath / "tests" / "fixtures" / "egovlpv2-parity"
    meta = json.loads((root / "meta.json").read_text())
    inputs = dict(np.load(root / "inputs.npz"))
    expected = dict(np.load(root / "expected.npz"))
    model = egokit.load_model(root / "checkpoint.pth", num_heads=meta["heads"]).double()
    return root, meta, inputs, expected, model


def _close(actual: torch.Tensor, expected: np.ndarray) -> None:
    assert tuple(actual.shape) == expected.shape
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=0, atol=TOL)


def test_checkpoint_loads_without_missing_or_unexpected_keys(parity):
    _, meta, _, _, model = parity
    report = model.load_report
    assert report.missing == [] and report.unexpected == []
    assert report.placeholders == ["parse_config.ConfigParser"]
    assert len(model.state_dict()) == meta["n_state_dict_keys"]
    assert model.config.width == meta["width"] and model.config.projection_dim == meta["projection_dim"]
    assert model.config.num_frames == meta["num_frames"] and model.config.fused_layers == meta["fused_layers"]


def test_dual_mode_embeddings(parity):
    _, _, inputs, expected, model = parity
    video = torch.from_numpy(inputs["video"].astype(np.float64))
    ids, mask = torch.from_numpy(inputs["input_ids"]), torch.from_numpy(inputs["attention_mask"])
    with torch.no_grad():
        _close(model.video_features(video), expected["video_cls"])
        _close(model.encode_video(video), expected["video_embeds"])
        _close(model.text_features(ids, mask)[:, 0], expected["text_cls"])
        _close(model.encode_text(ids, mask), expected["text_embeds"])


def test_fusion_mode_vtm_and_mlm(parity):
    _, _, inputs, expected, model = parity
    video = torch.from_numpy(inputs["video"].astype(np.float64))
    ids, mask = torch.from_numpy(inputs["input_ids"]), torch.from_numpy(inputs["attention_mask"])
    pairs = torch.from_numpy(inputs["itm_pairs"])
    v, t, m = video[pairs[:, 0]], ids[pairs[:, 1]], mask[pairs[:, 1]]
    with torch.no_grad():
        fused = model.fusion(v, t, m)
        _close(fused.video_cls, expected["itm_fused_video_cls"])
        _close(fused.text_cls, expected["itm_fused_text_cls"])
        _close(model.vtm_logits(v, t, m), expected["itm_logits"])
        mlm_ids = torch.from_numpy(inputs["mlm_input_ids"])
        _close(model.mlm_logits(video, mlm_ids, mask[:2]), expected["mlm_logits"])
        # Only-masked-positions path gives the same rows.
        positions = mlm_ids == 999
        assert positions.any()
        _close(model.mlm_logits(video, mlm_ids, mask[:2], positions=positions), expected["mlm_logits"][positions.numpy()])


def test_temporal_inflation_and_eval_frames(parity):
    root, meta, inputs, expected, _ = parity
    model8 = egokit.load_model(root / "checkpoint.pth", num_heads=meta["heads"], num_frames=meta["eval_frames"]).double()
    assert model8.load_report.inflated == "temporal_embed 4 -> 8 frames"
    _close(model8.video_model.temporal_embed, expected["inflated_temporal_embed"])
    with torch.no_grad():
        _close(model8.encode_video(torch.from_numpy(inputs["video_eval_frames"].astype(np.float64))),
               expected["video_embeds_eval_frames"])


@pytest.mark.parametrize("kernel", ["sdpa", "matmul"])
def test_both_attention_kernels_reproduce_the_official_outputs(parity, kernel):
    root, meta, inputs, expected, _ = parity
    model = egokit.load_model(root / "checkpoint.pth", num_heads=meta["heads"], attention=kernel).double()
    video = torch.from_numpy(inputs["video"].astype(np.float64))
    ids, mask = torch.from_numpy(inputs["input_ids"]), torch.from_numpy(inputs["attention_mask"])
    pairs = torch.from_numpy(inputs["itm_pairs"])
    with torch.no_grad():
        _close(model.encode_video(video), expected["video_embeds"])
        _close(model.encode_text(ids, mask), expected["text_embeds"])
        _close(model.vtm_logits(video[pairs[:, 0]], ids[pairs[:, 1]], mask[pairs[:, 1]]), expected["itm_logits"])
