"""Results files that say exactly what produced them (lm-eval style): metrics + config + versions + git hash."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from egokit.io import write_json_atomic

__all__ = ["flatten_metrics", "git_revision", "package_versions", "run_metadata", "write_json_atomic",
           "write_results"]

_PACKAGES = ("egokit", "torch", "transformers", "timm", "accelerate", "av", "tokenizers", "safetensors", "numpy")


def git_revision(path: str | Path | None = None) -> str | None:
    """Commit of the egokit source tree (or of ``path``), with ``-dirty`` when it has local changes."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_metadata() -> dict[str, Any]:
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "egokit_git": git_revision(),
    }


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"vtm": {"inter": 1}}`` -> ``{"vtm.inter": 1}`` (tables, logs, best-epoch selection)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flatten_metrics(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def write_results(path: str | Path, *, task: str, metrics: dict[str, Any], config: dict[str, Any],
                  checkpoint: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    record = {"task": task, "metrics": metrics, "checkpoint": checkpoint or {}, "config": config,
              "environment": run_metadata(), **(extra or {})}
    return write_json_atomic(path, record)
