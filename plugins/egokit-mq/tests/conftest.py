"""Fixtures of the EgoMQ plugin tests: toy feature sequences for the heads, and the plugin's synthetic dataset (12
training and 4 validation videos of 20 s) with a tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from egokit.testing import one_thread, tiny_checkpoint
from egokit_mq import MQTask
from egokit_mq.data import MQClip, Moment
from egokit_mq.synth import CLASSES


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


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


@pytest.fixture(scope="session")
def toy():
    """``toy(n, rng)`` -> features (n, 40, 6) with 3 moments per clip (classes "0", "1", "2": +2 on the channel
    of their class inside the moment, N(0, 0.3) noise elsewhere) and the clips (1 step = 1 s)."""
    return _toy


@pytest.fixture(scope="session")
def mq_setup(tmp_path_factory) -> Path:
    """``root``: the synthetic dataset (``egokit synth --task mq``) and ``root/ckpt``, a tiny model."""
    root = tmp_path_factory.mktemp("mq_data")
    MQTask().synth(root, seed=0)
    tiny_checkpoint(root / "ckpt", list(CLASSES))
    return root
