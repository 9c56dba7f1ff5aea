"""docs/plugins.md is a working third-party task: its snippets marked ``file=...`` are written into a folder,
pip-installed into this environment, listed, evaluated, fine-tuned and uninstalled, as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
DIST, TASK = "acme-egokit-tasks", "acme-retrieval"
FENCE = re.compile(r"^```\w+ file=(?P<name>\S+)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def doc_files() -> dict[str, str]:
    return {m["name"]: m["body"] for m in FENCE.finditer(DOC.read_text(encoding="utf-8"))}


def _run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([*args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _egokit(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return _run(sys.executable, "-m", "egokit", *map(str, args), cwd=cwd, check=check)


def test_the_api_reference_is_current():
    from egokit.tasks.apidoc import render

    page = DOC.parent / "plugin-api.md"
    assert page.read_text(encoding="utf-8") == render(), "run: python -m egokit.tasks.apidoc > docs/plugin-api.md"


def test_the_doc_has_the_whole_package():
    assert set(doc_files()) == {"pyproject.toml", "acme_tasks/__init__.py", "acme_tasks/task.py",
                                "acme_tasks/acme.yaml"}


@pytest.fixture
def installed(tmp_path):
    package = tmp_path / DIST
    for name, body in doc_files().items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(body, encoding="utf-8")
    pip = (sys.executable, "-m", "pip")
    _run(*pip, "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(package), cwd=tmp_path)
    try:
        yield tmp_path
    finally:
        _run(*pip, "uninstall", "-y", "-q", DIST, cwd=tmp_path, check=False)


def test_the_doc_task_installs_lists_evaluates_trains_and_uninstalls(installed):
    work = installed
    listing = _egokit("tasks", "--check", cwd=work, check=False).stdout  # exit 1 would only mean another is broken
    row = next(line for line in listing.splitlines() if TASK in line)
    assert "dual" in row and "Acme captioned videos" in row and DIST in row and "ok" in row, listing

    _egokit("synth", "--task", TASK, work / "data", cwd=work)
    assert (work / "data" / "captions.csv").is_file() and (work / "data" / "model" / "config.json").is_file()
    _egokit("eval", TASK, "--ckpt", work / "data" / "model", "--data", work / "data", "-o", work / "run", cwd=work)
    results = json.loads((work / "run" / f"{TASK}_results.json").read_text())
    assert results["fusion_mode"] == "dual" and results["config"]["options"]["num_frames"] == 4
    r1 = results["metrics"]["r1"]
    assert 0.0 <= r1["v2t"] <= 100.0 and r1["avg"] == pytest.approx((r1["v2t"] + r1["t2v"]) / 2)

    _egokit("train", TASK, "--ckpt", work / "data" / "model", "--data", work / "data", "-o", work / "run",
            "finetune.epochs=2", cwd=work)
    trained = json.loads((work / "run" / f"{TASK}_train_results.json").read_text())
    assert trained["config"]["options"]["finetune"]["epochs"] == 2
    assert [r["epoch"] for r in trained["history"] if "eval" in r] == [0, 1]  # validated after every epoch
    assert (work / "run" / "checkpoint" / "model.safetensors").is_file()
    _egokit("eval", TASK, "--ckpt", work / "run" / "checkpoint", "--data", work / "data", "-o", work / "run2",
            cwd=work)

    typo = _egokit("train", TASK, "--ckpt", work / "data" / "model", "--data", work / "data", "epochs=2", cwd=work,
                   check=False)
    assert typo.returncode == 2 and "finetune.epochs" in typo.stderr and "Traceback" not in typo.stderr

    _run(sys.executable, "-m", "pip", "uninstall", "-y", "-q", DIST, cwd=work)
    assert TASK not in _egokit("tasks", cwd=work).stdout
