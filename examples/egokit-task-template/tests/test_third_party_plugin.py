"""Third-party task packages: built from the template, pip-installed into a throwaway folder, run by the CLI.

Broken packages (an import error, an entry point that names something other than a Task) must be reported with
their package name as one line (exit code 2, no traceback) while the other tasks keep working.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from egokit.tasks.api import colour_segments_video
from egokit.testing import tiny_checkpoint

TEMPLATE = Path(__file__).resolve().parents[1]
COLOURS = ((220, 40, 40), (40, 200, 40))
CAPTIONS = ["a video of a red square", "someone opens the fridge"]


def _from_template(dest: Path, dist: str, module: str, task: str) -> Path:
    """Copy the template, renaming distribution, module and task (what a user does to start a plugin)."""
    shutil.copytree(TEMPLATE, dest, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "tests"))
    (dest / "egokit_task_template").rename(dest / module)
    for path in [dest / "pyproject.toml", *(dest / module).iterdir()]:
        text = path.read_text()
        text = text.replace("egokit-task-template", dist).replace("egokit_task_template", module)
        path.write_text(text.replace("template-retrieval", task))
    return dest


def _broken(dest: Path, dist: str, module: str, task: str, body: str) -> Path:
    (dest / module).mkdir(parents=True)
    (dest / module / "__init__.py").write_text(body)
    (dest / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{dist}"\nversion = "0.0.1"\n\n'
        f'[project.entry-points."egokit.tasks"]\n{task} = "{module}:make_task"\n\n'
        f'[tool.setuptools]\npackages = ["{module}"]\n')
    return dest


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder with the renamed template and two broken plugins installed, for PYTHONPATH."""
    tmp = tmp_path_factory.mktemp("third-party")
    packages = [
        _from_template(tmp / "acme", "acme-egokit-tasks", "acme_tasks", "acme-retrieval"),
        _broken(tmp / "imp", "broken-import-plugin", "broken_import", "broken-import",
                "import egokit_module_that_does_not_exist\n"),
        _broken(tmp / "spec", "broken-spec-plugin", "broken_spec", "broken-spec",
                "def make_task():\n    return {'name': 'broken-spec'}\n"),
    ]
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), *map(str, packages)], check=True, capture_output=True)
    return target


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", CAPTIONS + ["a person puts down the knife"])


def _egokit(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "egokit", *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_installed_plugin_is_listed_and_evaluates(site, checkpoint, tmp_path):
    listing = _egokit(site, "tasks", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split("│")[1].strip(): line for line in listing.stdout.splitlines() if line.count("│") >= 4}
    assert "acme-egokit-tasks" in rows["acme-retrieval"]
    assert "broken-import-plugin" in rows["broken-import"] and "broken-spec-plugin" in rows["broken-spec"]
    assert "ek100-mir" in rows and "charades-ego" in rows  # the first-party plugins are still there

    data = tmp_path / "data"
    data.mkdir()
    with (data / "captions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "caption"])
        for i, caption in enumerate(CAPTIONS):
            colour_segments_video(data / f"clip{i}.mp4", [(COLOURS[i], 1.0)], seed=i)
            writer.writerow([f"clip{i}.mp4", caption])
    result = _egokit(site, "eval", "acme-retrieval", "--ckpt", checkpoint, "-o", tmp_path / "out",
                     f"data={data}", "num_frames=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "acme-retrieval_results.json").read_text())
    assert record["task"] == "acme-retrieval" and record["metrics"]["num_videos"] == 2
    assert record["metrics"]["v2t_r1"] in (0.0, 50.0, 100.0) and record["config"]["options"]["num_frames"] == 2


def test_synth_train_eval(site, tmp_path):
    """`egokit synth --task` writes the template's data, then the train and eval commands it suggests run."""
    data = tmp_path / "data"
    synth = _egokit(site, "synth", "--task", "acme-retrieval", data, "--no-model", cwd=tmp_path)
    assert synth.returncode == 0, synth.stderr
    texts = set()
    for name in ("captions.csv", "train.csv"):
        with (data / name).open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows and all((data / row["video"]).is_file() for row in rows)
        texts.update(row["caption"] for row in rows)
    suggested = next(line for line in synth.stdout.splitlines() if "egokit train acme-retrieval" in line)
    options = [token for token in suggested.split() if "=" in token]
    ckpt = tiny_checkpoint(tmp_path / "ckpt", sorted(texts))

    train = _egokit(site, "train", "acme-retrieval", "--ckpt", ckpt, "--data", data, "-o", tmp_path / "run",
                    *options, "num_frames=2", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    trained = json.loads((tmp_path / "run" / "acme-retrieval_train_results.json").read_text())
    assert trained["metrics"]["steps"] > 0 and 0 <= trained["metrics"]["best"]["t2v_r1"] <= 100
    model = tmp_path / "run" / "checkpoint"
    assert (model / "config.json").is_file() and (model / "model.safetensors").is_file()

    evaluated = _egokit(site, "eval", "acme-retrieval", "--ckpt", model, "--data", data, "-o", tmp_path / "eval",
                        *options, "num_frames=2", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((tmp_path / "eval" / "acme-retrieval_results.json").read_text())["metrics"]
    assert metrics["num_videos"] == 4 and {metrics["v2t_r1"], metrics["t2v_r1"]} <= {0.0, 25.0, 50.0, 75.0, 100.0}
    assert metrics["t2v_r1"] == pytest.approx(trained["metrics"]["best"]["t2v_r1"])


@pytest.mark.parametrize("task,package,reason", [
    ("broken-import", "broken-import-plugin", "ModuleNotFoundError"),
    ("broken-spec", "broken-spec-plugin", "is not a Task subclass"),
])
def test_broken_plugin_is_reported_with_its_package(site, checkpoint, tmp_path, task, package, reason):
    result = _egokit(site, "eval", task, "--ckpt", checkpoint, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and package in lines[0] and reason in lines[0], result.stderr
