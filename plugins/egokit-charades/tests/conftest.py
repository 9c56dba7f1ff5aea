"""Fixtures of the Charades-Ego plugin tests: a synthetic dataset (4 classes, 16 training and 8 test videos) and a tiny
checkpoint whose tokenizer knows the class names."""

from __future__ import annotations

from pathlib import Path

import pytest

from egokit.testing import one_thread, tiny_checkpoint
from egokit_charades.synth import CLASSES, generate


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def charades_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("charades")
    generate(root, classes=4, videos=16, test_videos=8)
    return root


@pytest.fixture(scope="session")
def charades_checkpoint(tmp_path_factory) -> Path:
    texts = [line[5:] for line in CLASSES] + ["a person puts down the knife", "someone opens the fridge"]
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", texts)
