"""Checkpoint formats: official .pth safety and errors, egokit folders, hub resolution offline."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import egokit
from egokit.checkpoint import load_pretrained, read_official_checkpoint, save_pretrained
from egokit.errors import CheckpointError
from egokit.models import EgoVLPv2
from tests.conftest import micro_config

PARITY = Path(__file__).parent / "fixtures" / "egovlpv2-parity" / "checkpoint.pth"


def _official_file(path: Path, model: EgoVLPv2, **extra) -> Path:
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"arch": "DistributedDataParallel", "epoch": 1, "state_dict": state, **extra}, path)
    return path


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_official_checkpoint_loads_without_running_pickled_code():
    state, placeholders = read_official_checkpoint(PARITY)
    assert placeholders == ["parse_config.ConfigParser"]
    assert "cls_token" in state and not any(k.startswith("module.") for k in state)
    assert "parse_config" not in sys.modules


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = _official_file(tmp_path / "evil.pth", EgoVLPv2(micro_config()), config=_RunsCode(str(marker)))
    with pytest.raises(CheckpointError, match="refuses to load"):
        egokit.load_model(path)
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    data = PARITY.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        egokit.load_model(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        egokit.load_model(tmp_path / "nope.pth")


def test_wrong_shapes_are_a_clear_error(tmp_path):
    model = EgoVLPv2(micro_config())
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.cross_modal_text_transform.weight"] = torch.zeros(5, 5)
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="cross_modal_text_transform.weight"):
        egokit.load_model(tmp_path / "bad.pth", num_heads=4)


def test_not_an_egovlpv2_checkpoint(tmp_path):
    torch.save({"state_dict": {"module.fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="does not look like an EgoVLPv2"):
        egokit.load_model(tmp_path / "other.pth")


def test_missing_and_unexpected_keys_are_reported(tmp_path):
    model = EgoVLPv2(micro_config())
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.startswith("itm_score.fc.bias")}
    state["module.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "partial.pth")
    loaded = egokit.load_model(tmp_path / "partial.pth", num_heads=4)
    assert loaded.load_report.missing == ["itm_score.fc.bias"]
    assert loaded.load_report.unexpected == ["extra.weight"]


def test_small_projection_and_frames_are_detected_from_shapes(tmp_path):
    model = EgoVLPv2(micro_config(projection="small", projection_dim=16, num_frames=3))
    loaded = egokit.load_model(_official_file(tmp_path / "small.pth", model), num_heads=4)
    assert loaded.config.projection == "small" and loaded.config.projection_dim == 16
    assert loaded.config.num_frames == 3 and loaded.config.preprocess.num_frames == 3


def test_save_and_load_pretrained_round_trip(tmp_path):
    model = EgoVLPv2(micro_config()).eval()
    folder = save_pretrained(model, tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    meta = json.loads((folder / "config.json").read_text())
    assert meta["model"]["preprocess"]["num_frames"] == 2 and meta["model"]["width"] == 32
    loaded = egokit.load_model(folder)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.load_report.missing == [] and loaded.load_report.unexpected == []


def test_load_pretrained_with_more_frames_interpolates(tmp_path):
    folder = save_pretrained(EgoVLPv2(micro_config()), tmp_path / "ckpt")
    loaded = load_pretrained(folder, num_frames=4)
    assert loaded.video_model.temporal_embed.shape[1] == 4
    assert loaded.config.preprocess.num_frames == 4


def test_truncated_safetensors_is_a_clear_error(tmp_path):
    folder = save_pretrained(EgoVLPv2(micro_config()), tmp_path / "ckpt")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_pretrained(folder)


def _build_hub_cache(cache: Path, repo: str, folder: Path, commit: str, refs: dict[str, str]) -> None:
    """Lay out a Hugging Face hub cache by hand (blobs + snapshots + refs), as huggingface_hub writes it."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir()
    for file in folder.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            blob = root / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            target = snapshot / file.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.path.relpath(blob, target.parent))
    (root / "refs").mkdir()
    for ref, sha in refs.items():
        (root / "refs" / ref).write_text(sha)


def test_hub_source_resolves_offline_from_local_cache(tmp_path):
    model = EgoVLPv2(micro_config())
    folder = save_pretrained(model, tmp_path / "ckpt")
    commit = "a" * 40
    _build_hub_cache(tmp_path / "cache", "egokit-test/micro", folder, commit, {"main": commit, "v1": commit})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf")}
    code = (
        "import egokit, sys\n"
        "for src in sys.argv[1:]:\n"
        "    m = egokit.load_model(src)\n"
        "    print(src, m.config.width, m.load_report.sha256)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, "hub:egokit-test/micro", "hub:egokit-test/micro@v1",
                          f"hub:egokit-test/micro@{commit}"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.split()[1] == "32" for line in lines)
    missing = subprocess.run([sys.executable, "-c", code, "hub:egokit-test/absent"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode != 0 and "local Hugging Face cache" in missing.stderr
