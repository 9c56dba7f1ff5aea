"""Console, error reporting and small parsing helpers shared by the CLI commands."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)


def report_error(exc: BaseException) -> None:
    """One clear line for a user mistake; no traceback."""
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
