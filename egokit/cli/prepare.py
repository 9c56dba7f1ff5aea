"""``egokit prepare SRC DST``: re-encode raw videos into short-side-256, 1-s-GOP, chunked mp4s plus a manifest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from egokit.cli.common import console, err_console

__all__ = ["prepare"]


def prepare(
    src: Path = typer.Argument(..., help="Folder of raw videos (or one video file)."),
    dst: Path = typer.Argument(..., help="Output folder: <uid>/<k>.mp4 chunks and manifest.json."),
    layout: str = typer.Option("auto", help="Input layout: auto, ego4d (<uid>.mp4), epic (P01/videos/P01_01.MP4), "
                               "charades (<id>.mp4) or plain (every video below SRC; uid = relative path)."),
    short_side: int = typer.Option(256, "--short-side", help="Shorter frame side in pixels (never upscaled; even)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Output frame rate (default: the source's)."),
    gop_seconds: float = typer.Option(1.0, "--gop-seconds", help="Key-frame interval in seconds."),
    chunk_seconds: float = typer.Option(600.0, "--chunk-seconds", help="Chunk length (official EgoClip: 600)."),
    codec: str = typer.Option("auto", help="auto (libx264 if available, else mpeg4), libx264 or mpeg4."),
    crf: int = typer.Option(23, help="libx264 quality (lower = better, larger)."),
    preset: str = typer.Option("veryfast", help="libx264 speed preset."),
    workers: int = typer.Option(1, help="Videos encoded in parallel (processes)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Re-encode finished videos (default: skip them)."),
) -> None:
    """Re-encode videos in one pass each into frame-exact chunks <uid>/<k>.mp4 that egokit reads fastest;
    resumable, verified, with DST/manifest.json. Exit code 1 if any video failed (the others are kept), 2 if the
    manifest could not be written."""
    from egokit.prepare import PrepareSettings
    from egokit.prepare import prepare as run_prepare

    settings = PrepareSettings(short_side=short_side, fps=fps, gop_seconds=gop_seconds, chunk_seconds=chunk_seconds,
                               codec=codec, crf=crf, preset=preset)
    settings.validate()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[frames]} frames, {task.fields[rate]} frames/s"), TimeElapsedColumn())
    started = time.perf_counter()
    frames = 0
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("videos", total=None, frames=0, rate="-")

        def on_start(report, jobs) -> None:
            if report.warning:
                err_console.print(f"[yellow]warning:[/] {report.warning}")
            err_console.print(f"{len(jobs)} video(s) in {src} (layout {report.layout}), codec {report.codec}")
            progress.update(task, total=len(jobs))

        def on_frames(n: int) -> None:
            nonlocal frames
            frames += n
            rate = frames / max(time.perf_counter() - started, 1e-9)
            progress.update(task, frames=frames, rate=f"{rate:.0f}")

        report = run_prepare(src, dst, settings, layout=layout, workers=workers, overwrite=overwrite,
                             on_start=on_start, on_frames=on_frames, on_video=lambda _: progress.advance(task))

    done, skipped, failed = (report.by_status(s) for s in ("done", "skipped", "failed"))
    table = Table(title=f"egokit prepare -> {dst}", show_header=False)
    table.add_row("videos encoded / already done / failed", f"{len(done)} / {len(skipped)} / {len(failed)}")
    table.add_row("frames encoded", f"{report.frames} ({report.frames / max(report.seconds, 1e-9):.0f} frames/s)")
    table.add_row("chunk files written", str(sum(len(r.entry["chunks"]) for r in done)))
    table.add_row("settings", f"short side {short_side}, {'source fps' if fps is None else f'{fps:g} fps'}, "
                  f"key frame every {gop_seconds:g} s, {chunk_seconds:g} s chunks, {report.codec}")
    table.add_row("manifest", str(dst / "manifest.json"))
    table.add_row("time", f"{report.seconds:.1f} s with {workers} worker(s)")
    console.print(table)
    inexact = sorted({r.entry["chunk_frames"] / r.entry["fps"] for r in done + skipped} - {chunk_seconds})
    if inexact:
        err_console.print(f"[yellow]note:[/] {chunk_seconds:g} s is not a whole number of frames at some frame "
                          f"rates; chunks hold {', '.join(f'{s:.6g}' for s in inexact)} s: read them with the "
                          "manifest's chunk_seconds (egokit.prepare.load_manifest(DST)\\[uid].chunked())")
    if failed:
        errors = Table(title=f"{len(failed)} video(s) failed", show_lines=False)
        errors.add_column("source")
        errors.add_column("error", overflow="fold")
        for result in failed:
            errors.add_row(result.source, result.error or "")
        err_console.print(errors)
    if report.manifest_error is not None:  # after the tables: one line naming the manifest, exit code 2
        raise report.manifest_error
    if failed:
        raise typer.Exit(code=1)
