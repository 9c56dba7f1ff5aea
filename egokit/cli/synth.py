"""``egokit synth OUT``: a synthetic EgoClip/EgoMCQ dataset for pretraining demos; ``egokit synth --task NAME OUT``:
the small synthetic dataset a task plugin ships, in the task's official format, plus a random checkpoint to try
``egokit train``/``egokit eval`` on it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from egokit.errors import ConfigError

__all__ = ["synth"]

MODEL_DIR = "model"


def synth(
    out: Path = typer.Argument(..., help="Output folder (must be empty or absent unless --force)."),
    task: Optional[str] = typer.Option(None, "--task", help="Write this task's synthetic dataset instead (see "
                                                            "`egokit tasks`); only --seed, --force and --model apply."),
    model: bool = typer.Option(True, "--model/--no-model", help="With --task: also write OUT/model, a random "
                                                                 "egovlpv2-tiny checkpoint with a tokenizer for the data."),
    videos: int = typer.Option(120, help="Training videos (narrations go to egoclip.csv)."),
    val_videos: int = typer.Option(12, help="Held-out videos used only by egomcq.json (>= 5 for questions)."),
    duration: float = typer.Option(30.0, help="Seconds per video."),
    size: int = typer.Option(128, help="Frame height (short side) in pixels; even."),
    aspect: float = typer.Option(1.0, help="Frame width / height (1.0 = square, 1.33 = 4:3)."),
    fps: int = typer.Option(15, help="Frames per second."),
    chunk_seconds: float = typer.Option(20.0, help="Chunk length of videos/<uid>/<k>.mp4 (official: 600)."),
    questions: int = typer.Option(300, help="EgoMCQ questions, half inter-video and half intra-video."),
    objects: int = typer.Option(3, help="Objects per scene."),
    zoom: float = typer.Option(1.6, help="Head-camera zoom onto the handled object (1 = whole table in view)."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same dataset."),
    workers: int = typer.Option(2, help="Parallel processes rendering videos."),
    force: bool = typer.Option(False, "--force", help="Write into OUT even if it is not empty."),
) -> None:
    """Generate a synthetic egocentric video-language dataset in the official EgoClip/EgoMCQ formats (or, with
    --task, a task's own small dataset)."""
    from egokit.synth import SynthConfig, generate

    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder; choose another OUT")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out} is not empty; choose another OUT or pass --force to write into it")
    if task is not None:
        _task_synth(task, out, seed=seed, model=model)
        return
    config = SynthConfig(
        videos=videos,
        val_videos=val_videos,
        duration=duration,
        size=size,
        aspect=aspect,
        fps=fps,
        chunk_seconds=chunk_seconds,
        questions=questions,
        objects=objects,
        zoom=zoom,
        seed=seed,
    )
    config.validate()
    console = Console()
    started = time.perf_counter()
    columns = (TextColumn("rendering videos"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("videos", total=videos + val_videos)
        summary = generate(out, config, workers=workers, on_video=lambda done, _: progress.update(task, completed=done))
    elapsed = time.perf_counter() - started

    table = Table(title=f"egokit synth -> {out}", show_header=False)
    table.add_row("training videos / clips", f"{summary.train_videos} / {summary.clips}")
    table.add_row("clips straddling a chunk boundary", str(summary.straddling_clips))
    table.add_row("held-out videos", str(summary.val_videos))
    inter, intra = summary.questions.get("inter", 0), summary.questions.get("intra", 0)
    table.add_row("EgoMCQ questions (inter / intra)", f"{inter} / {intra}")
    table.add_row("frame size, fps", f"{config.width}x{config.size}, {config.fps}")
    table.add_row("video chunk files", str(summary.chunks))
    table.add_row("tokenizer vocabulary", str(summary.vocab_size))
    table.add_row("seed", str(seed))
    table.add_row("time", f"{elapsed:.1f} s with {workers} worker(s)")
    console.print(table)


def _task_synth(name: str, out: Path, *, seed: int, model: bool) -> None:
    """``task.synth(out)``, then (``model``) a random checkpoint in ``out/model``; prints what to run next."""
    from egokit.tasks.registry import get_task

    task = get_task(name)
    if not task.has_synth:
        raise ConfigError(f"task {name!r} ships no synthetic dataset")
    console = Console()
    started = time.perf_counter()
    with console.status(f"writing {name} synthetic data to {out}"):
        summary: dict[str, Any] = dict(task.synth(out, seed=seed) or {})
    elapsed = time.perf_counter() - started
    table = Table(title=f"egokit synth --task {name} -> {out}", show_header=False)
    for key, value in summary.items():
        if key not in ("texts", "options"):
            table.add_row(key, str(value))
    ckpt = None
    if model:
        from egokit.synth.demo_model import write_random_checkpoint

        tokenizer_dir = out / "tokenizer" if (out / "tokenizer" / "tokenizer.json").is_file() else None
        texts = summary.get("texts")
        if tokenizer_dir is None and not texts:
            raise ConfigError(f"task {name!r}: its synth() returned no 'texts' to train a tokenizer on; "
                              "pass --no-model and use your own checkpoint")
        ckpt = write_random_checkpoint(out / MODEL_DIR, texts=texts, tokenizer_dir=tokenizer_dir, seed=seed)
        table.add_row("random checkpoint", str(ckpt))
    table.add_row("seed", str(seed))
    table.add_row("time", f"{time.perf_counter() - started:.1f} s (data {elapsed:.1f} s)")
    console.print(table)
    options = dict(summary.get("options") or {"data": str(out)})
    extra = " ".join(f"{k}={v}" for k, v in options.items() if k != "data")
    eval_extra = " ".join(f"{k}={v}" for k, v in options.items() if k != "data" and not k.startswith("finetune."))
    run = out / "run"
    ck = f" --ckpt {ckpt}" if ckpt is not None else " --ckpt CKPT"
    data = f" --data {options.get('data', out)}"
    train = f"egokit train {name}{ck}{data} -o {run} {extra}".rstrip()
    if task.trained_model or task.needs_training:  # evaluation needs what training writes
        eval_ck = f" --ckpt {run / task.trained_model}" if task.trained_model else ck
        steps = [train, f"egokit eval {name}{eval_ck}{data} -o {run} {eval_extra}".rstrip()]
    else:
        steps = [f"egokit eval {name}{ck}{data} -o {run} {eval_extra}".rstrip()] + ([train] if task.trainable else [])
    for i, step in enumerate(steps):
        console.print(f"{'next:' if i == 0 else '     '} {step}", highlight=False, soft_wrap=True)
