"""The seven first-party tasks as a user sees them: listed with mode and metrics, healthy, with a packaged recipe
that matches their options, synthetic data, and a listing that does not load torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from egokit.tasks.options import recipe_drift
from egokit.tasks.registry import check_task, discover_tasks
from egokit.testing import run_cli

FIRST_PARTY = {"egomcq": "ensemble", "ek100-mir": "dual", "charades-ego": "dual", "nlq": "fusion", "mq": "dual",
               "egotaskqa": "fusion", "qfvs": "fusion"}


@pytest.mark.parametrize("name", sorted(FIRST_PARTY))
def test_first_party_task_is_healthy(name):
    entry = next(e for e in discover_tasks() if e.name == name)
    health = check_task(entry, deep=True)
    assert health.ok, health.problems
    task = health.task
    assert task.fusion_mode == FIRST_PARTY[name] and task.description and task.metrics
    assert task.has_synth and task.recipe is not None
    assert recipe_drift(task) == []  # the packaged recipe documents the real defaults


def test_tasks_check_lists_every_task_with_its_mode():
    output = run_cli("tasks", "--check").output
    for name, mode in FIRST_PARTY.items():
        row = next(line for line in output.splitlines() if f" {name} " in line)
        assert f" {mode} " in row and "ok" in row, row


def test_listing_tasks_imports_no_torch():
    code = ("import sys\nfrom egokit.tasks.registry import discover_tasks\n"
            "tasks = [e.load() for e in discover_tasks()]\n"
            "print(len(tasks), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) >= len(FIRST_PARTY) and out[1] == "False"


def test_recipe_option_prints_the_packaged_recipe():
    output = run_cli("tasks", "--recipe", "ek100-mir").output
    assert "finetune:" in output and "select: map.avg" in output
