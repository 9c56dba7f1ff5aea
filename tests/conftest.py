"""Shared fixtures: tiny models and paths to the bundled test data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _two_threads():
    # The CI machine has 2 cores. Every test starts with the same thread count (some tests lower it while they
    # run), so results never depend on test order.
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(2)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def micro_config(**overrides):
    """A very small EgoVLPv2 configuration (3 layers, 2 fused) for fast structural tests."""
    from egokit.testing import tiny_config

    return tiny_config(**overrides)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A very small `egokit synth` dataset (official EgoClip/EgoMCQ formats), shared by the engine/task tests."""
    from egokit.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, SynthConfig(videos=4, val_videos=5, duration=12.0, size=64, fps=10, chunk_seconds=4.0,
                              questions=10, vocab_size=300, seed=0), workers=1)
    return out


MICRO_MODEL_OVERRIDES = (
    "model.name=egovlpv2-tiny",
    "model.overrides={width: 32, num_heads: 4, depth: 3, fused_layers: 2, image_size: 32, projection_dim: 24, "
    "text_intermediate_size: 64, max_text_positions: 24, text_dropout: 0.0, attention: matmul}",
)
