"""Structure of the model: official parameter names/shapes, gates, modes, kernels, masks, checkpointing."""

from __future__ import annotations

import json

import pytest
import torch

from egokit.models import EgoVLPv2, create_model, get_config, list_models
from egokit.models.attention import attention
from tests.conftest import micro_config


def _official_main(rootpath):
    data = json.loads((rootpath / "tests" / "fixtures" / "official_state_dict_main.json").read_text())
    return {k: tuple(s) for k, s in data["keys"]}


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_registry_lists_base_and_tiny():
    assert {"egovlpv2-base", "egovlpv2-base-smallproj", "egovlpv2-tiny"} <= set(list_models())


def test_base_matches_official_state_dict_names_and_shapes(request):
    official = _official_main(request.config.rootpath)
    model = create_model("egovlpv2-base")
    assert len(official) == 558
    assert _shapes(model) == official
    assert sum(p.numel() for p in model.parameters()) == 381_611_623


def test_smallproj_matches_official_552_keys(request):
    official = _official_main(request.config.rootpath)
    for key in ("txt_proj.0.weight", "txt_proj.2.weight", "txt_proj.2.bias", "txt_proj.4.weight", "txt_proj.4.bias",
                "vid_proj.0.weight", "vid_proj.2.weight", "vid_proj.2.bias", "vid_proj.4.weight", "vid_proj.4.bias"):
        del official[key]
    official.update({"txt_proj.1.weight": (256, 768), "txt_proj.1.bias": (256,), "vid_proj.0.weight": (256, 768),
                     "vid_proj.0.bias": (256,)})
    official["video_model.temporal_embed"] = (1, 16, 768)
    model = create_model("egovlpv2-base-smallproj")
    assert len(official) == 552
    assert _shapes(model) == official


def test_fused_layers_is_configurable():
    model = EgoVLPv2(micro_config(depth=4, fused_layers=1))
    names = set(model.state_dict())
    assert "video_model.blocks.3.attn.alpha_i2t" in names and "video_model.blocks.2.attn.alpha_i2t" not in names
    assert "text_model.encoder.layer.3.alpha_t2i" in names and "text_model.encoder.layer.2.alpha_t2i" not in names


def _inputs(cfg, batch=3, length=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size, generator=g)
    ids = torch.randint(3, cfg.vocab_size, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 4:] = 0
    ids[0, 4:] = cfg.pad_token_id
    ids[:, 0] = 0
    return video, ids, mask


def _randomise(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.2)


def test_closed_gates_make_fusion_text_equal_dual_text():
    model = EgoVLPv2(micro_config()).eval()
    _randomise(model)
    with torch.no_grad():
        for gate in model.gates():
            gate.zero_()
        video, ids, mask = _inputs(model.config)
        fused = model.fusion(video, ids, mask)
        dual = model.text_features(ids, mask)
    assert torch.equal(fused.text, dual)
    # The video side differs even with closed gates: separate fusion CLS token and norm.
    assert not torch.allclose(fused.video_cls, model.video_features(video))


def test_open_gates_exchange_information_in_both_directions():
    model = EgoVLPv2(micro_config()).eval()
    _randomise(model)
    video, ids, mask = _inputs(model.config)
    with torch.no_grad():
        base = model.fusion(video, ids, mask)
        other_video = model.fusion(video.flip(0), ids, mask)
        other_text = model.fusion(video, ids.flip(0), mask.flip(0))
    assert not torch.allclose(base.text, other_video.text)  # text reads video
    assert not torch.allclose(base.video, other_text.video)  # video reads text


def test_parallel_update_uses_previous_layer_states():
    """With one fused layer, the text output must depend on the video *input* of that layer only."""
    model = EgoVLPv2(micro_config(depth=2, fused_layers=1)).eval()
    _randomise(model)
    video, ids, mask = _inputs(model.config)
    with torch.no_grad():
        v_prefix = model.fusion_video_prefix(video)
        t_prefix = model.fusion_text_prefix(ids, mask)
        fused = model.fuse(v_prefix, t_prefix, mask)
        layer = model.text_model.encoder.layer[1]
        expected_text = layer(t_prefix, mask.bool()[:, None, None, :], "matmul", v_prefix)
    torch.testing.assert_close(fused.text, expected_text, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 2e-5), (torch.float64, 1e-10)])
def test_sdpa_and_matmul_kernels_agree(dtype, atol):
    model = EgoVLPv2(micro_config()).eval().to(dtype)
    _randomise(model)
    video, ids, mask = _inputs(model.config)
    video = video.to(dtype)
    outs = {}
    for kernel in ("sdpa", "matmul"):
        model.config.attention = kernel
        with torch.no_grad():
            outs[kernel] = (model.encode_video(video), model.encode_text(ids, mask), model.vtm_logits(video, ids, mask),
                            model.mlm_logits(video, ids, mask))
    for a, b in zip(outs["sdpa"], outs["matmul"]):
        torch.testing.assert_close(a, b, rtol=0, atol=atol * max(1.0, float(b.abs().max())))


@pytest.mark.parametrize("kernel", ["sdpa", "matmul"])
def test_attention_mask_excludes_keys(kernel):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None, :]
    out = attention(q, k, v, mask, kernel=kernel)
    ref0 = torch.softmax(q[0] @ k[0, :, :3].transpose(-1, -2) / 8 ** 0.5, -1) @ v[0, :, :3]
    torch.testing.assert_close(out[0], ref0)


def test_padding_does_not_change_real_token_outputs():
    model = EgoVLPv2(micro_config()).eval()
    _randomise(model)
    video, ids, mask = _inputs(model.config, batch=1, length=5)
    mask[:] = 1
    padded_ids = torch.cat([ids, torch.full((1, 4), model.config.pad_token_id)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(ids, mask), model.encode_text(padded_ids, padded_mask))
        torch.testing.assert_close(model.vtm_logits(video, ids, mask), model.vtm_logits(video, padded_ids, padded_mask))


def test_gradient_checkpointing_gives_identical_gradients():
    torch.manual_seed(0)
    model = EgoVLPv2(micro_config()).train()
    video, ids, mask = _inputs(model.config)
    grads = []
    for ckpt in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(ckpt)
        loss = model.encode_video(video).sum() + model.vtm_logits(video, ids, mask).sum()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=0, atol=1e-6)


def test_wrong_frame_count_is_a_clear_error():
    model = EgoVLPv2(micro_config())
    video, _, _ = _inputs(model.config)
    with pytest.raises(ValueError, match="num_frames=3"):
        model.encode_video(torch.cat([video, video[:, :1]], dim=1))


def test_config_override_unknown_key_is_an_error():
    from egokit.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model option"):
        get_config("egovlpv2-tiny", not_a_field=1)
