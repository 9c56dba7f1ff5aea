"""Fixtures of the EgoNLQ plugin tests: toy feature sequences for the heads, and the plugin's synthetic dataset
(12 training and 4 validation videos of 20 s) with a tiny checkpoint whose fusion gates are open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from egokit.testing import one_thread, tiny_model, tiny_tokenizer
from egokit_nlq import NLQ
from egokit_nlq.synth import NAMES


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def _toy(n: int, rng: np.random.Generator, steps: int = 32, dim: int = 6):
    """Feature sequences with 3 events (one-hot channel of their class + noise); the query names one class."""
    video = rng.normal(0, 0.3, (n, steps, dim)).astype(np.float32)
    text = np.zeros((n, 3, dim), np.float32)
    spans = []
    for i in range(n):
        cuts = np.sort(rng.choice(np.arange(2, steps - 2), 5, replace=False))
        segs = [(cuts[0] - 2, cuts[0] + 2), (cuts[1] + 1, cuts[2]), (cuts[3] + 1, cuts[4])][: 3]
        for c, (a, b) in enumerate(segs):
            video[i, a:b + 1, c] += 2.0
        q = int(rng.integers(3))
        text[i, 1, q] = 1.0
        spans.append(segs[q])
    return torch.from_numpy(video), torch.from_numpy(text), torch.tensor(spans)


@pytest.fixture(scope="session")
def toy():
    """``toy(n, rng)`` -> video (n, 32, 6), query tokens (n, 3, 6) and the queried event's (start, end) steps."""
    return _toy


@pytest.fixture(scope="session")
def nlq_setup(tmp_path_factory) -> Path:
    """``root``: the synthetic dataset (``egokit synth --task nlq``) and ``root/ckpt``, a tiny model with every
    fusion gate at 0.5 (a fresh model's gates are 0: its fusion features would ignore the query)."""
    from egokit.tasks.api import save_pretrained

    root = tmp_path_factory.mktemp("nlq_data")
    NLQ().synth(root, seed=0)
    texts = [f"when did i see the {n} object?" for n in NAMES] * 4
    tokenizer = tiny_tokenizer(texts, root / "tok", vocab_size=300)
    model = tiny_model(0, vocab_size=300, max_text_positions=40)
    with torch.no_grad():
        for gate in model.gates():
            gate.fill_(0.5)
    save_pretrained(model, root / "ckpt", tokenizer=tokenizer)
    return root
