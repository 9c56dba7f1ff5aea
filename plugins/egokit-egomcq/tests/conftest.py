"""Fixtures of the EgoMCQ plugin tests: a very small `egokit synth` dataset (EgoClip narrations + EgoMCQ questions
on held-out videos), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from egokit.tasks.api import SynthConfig, synth_egoclip
from egokit.testing import one_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synth_egoclip(out, SynthConfig(videos=4, val_videos=5, duration=12.0, size=64, fps=10, chunk_seconds=4.0,
                                   questions=10, vocab_size=300, seed=0), workers=1)
    return out
