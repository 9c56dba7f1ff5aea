"""`egokit --help`, `env`, `models`, `convert`, and how user errors are shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import egokit
from egokit.cli.main import app

PARITY = Path(__file__).parents[1] / "fixtures" / "egovlpv2-parity" / "checkpoint.pth"
runner = CliRunner()


def _egokit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "egokit", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("env", "models", "convert"):
        assert command in result.output


def test_env_json_reports_versions_and_devices():
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["packages"]["torch"] and info["packages"]["egokit"] == egokit.__version__
    assert "cuda_available" in info["devices"]


def test_models_lists_registry():
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "egovlpv2-base" in result.output and "381.6 M" in result.output


def test_convert_official_checkpoint_to_egokit_folder(tmp_path):
    from egokit.testing import tiny_tokenizer

    tiny_tokenizer(["a red cup on the table", "a blue box"] * 5, tmp_path / "tokenizer")  # vocab <= the fixture's 1000
    result = runner.invoke(app, ["convert", str(PARITY), str(tmp_path / "out"), "--num-heads", "4",
                                 "--tokenizer", str(tmp_path / "tokenizer")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "missing keys" in result.output
    original = egokit.load_model(PARITY, num_heads=4)
    converted = egokit.load_model(tmp_path / "out")
    assert converted.config.num_heads == 4
    for key, value in original.state_dict().items():
        assert converted.state_dict()[key].equal(value), key


def test_user_error_is_one_line_without_traceback(tmp_path):
    proc = _egokit("convert", str(tmp_path / "missing.pth"), str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
