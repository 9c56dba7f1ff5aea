"""The ``egokit`` command line. Each command lives in its own module and is imported only when run."""

from __future__ import annotations

import gc
import importlib
import os
import sys
import traceback
from typing import Any, Callable

import typer

from egokit.cli.common import report_error

app = typer.Typer(
    name="egokit",
    help="Pre-train, evaluate and use EgoVLPv2-style video-language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog="When something goes wrong: a problem with the input, a file or the disk is one line naming the path "
           "and what to do, exit code 2 (egokit prepare: 1 when some videos failed, listed in a table). "
           "For a bug report, add --traceback (or set EGOKIT_DEBUG=1) to see the full traceback.",
)


@app.callback()
def _global_options(
    show_traceback: bool = typer.Option(
        False, "--traceback", help="Print the full Python traceback of an error (for bug reports); EGOKIT_DEBUG=1 "
                                   "does the same."),
) -> None:
    """Pre-train, evaluate and use EgoVLPv2-style video-language models."""
    # main() reads --traceback from the command line itself: the error it governs is raised after this returns.


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
app.command("index")(_lazy("search", "index_cmd"))
app.command("search")(_lazy("search", "search_cmd"))
app.command("explain")(_lazy("explain", "explain"))
app.command("tasks")(_lazy("tasks", "tasks"))
app.command("eval")(_lazy("tasks", "eval_cmd"))
app.command("train")(_lazy("tasks", "train_cmd"))
app.command("bench")(_lazy("bench", "bench"))


def main() -> None:
    from egokit.cli.failures import report_failure, traceback_requested

    debug = traceback_requested(sys.argv[1:], os.environ)
    from egokit.engine.interrupt import TrainingInterrupted

    try:
        app()
    except TrainingInterrupted as exc:  # SIGTERM/SIGINT/SIGUSR1: stopped after a step (see egokit.engine.interrupt)
        if exc.main_process:
            from egokit.cli.invocation import interrupt_message, invoked_command

            print(interrupt_message(exc, invoked_command()), file=sys.stderr, flush=True)
        code = exc.exit_code
        traceback.clear_frames(exc.__traceback__)
    except Exception as exc:
        code = report_failure(exc, debug, report_error)
        if code is None:  # a bug: Python's traceback
            raise
        traceback.clear_frames(exc.__traceback__)
    else:
        return
    # Exit outside the handler, once the error's frames are gone: what they held (a DataLoader's iterator) is
    # released, so its worker processes are shut down now rather than waited for at interpreter exit.
    gc.collect()
    raise SystemExit(code)
