"""Pretraining evaluates any task plugins listed in ``eval.tasks``, validated before the first step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egokit.tasks.api import ConfigError, PluginError
from tests.conftest import MICRO_MODEL_OVERRIDES

REPO = Path(__file__).parents[2]


def _overrides(data: Path, out: Path, *extra: str) -> list[str]:
    return [*MICRO_MODEL_OVERRIDES, f"data.root={data}", f"output_dir={out}", "data.chunk_seconds=4",
            "data.num_workers=0", "data.batch_size=4", "train.precision=fp32", "train.log_every=1", *extra]


def test_eval_tasks_run_every_n_steps_and_log_flattened_metrics(tiny_synth, tmp_path):
    from egokit.pretrain import pretrain

    tasks = "eval.tasks=[{name: egomcq, every: 2, options: {limit: 4, batch_size: 2}}]"
    result = pretrain(str(REPO / "recipes" / "demo.yaml"),
                      _overrides(tiny_synth, tmp_path / "run", "train.max_steps=3", "train.checkpoint_every=3",
                                 tasks))
    assert result.steps == 3
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r["step"] for r in records if "egomcq/ensemble.inter" in r]
    assert evaluated == [2, 3]  # every 2 steps, and once at the end
    final = json.loads((tmp_path / "run" / "eval" / "egomcq" / "egomcq_results.json").read_text())
    assert final["fusion_mode"] == "ensemble" and final["config"]["options"]["limit"] == 4


@pytest.mark.parametrize("entry,error,message", [
    ("[{name: egomcq, options: {batchsize: 2}}]", ConfigError, r"eval.tasks\[0\] \(egomcq\).*batchsize"),
    ("[{name: egomqc}]", PluginError, "did you mean egomcq"),
])
def test_bad_eval_task_entries_fail_before_training(tiny_synth, tmp_path, entry, error, message):
    from egokit.pretrain import pretrain

    with pytest.raises(error, match=message):
        pretrain(str(REPO / "recipes" / "demo.yaml"), _overrides(tiny_synth, tmp_path / "run", f"eval.tasks={entry}"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_legacy_eval_egomcq_keys_become_an_eval_tasks_entry():
    from egokit.engine.pretrain_recipe import load_pretrain_recipe

    recipe = load_pretrain_recipe(REPO / "recipes" / "egoclip.yaml", ["eval.egomcq=/data/mcq", "eval.num_frames=4"])
    assert [(t.name, t.options) for t in recipe.eval.tasks] == [("egomcq", {"batch_size": 4, "data": "/data/mcq",
                                                                            "num_frames": 4})]
    assert load_pretrain_recipe(REPO / "recipes" / "egoclip.yaml", ["eval.egomcq=null"]).eval.tasks == []
