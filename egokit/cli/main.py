"""The ``egokit`` command line. Each command lives in its own module and is imported only when run."""

from __future__ import annotations

import importlib
from typing import Any, Callable

import typer

from egokit.cli.common import report_error

app = typer.Typer(
    name="egokit",
    help="Pre-train, evaluate and use EgoVLPv2-style video-language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _lazy(module: str, attr: str) -> Callable[..., Any]:
    """Import a command's module on registration; heavy libraries are imported inside the command bodies."""
    return getattr(importlib.import_module(f"egokit.cli.{module}"), attr)


app.command("env")(_lazy("env", "env"))
app.command("models")(_lazy("models", "models"))
app.command("convert")(_lazy("models", "convert"))
app.command("synth")(_lazy("synth", "synth"))
app.command("prepare")(_lazy("prepare", "prepare"))
app.command("pretrain")(_lazy("pretrain", "pretrain"))
app.command("embed")(_lazy("embed", "embed"))
app.command("summarize")(_lazy("summarize", "summarize"))
app.command("tasks")(_lazy("tasks", "tasks"))
app.command("eval")(_lazy("tasks", "eval_cmd"))
app.command("train")(_lazy("tasks", "train_cmd"))
app.command("bench")(_lazy("bench", "bench"))


def main() -> None:
    from egokit.errors import EgokitError

    try:
        app()
    except EgokitError as exc:
        report_error(exc)
        raise SystemExit(2) from None
