"""Fixtures of the QFVS plugin tests: the synthetic QFVS dataset (4 videos x 12 shots) and a tiny checkpoint whose
tokenizer knows its prompts, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from egokit.testing import one_thread, tiny_checkpoint
from egokit_qfvs.synth import generate


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def qfvs_synth(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("qfvs")
    return root, generate(root)


@pytest.fixture(scope="session")
def qfvs_checkpoint(tmp_path_factory, qfvs_synth) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", qfvs_synth[1]["texts"])
