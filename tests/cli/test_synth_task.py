"""`egokit synth --task NAME OUT`: a task's own synthetic data plus a random checkpoint, ready for train/eval."""

from __future__ import annotations

import json

import pytest

from egokit.tasks.api import ConfigError, PluginError
from egokit.testing import one_thread, run_cli


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def test_synth_task_writes_data_and_a_checkpoint_that_evaluates(tmp_path):
    out = tmp_path / "ek100"
    result = run_cli("synth", "--task", "ek100-mir", out, "--seed", "3")
    assert (out / "EPIC_100_retrieval_test.csv").is_file() and (out / "model" / "config.json").is_file()
    assert (out / "model" / "tokenizer").is_dir()
    assert f"egokit eval ek100-mir --ckpt {out / 'model'} --data {out}" in result.output  # the next command
    run_cli("eval", "ek100-mir", "--ckpt", out / "model", "--data", out, "-o", tmp_path / "run", "num_frames=4")
    results = json.loads((tmp_path / "run" / "ek100-mir_results.json").read_text())
    assert results["fusion_mode"] == "dual"
    assert results["metrics"]["num_clips"] == 24 and 0.0 <= results["metrics"]["map"]["avg"] <= 100.0


def test_synth_task_is_deterministic_by_seed(tmp_path):
    for name in ("a", "b"):
        run_cli("synth", "--task", "charades-ego", tmp_path / name, "--no-model", "--seed", "5")
    csv = "CharadesEgo_v1_test_only1st.csv"
    assert (tmp_path / "a" / csv).read_bytes() == (tmp_path / "b" / csv).read_bytes()
    assert not (tmp_path / "a" / "model").exists()


def test_synth_task_errors(tmp_path):
    with pytest.raises(PluginError, match="unknown task 'ek100'"):
        run_cli("synth", "--task", "ek100", tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        run_cli("synth", "--task", "ek100-mir", tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
