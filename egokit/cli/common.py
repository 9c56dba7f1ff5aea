"""Console, error reporting and small parsing helpers shared by the CLI commands."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)


def report_error(exc: BaseException | str) -> None:
    """One clear line for a user mistake; no traceback (the message is printed as is: never wrapped, never read
    as markup)."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
