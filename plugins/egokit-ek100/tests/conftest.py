"""Fixtures of the EK-100 plugin tests: the synthetic EK-100 dataset and a tiny checkpoint, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from egokit.testing import one_thread, tiny_checkpoint
from egokit_ek100.synth import CAPTIONS, generate


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def ek100_data(tmp_path_factory) -> Path:
    """4 captions with distinct verbs and nouns (only the same caption is fully relevant), 2 clips each, no
    relevancy pickle (the task rebuilds the matrix from the CSVs)."""
    root = tmp_path_factory.mktemp("ek100")
    generate(root, captions=4, clips_per_caption=2, relevancy=False)
    return root


@pytest.fixture(scope="session")
def ek100_checkpoint(tmp_path_factory) -> Path:
    texts = [c[0] for c in CAPTIONS] + ["a person puts down the knife", "someone opens the fridge"]
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", texts)
