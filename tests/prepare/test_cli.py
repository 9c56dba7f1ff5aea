"""`egokit prepare` through typer's CliRunner: summary, exit code 1 with the failed file named."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from egokit.cli.main import app
from egokit.errors import ConfigError
from egokit.prepare import load_manifest
from tests.data.videos import make_index_video

runner = CliRunner()


def test_prepare_command(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_index_video(src / "clip.mp4", 30, 10, size=(48, 32), gop=30)
    args = ["prepare", str(src), str(tmp_path / "dst"), "--short-side", "16", "--chunk-seconds", "2",
            "--preset", "ultrafast"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1 / 0 / 0" in result.output and "30 (" in result.output
    assert (tmp_path / "dst" / "clip" / "1.mp4").is_file()
    assert load_manifest(tmp_path / "dst")["clip"].height == 16

    (src / "bad.mp4").write_bytes(b"not a video")
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "0 / 1 / 1" in result.output and "bad.mp4" in result.output and "failed" in result.output


def test_prepare_rejects_bad_options(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare", str(tmp_path), str(tmp_path / "dst"), "--chunk-seconds", "0"])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)
    assert "--chunk-seconds" in str(result.exception)
