"""Divided space-time attention: the one-call implementations (``masked``, ``flex``) equal the split kernels."""

from __future__ import annotations

import warnings

import pytest
import torch

from egokit.errors import ConfigError
from egokit.models import EgoVLPv2
from egokit.models.attention import divided_attention, divided_mask
from tests.conftest import micro_config
from tests.models.test_architecture import _inputs

TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}


def _qkv(dtype, b=2, h=3, frames=3, patches=6, hd=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = 1 + frames * patches
    return [torch.randn(b, h, t, hd, generator=g, dtype=dtype).requires_grad_() for _ in range(3)], frames


def _run(divided, q, k, v, frames, axis, grad=True):
    qc, kc, vc = (z.detach().clone().requires_grad_(grad) for z in (q, k, v))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flex_attention without torch.compile warns that it is unfused
        out = divided_attention(qc, kc, vc, frames, axis, kernel="matmul", divided=divided)
    if not grad:
        return (out,)
    g = torch.Generator().manual_seed(1)
    (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum().backward()
    return out.detach(), qc.grad, kc.grad, vc.grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("axis", ["space", "time"])
@pytest.mark.parametrize("divided", ["masked", "flex"])
def test_one_call_divided_attention_equals_the_split_matmul_kernel(dtype, axis, divided):
    """Outputs and q/k/v gradients. FlexAttention has no backward on CPU: ``flex`` is compared forward-only here
    (its CPU training fallback is ``masked``, compared with gradients; flex's backward is checked on the GPU by
    bench/gpu_check.py)."""
    (q, k, v), frames = _qkv(dtype)
    grad = divided != "flex"
    reference = _run("split", q, k, v, frames, axis, grad)
    got = _run(divided, q, k, v, frames, axis, grad)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, reference):
        torch.testing.assert_close(a, b, **TOL[dtype], msg=f"{divided} {axis} {name}")


def test_flex_on_cpu_trains_through_the_masked_form():
    (q, k, v), frames = _qkv(torch.float64)
    for a, b in zip(_run("flex", q, k, v, frames, "time"), _run("split", q, k, v, frames, "time")):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


def test_divided_mask_is_the_frozen_in_time_rule():
    frames, patches = 2, 3
    mask = divided_mask(1 + frames * patches, frames, "time")
    assert mask[0].all() and mask[:, 0].all()  # CLS query sees everything; every query sees the CLS key
    # token 1 = (frame 0, patch 0): in time, patch 0 of every frame (tokens 1 and 4); in space, frame 0 (1, 2, 3)
    assert mask[1].nonzero().flatten().tolist() == [0, 1, 4]
    assert divided_mask(7, frames, "space")[1].nonzero().flatten().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("divided", ["masked", "flex"])
def test_model_outputs_and_gradients_do_not_depend_on_the_divided_implementation(divided):
    torch.manual_seed(0)
    cfg = micro_config(time_init="random")
    split = EgoVLPv2(cfg).eval()
    for p in split.gates():
        torch.nn.init.constant_(p, 0.5)
    other = EgoVLPv2(cfg.replace(divided_attention=divided)).eval()
    other.load_state_dict(split.state_dict())
    video, ids, mask = _inputs(cfg)[:3]
    results = []
    if divided == "flex":  # forward only on CPU (see above)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, fn in (("video", lambda m: m.encode_video(video)),
                             ("vtm", lambda m: m.vtm_logits(video, ids, mask)),
                             ("mlm", lambda m: m.mlm_logits(video, ids, mask))):
                torch.testing.assert_close(fn(other), fn(split), rtol=1e-5, atol=1e-6, msg=name)
        return
    for model in (split, other):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = model.encode_video(video).square().sum() + model.vtm_logits(video, ids, mask).square().sum()
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    assert results[0][1].keys() == results[1][1].keys()
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_unknown_divided_implementation_is_rejected():
    with pytest.raises(ConfigError, match="divided_attention"):
        micro_config(divided_attention="fused")
    (q, k, v), frames = _qkv(torch.float32)
    with pytest.raises(ValueError, match="unknown divided attention"):
        divided_attention(q, k, v, frames, "time", divided="fused")
