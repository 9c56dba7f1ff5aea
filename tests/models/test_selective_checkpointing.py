"""Activation checkpointing modes (none / full / selective): same gradients, less memory held for backward."""

from __future__ import annotations

import pytest
import torch

from egokit.engine.objective import PretrainObjective
from egokit.errors import ConfigError
from egokit.perf import count_flops, peak_tensor_bytes
from tests.engine.test_objective import _batch, _model


def _run(mode: str):
    model = _model().train()
    model.set_grad_checkpointing(mode)
    objective = PretrainObjective(model, doubled=False)
    batch = _batch(model.config)

    def step():
        objective(vtm_seed=7, **batch)["loss"].backward()

    peak = peak_tensor_bytes(step)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    flops = count_flops(step)[0]
    return grads, peak, flops


def test_checkpointing_modes_give_the_same_gradients_with_less_memory():
    """Peak bytes of tensors held at once during the step (forward + backward), counted op by op
    (``egokit.perf.peak_tensor_bytes``). Selective keeps the matmul outputs, so it recomputes no matmul: its
    FLOP count equals the plain step's, while full checkpointing re-runs every block's matmuls."""
    none, selective, full = (_run(m) for m in ("none", "selective", "full"))
    for name, grad in none[0].items():
        torch.testing.assert_close(selective[0][name], grad, rtol=0, atol=1e-6, msg=f"selective {name}")
        torch.testing.assert_close(full[0][name], grad, rtol=0, atol=1e-6, msg=f"full {name}")
    assert none[0].keys() == selective[0].keys() == full[0].keys()
    assert full[1] < selective[1] < none[1]
    assert selective[2] == none[2] < full[2]


@pytest.mark.parametrize("value", [True, False, "none", "full", "selective"])
def test_checkpointing_values_are_accepted(value):
    model = _model()
    model.set_grad_checkpointing(value)
    assert model.config.gradient_checkpointing == value


def test_unknown_checkpointing_mode_is_a_clear_error():
    with pytest.raises(ConfigError, match="selective"):
        _model().set_grad_checkpointing("partial")
