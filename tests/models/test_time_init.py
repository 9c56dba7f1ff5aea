"""``time_init``: the official zero time attention, or a random one for from-scratch training."""

from __future__ import annotations

import pytest
import torch

from egokit.errors import ConfigError
from egokit.models import EgoVLPv2, get_config
from tests.conftest import micro_config


def test_zero_time_init_gives_a_silent_time_branch_and_random_does_not():
    torch.manual_seed(0)
    cfg = micro_config()
    video = torch.randn(2, cfg.num_frames, 3, cfg.image_size, cfg.image_size)
    outputs = {}
    for init in ("zeros", "random"):
        model = EgoVLPv2(micro_config(time_init=init)).eval()
        seen = []
        hooks = [b.timeattn.register_forward_hook(lambda m, i, o: seen.append(o)) for b in model.video_model.blocks]
        with torch.no_grad():
            model.encode_video(video)
        for h in hooks:
            h.remove()
        outputs[init] = torch.stack([o.abs().max() for o in seen])
    assert torch.all(outputs["zeros"] == 0)  # each block starts as a per-frame ViT block (official)
    assert torch.all(outputs["random"] > 1e-3)  # frames exchange information from the first step


def test_tiny_uses_random_time_init_and_bad_values_are_rejected():
    assert get_config("egovlpv2-tiny").time_init == "random"
    assert get_config("egovlpv2-base").time_init == "zeros"
    with pytest.raises(ConfigError, match="time_init"):
        get_config("egovlpv2-tiny", time_init="ones")
