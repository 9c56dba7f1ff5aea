"""``egokit env``: versions and devices, for bug reports."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata

import typer
from rich.table import Table

from egokit.cli.common import console

_PACKAGES = ("egokit", "torch", "torchvision", "transformers", "tokenizers", "timm", "accelerate", "av",
             "safetensors", "huggingface-hub", "numpy", "typer", "rich", "pyyaml")


def collect_env() -> dict:
    import torch

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    devices = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }
    from egokit.tasks.registry import discover_tasks

    tasks = {t.name: f"{t.package} {t.version}" for t in discover_tasks()}
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
            "devices": devices, "tasks": tasks}


def env(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """Show library versions, devices and installed task plugins (paste this into bug reports)."""
    info = collect_env()
    if as_json:
        console.print_json(json.dumps(info))
        return
    table = Table(title="egokit environment", show_header=False)
    table.add_row("python", info["python"])
    table.add_row("platform", info["platform"])
    for name, version in info["packages"].items():
        table.add_row(name, version or "[dim]not installed[/]")
    for key, value in info["devices"].items():
        table.add_row(key, str(value))
    table.add_row("tasks", ", ".join(f"{k} ({v})" for k, v in info["tasks"].items()) or "[dim]none[/]")
    console.print(table)
