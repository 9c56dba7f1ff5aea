"""``egokit summarize VIDEO --query TEXT --ckpt SOURCE``: a query-focused summary of any video."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from egokit.cli.common import console, err_console


def summarize(
    video: Path = typer.Argument(..., help="Video file (anything PyAV/FFmpeg decodes)."),
    query: str = typer.Option(..., "--query", "-q", help="What the summary should show, e.g. 'a red cup'."),
    ckpt: str = typer.Option(..., "--ckpt", help="egokit folder (with a QFVS head if trained), official .pth or hub:org/name."),
    budget_shots: Optional[int] = typer.Option(None, "--budget-shots", help="Keep at most N shots."),
    budget_seconds: Optional[float] = typer.Option(None, "--budget-seconds", help="Keep at most S seconds."),
    shot_seconds: float = typer.Option(2.0, "--shot-seconds", help="Length of each fixed shot."),
    out: Path = typer.Option(Path("summary"), "--out", "-o", help="Output folder."),
    mp4: bool = typer.Option(False, "--mp4", help="Also write summary.mp4 of the selected shots."),
    html: bool = typer.Option(False, "--html", help="Also write report.html (static: score timeline, thumbnails, "
                              "clip links)."),
    scorer: str = typer.Option("auto", help="auto (QFVS head if the checkpoint has one), vtm or qfvs."),
    batch_size: int = typer.Option(8, help="Shots per forward pass."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer folder or hub name (default: bundled)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda when available)."),
) -> None:
    """Split VIDEO into shots, score each against QUERY in fusion mode, write JSON + contact sheet (+ mp4)."""
    import torch

    from egokit.checkpoint import load_model
    from egokit.engine.progress import task_progress
    from egokit.errors import ConfigError
    from egokit.summarize import find_head, summarize_video, write_summary
    from egokit.tokenizer import load_tokenizer

    from egokit.io import check_output_dir

    if not query.strip():
        raise ConfigError("--query is empty: say what the summary should show, e.g. --query 'a red cup'")
    if scorer not in ("auto", "vtm", "qfvs"):
        raise ConfigError(f"--scorer must be auto, vtm or qfvs, got {scorer!r}")
    if not video.is_file():
        raise ConfigError(f"video not found: {video}")
    check_output_dir(out)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_model(ckpt).to(target)
    folder = getattr(model, "source_path", None)
    head = find_head(folder) if scorer != "vtm" else None
    if scorer == "qfvs" and head is None:
        raise ConfigError(f"--scorer qfvs: {ckpt} has no QFVS head (head.json of type summary); train one with "
                          "`egokit train qfvs` or use --scorer vtm")
    if tokenizer is None and folder is not None and (Path(folder) / "tokenizer").is_dir():
        tokenizer = str(Path(folder) / "tokenizer")
    tok = load_tokenizer(tokenizer or model.config.preprocess.tokenizer)
    from egokit.data.video import probe_video
    from egokit.summarize import fixed_shots

    total = len(fixed_shots(probe_video(video).duration, shot_seconds))
    with task_progress("scoring shots", total, console=err_console) as bar:
        summary = summarize_video(model, tok, video, query, budget_shots=budget_shots, budget_seconds=budget_seconds,
                                  shot_seconds=shot_seconds, head=head, batch_size=batch_size, progress=bar)
    paths = write_summary(summary, out, mp4=mp4, html=html)
    spans = ", ".join(f"{summary.shots[i].start:.1f}-{summary.shots[i].end:.1f}s" for i in summary.selected)
    console.print(f"selected {len(summary.selected)}/{len(summary.shots)} shots ({summary.scorer}): {spans}")
    for kind, path in paths.items():
        err_console.print(f"{kind}: {path}")
