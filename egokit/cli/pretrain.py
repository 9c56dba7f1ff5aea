"""``egokit pretrain RECIPE [key=value ...]``."""

from __future__ import annotations

from typing import List, Optional

import typer

from egokit.cli.common import console


def pretrain(
    recipe: str = typer.Argument(..., help="YAML recipe, e.g. recipes/egoclip.yaml or recipes/demo.yaml."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, e.g. optim.lr=1e-4 data.root=/data."),
    resume: Optional[str] = typer.Option(None, "--resume", help="'latest' (this run's newest checkpoint) or a checkpoint folder."),
) -> None:
    """Pretrain with EgoNCE + MLM + VTM (Accelerate: run under `accelerate launch` for several processes).

    SIGTERM, SIGINT (Ctrl-C) or SIGUSR1 stop the run after the current step with a checkpoint and print the command
    that continues it (exit code 128 + the signal number, e.g. 143 for SIGTERM); a second signal stops at once. A
    new run refuses an output_dir that holds an earlier run (continue that one with --resume latest)."""
    from egokit.cli.invocation import invoked_command
    from egokit.pretrain import pretrain as run

    run(recipe, overrides or [], resume=resume, console=console, command=invoked_command())
