"""``egokit index SOURCE INDEX`` and ``egokit search INDEX "query"``: find moments in videos by text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from egokit.cli.common import console, err_console


def _tokenizer_for(model, override: Optional[str]):
    from egokit.tokenizer import load_tokenizer

    if override:
        return load_tokenizer(override)
    folder = getattr(model, "source_path", None)
    if folder is not None and (Path(folder) / "tokenizer").is_dir():
        return load_tokenizer(Path(folder) / "tokenizer")
    return load_tokenizer(model.config.preprocess.tokenizer)


def index_cmd(
    source: Path = typer.Argument(..., help="Videos: a video, a folder of videos, an `egokit prepare` output or a "
                                  "clip list (.json/.jsonl/.csv); or an `egokit embed` output folder (projected, or "
                                  "backbone with --ckpt) to index without re-embedding."),
    index: Path = typer.Argument(..., help="Index folder (index.json + vectors + windows; features/ when embedding)."),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="Official .pth, egokit folder or hub:org/name[@rev] "
                                       "(not needed for a folder of projected features)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Named feature recipe (see `egokit embed "
                                         "--list-recipes`); default: the checkpoint's frames, one window per second."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per window (default: the checkpoint's)."),
    windows_per_second: Optional[float] = typer.Option(None, "--windows-per-second",
                                                       help="Windows per second (default 1.0: 1-s windows)."),
    stride: Optional[float] = typer.Option(None, help="Sliding windows: seconds between window starts."),
    window_frames: Optional[int] = typer.Option(None, "--window-frames", help="Sliding: source frames per window."),
    short_side: Optional[int] = typer.Option(None, "--short-side", help="Resize frames while decoding."),
    video_root: Optional[Path] = typer.Option(None, "--video-root", help="Folder of the videos of a clip list."),
    dtype: str = typer.Option("float16", help="Stored vectors: float16 (half the disk and memory) or float32."),
    batch_size: int = typer.Option(32, "--batch-size", help="Windows per forward pass (across videos)."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16 (autocast)."),
    overwrite: bool = typer.Option(False, help="Re-embed finished videos (default: skip them and resume)."),
) -> None:
    """Index videos for text search: dual-encoder embeddings of every window, with their times. Resumable (re-run
    the same command after an interruption) and split across `accelerate launch -m egokit index ...` processes."""
    from egokit.embed.writer import META_NAME
    from egokit.errors import ConfigError
    from egokit.search.index import build_index

    if source.is_dir() and (source / META_NAME).is_file():
        model = None
        if ckpt is not None:
            from egokit.checkpoint import load_model

            model = load_model(ckpt, mode="dual")
        meta = build_index(source, index, dtype=dtype, model=model, source=str(source))
        err_console.print(f"{meta['count']:,} windows of {len(meta['videos'])} videos ({meta['dim']}-d, {dtype}) "
                          f"-> {index}")
        return
    if ckpt is None:
        raise ConfigError(f"--ckpt is needed to embed the videos of {source}")
    from accelerate import PartialState

    from egokit.checkpoint import load_model
    from egokit.embed import FeatureRecipe, collect_items, get_recipe
    from egokit.search.index import index_videos

    state = PartialState()
    items = collect_items(source, video_root)
    if frames is None and recipe is None:
        from egokit.checkpoint import resolve_source

        frames = _checkpoint_frames(resolve_source(ckpt))
    changes = {k: v for k, v in dict(mode="projected", frames_per_window=frames, windows_per_second=windows_per_second,
                                     stride=stride, window_frames=window_frames, short_side=short_side).items()
               if v is not None}
    if stride is not None and windows_per_second is None:
        changes["windows_per_second"] = None
    if stride is not None or window_frames is not None:
        changes["windowing"] = "sliding"
    if recipe is None:
        changes.setdefault("windows_per_second", 1.0)
    feature_recipe = get_recipe(recipe, **changes) if recipe else FeatureRecipe(**changes)
    model = load_model(ckpt, num_frames=feature_recipe.frames_per_window, mode="dual").to(state.device).eval()
    meta = index_videos(model, items, feature_recipe, index, dtype=dtype, batch_size=batch_size, precision=precision,
                        overwrite=overwrite, state=state, console=err_console, source=str(source),
                        checkpoint={"path": str(Path(model.source_path).resolve())})
    if meta is not None:
        err_console.print(f"{meta['count']:,} windows of {len(meta['videos'])} videos ({meta['dim']}-d, {dtype}) "
                          f"-> {index}")


def _checkpoint_frames(path: Path) -> int:
    """Frames per clip the checkpoint was trained with (egokit folders record it; official files: 4)."""
    from egokit.checkpoint import CONFIG_NAME

    if path.is_dir() and (path / CONFIG_NAME).is_file():
        try:
            return int(json.loads((path / CONFIG_NAME).read_text())["model"]["num_frames"])
        except (ValueError, KeyError, TypeError):
            pass
    return 4


def search_cmd(
    index: Path = typer.Argument(..., help="Index folder written by `egokit index`."),
    queries: List[str] = typer.Argument(..., help="What happened, e.g. \"I open the fridge\" (several allowed)."),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="Checkpoint for the text encoder (default: the one "
                                       "that built the index)."),
    top_k: int = typer.Option(10, "--top-k", "-k", help="Moments per query."),
    rerank: int = typer.Option(0, "--rerank", help="Re-rank the best N candidates (N may exceed --top-k) with the "
                               "fusion VTM head, then keep the top k."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results.json and contact_sheet.png here."),
    html: bool = typer.Option(False, "--html", help="Also write OUT/report.html (static; thumbnails, clip links)."),
    sheet: bool = typer.Option(True, "--sheet/--no-sheet", help="Write the contact sheet(s) (with --out)."),
    fmt: str = typer.Option("table", "--format", help="Standard output: table or json."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer folder or name (default: the checkpoint's)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda when available)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the scan (default: torch's; on a "
                                          "machine busy with other jobs 1 can be faster)."),
) -> None:
    """Top-k moments (video, start, end, score) for text queries: exact search over every window of the index."""
    import torch

    from egokit.checkpoint import load_model
    from egokit.errors import ConfigError
    from egokit.search import SearchIndex, search_texts, write_search_results

    if fmt not in ("table", "json"):
        raise ConfigError(f"--format must be table or json, got {fmt!r}")
    if html and out is None:
        raise ConfigError("--html needs --out DIR (the report is written to DIR/report.html)")
    if rerank < 0 or top_k < 1:
        raise ConfigError("--top-k must be >= 1 and --rerank >= 0")
    idx = SearchIndex(index)
    recorded = idx.meta.get("checkpoint") or {}
    source = ckpt or recorded.get("path") or recorded.get("source")
    if not source:
        raise ConfigError(f"{index}/index.json records no checkpoint: pass --ckpt")
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if rerank:
        model = load_model(source, num_frames=idx.recipe().frames_per_window)
    else:
        model = load_model(source, mode="dual")
    model = model.to(target).eval()
    want, have = recorded.get("sha256"), getattr(model.load_report, "sha256", None)
    if want and have and want != have:
        raise ConfigError(f"{source} (sha256 {have[:12]}...) is not the checkpoint that built {index} "
                          f"({want[:12]}...): text and video embeddings would not be comparable")
    tok = _tokenizer_for(model, tokenizer)
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    results = search_texts(idx, model, tok, queries, k=top_k, rerank=rerank)
    if fmt == "json":
        print(json.dumps({"queries": [{"query": q, "hits": [h.to_dict() for h in hits]} for q, hits in results]},
                         indent=2))
    else:
        from rich.table import Table

        for query, hits in results:
            table = Table(title=f"“{query}”  ({len(idx):,} windows)", title_justify="left")
            for col in ("#", "video", "start", "end", "score", *(["VTM"] if rerank else [])):
                table.add_column(col, justify="right" if col not in ("video",) else "left")
            for h in hits:
                table.add_row(str(h.rank), h.video, f"{h.start:.2f}", f"{h.end:.2f}", f"{h.score:.4f}",
                              *([f"{h.vtm:.4f}" if h.vtm is not None else ""] if rerank else []))
            console.print(table)
    if out is not None:
        paths = write_search_results(idx, results, out, sheet=sheet, html=html,
                                     extra={"checkpoint": str(source), "rerank": rerank})
        for name, path in paths.items():
            err_console.print(f"{name}: {path}")
