"""A whole ``egokit embed`` run: the metadata record, sharding across processes, progress and the final merge."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import av

from egokit.embed.extract import EmbedStats, embed_items, feature_dim
from egokit.embed.items import EmbedItem
from egokit.embed.recipes import FeatureRecipe
from egokit.embed.writer import FeatureWriter
from egokit.results import run_metadata

__all__ = ["embed_to_folder", "run_record"]


def run_record(model, recipe: FeatureRecipe, *, fmt: str, precision: str, query: str | None,
               checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    """What produced the features; its ``fingerprint`` changes whenever the features would."""
    cfg = model.config
    report = getattr(model, "load_report", None)
    ckpt = {"source": getattr(report, "source", None), "sha256": getattr(report, "sha256", None), **(checkpoint or {})}
    settings = {
        "recipe": recipe.to_dict(),
        "recipe_fingerprint": recipe.fingerprint(),
        "checkpoint_sha256": ckpt.get("sha256"),
        "model": {"num_frames": cfg.num_frames, "image_size": cfg.image_size, "width": cfg.width,
                  "projection": cfg.projection, "projection_dim": cfg.projection_dim,
                  "feature_dim": feature_dim(model, recipe)},
        "transform": f"EvalTransform({cfg.image_size}) + normalize(mean={list(cfg.preprocess.mean)}, "
                     f"std={list(cfg.preprocess.std)})",
        "precision": precision,
        "format": fmt,
        "query": query,
    }
    fingerprint = hashlib.sha256(json.dumps({k: v for k, v in settings.items() if k != "recipe"}, sort_keys=True,
                                            default=str).encode()).hexdigest()[:16]
    ffmpeg = {name: ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
              for name, v in getattr(av, "library_versions", {}).items()}
    return {
        "fingerprint": fingerprint,
        **settings,
        "checkpoint": ckpt,
        "decoder": {"library": "PyAV", "version": av.__version__, "ffmpeg": ffmpeg,
                    "frame_times": "frame i read at (i + 0.5) / stream fps"},
        "window_times": "seconds from the clip start; window k covers [start_k, end_k)",
        "environment": run_metadata(),
    }


def embed_to_folder(model, items: Sequence[EmbedItem], recipe: FeatureRecipe, out_dir: str | Path, *,
                    tokenizer=None, query: str | None = None, fmt: str = "pt", batch_size: int = 32,
                    precision: str = "fp32", overwrite: bool = False, state=None, show_progress: bool = True,
                    console=None, on_item_done: Callable[[str], None] | None = None,
                    checkpoint: dict[str, Any] | None = None) -> EmbedStats:
    """Embed ``items`` into ``out_dir``; with an Accelerate ``state`` each process takes every n-th item.

    Returns this process's statistics; the main process writes ``embed_meta.json`` after all have finished.
    """
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    is_main = rank == 0
    writer = FeatureWriter(out_dir, fmt, run_record(model, recipe, fmt=fmt, precision=precision, query=query,
                                                    checkpoint=checkpoint), overwrite=overwrite)
    from rich.progress import TextColumn

    from egokit.engine.progress import make_progress

    rates = TextColumn("{task.fields[videos]} videos  {task.fields[vps]:.2f} videos/s  {task.fields[wps]:.1f} windows/s")
    with make_progress(console, not (show_progress and is_main), rates) as progress:
        task = progress.add_task("embedding windows", total=None, videos=0, vps=0.0, wps=0.0)

        class _Bar:
            def update(self, **fields: Any) -> None:
                progress.update(task, **fields)

            def advance(self, n: int, **fields: Any) -> None:
                progress.update(task, advance=n, **fields)

        try:
            stats = embed_items(model, items, recipe, writer, tokenizer=tokenizer, query=query, batch_size=batch_size,
                                precision=precision, rank=rank, world_size=world, progress=_Bar(),
                                on_item_done=on_item_done)
        finally:
            if state is None:
                writer.finalize()  # record what finished, even if interrupted
    if state is not None:
        state.wait_for_everyone()
        if is_main:
            writer.finalize()
    return stats
