"""Initialising the towers from timm ViT and Hugging Face RoBERTa weights (built locally, no download)."""

from __future__ import annotations

import pytest
import torch

from egokit.models import EgoVLPv2
from egokit.models.backbone_init import init_text_from_roberta, init_video_from_vit
from tests.conftest import micro_config


def test_single_frame_model_from_vit_equals_the_vit(tmp_path):
    """With one frame and zero-init time attention, the video tower *is* the ViT it was initialised from."""
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=32, patch_size=16, embed_dim=32, depth=3, num_heads=4, num_classes=0).eval()
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    model = EgoVLPv2(micro_config(num_frames=1, video_ln_eps=1e-6)).eval()
    report = init_video_from_vit(model, tmp_path / "vit.pth")
    model.double(), vit.double()
    assert not report.unexpected
    assert all(any(s in k for s in ("timeattn", "norm3", "temporal_embed", "i2t")) for k in report.missing)
    image = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = vit.forward_features(image)[:, 0]
        actual = model.video_features(image[:, None])
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-10)


def test_text_tower_from_roberta_equals_roberta(tmp_path):
    from transformers import RobertaConfig, RobertaModel

    cfg = micro_config()
    hf_cfg = RobertaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.width, num_hidden_layers=cfg.depth,
                           num_attention_heads=cfg.num_heads, intermediate_size=cfg.text_intermediate_size,
                           max_position_embeddings=cfg.max_text_positions, type_vocab_size=1, pad_token_id=1,
                           layer_norm_eps=cfg.text_ln_eps)
    RobertaModel(hf_cfg).save_pretrained(tmp_path / "roberta")
    hf = RobertaModel.from_pretrained(tmp_path / "roberta").eval().double()
    model = EgoVLPv2(cfg).eval()
    report = init_text_from_roberta(model, tmp_path / "roberta")
    model.double()
    assert not report.unexpected
    assert report.missing and all("t2i" in k for k in report.missing)
    ids = torch.tensor([[0, 5, 9, 17, 2, 1, 1], [0, 30, 2, 1, 1, 1, 1]])
    mask = (ids != 1).long()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        actual = model.text_features(ids, mask)
    real = mask.bool()
    torch.testing.assert_close(actual[real], expected[real], rtol=0, atol=1e-10)


def test_missing_vit_weights_is_a_clear_error(tmp_path):
    from egokit.errors import CheckpointError

    model = EgoVLPv2(micro_config())
    with pytest.raises(CheckpointError, match="ViT weights"):
        init_video_from_vit(model, tmp_path / "nope_not_a_model_name")
