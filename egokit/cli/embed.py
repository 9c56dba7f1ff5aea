"""``egokit embed INPUT OUT``: sliding-window video features (and text features) with a recorded recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from egokit.cli.common import console, err_console


def embed(
    source: Path = typer.Argument(..., help="A video, a folder of videos, a clip list (.json/.jsonl/.csv with "
                                  "video,start,end,clip_uid) or an official Ego4D NLQ/MQ JSON (needs --video-root)."),
    out: Path = typer.Argument(..., help="Output folder: <clip_uid>.pt per video plus embed_meta.json."),
    ckpt: str = typer.Option(..., "--ckpt", help="Official .pth, egokit folder or hub:org/name[@rev]."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Named feature recipe, e.g. egovlpv2-mq, "
                                         "egovlpv2-nlq (see --list-recipes); other options override it."),
    mode: Optional[str] = typer.Option(None, help="projected (dual, encode_video), backbone (dual, unprojected "
                                       "768-d CLS) or fusion (query-conditioned fused CLS)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per window (the model is loaded with it)."),
    windowing: Optional[str] = typer.Option(None, help="ego4d (official arithmetic) or sliding."),
    windows_per_second: Optional[float] = typer.Option(None, "--windows-per-second", help="Window rate."),
    stride: Optional[float] = typer.Option(None, help="Sliding: seconds between window starts."),
    window_frames: Optional[int] = typer.Option(None, "--window-frames", help="Sliding: source frames per window."),
    short_side: Optional[int] = typer.Option(None, "--short-side", help="Resize frames while decoding."),
    query: Optional[str] = typer.Option(None, help="Fusion: one query for every video (else the clips' queries)."),
    texts: Optional[Path] = typer.Option(None, help="Also embed these sentences (one per line) into OUT/texts.pt."),
    text_tokens: bool = typer.Option(False, "--text-tokens", help="Texts: token states (N, L, width) + mask "
                                     "instead of projected embeddings (N, P)."),
    video_root: Optional[Path] = typer.Option(None, "--video-root", help="Folder of the videos of a clip list."),
    fmt: str = typer.Option("pt", "--format", help="pt (torch.save of a plain tensor), safetensors or npy."),
    batch_size: int = typer.Option(32, "--batch-size", help="Windows per forward pass (across videos)."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16 (autocast)."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer folder or name (default: the checkpoint's)."),
    overwrite: bool = typer.Option(False, help="Recompute finished videos (default: skip them and resume)."),
    list_recipes: bool = typer.Option(False, "--list-recipes", help="Print the named recipes and exit."),
) -> None:
    """Video features over sliding windows; resumable, batched across videos, split across `accelerate launch`
    processes. Official EgoMQ features: `egokit embed moments_val.json feats/ --video-root ego4d_256/ --ckpt
    EgoVLPv2.pth --recipe egovlpv2-mq`."""
    from egokit.embed import FeatureRecipe, collect_items, get_recipe
    from egokit.embed import list_recipes as named_recipes

    if list_recipes:
        for name in named_recipes():
            console.print(f"{name}: {get_recipe(name)}")
        raise typer.Exit()
    changes = {k: v for k, v in dict(mode=mode, frames_per_window=frames, windowing=windowing,
                                     windows_per_second=windows_per_second, stride=stride,
                                     window_frames=window_frames, short_side=short_side).items() if v is not None}
    if stride is not None and windows_per_second is None:
        changes["windows_per_second"] = None
    if (stride is not None or window_frames is not None) and windowing is None:
        changes["windowing"] = "sliding"
    feature_recipe = get_recipe(recipe, **changes) if recipe else FeatureRecipe(**changes)

    from accelerate import PartialState

    from egokit.checkpoint import load_model
    from egokit.embed.extract import embed_texts
    from egokit.embed.run import embed_to_folder
    from egokit.embed.writer import atomic_save
    from egokit.tokenizer import load_tokenizer

    from egokit.io import check_output_dir

    state = PartialState()
    items = collect_items(source, video_root)
    sentences = _read_sentences(texts) if texts is not None else None
    check_output_dir(out)
    model = load_model(ckpt, num_frames=feature_recipe.frames_per_window).to(state.device).eval()
    tok = None
    if feature_recipe.mode == "fusion" or texts is not None:
        folder = getattr(model, "source_path", None)
        bundled = Path(folder) / "tokenizer" if folder is not None else None
        tok = load_tokenizer(tokenizer or (bundled if bundled is not None and bundled.is_dir()
                                           else model.config.preprocess.tokenizer))
    stats = embed_to_folder(model, items, feature_recipe, out, tokenizer=tok, query=query, fmt=fmt,
                            batch_size=batch_size, precision=precision, overwrite=overwrite, state=state,
                            console=err_console)
    if texts is not None and state.is_main_process:
        import torch

        feats, mask = embed_texts(model, tok, sentences, mode="backbone" if text_tokens else "projected")
        out.mkdir(parents=True, exist_ok=True)
        atomic_save(out / "texts.pt", lambda tmp: torch.save(feats, tmp))
        if mask is not None:
            atomic_save(out / "texts_mask.pt", lambda tmp: torch.save(mask, tmp))
        err_console.print(f"{len(sentences)} sentences -> {out / 'texts.pt'} {tuple(feats.shape)}")
    err_console.print(f"rank {state.process_index}: {len(stats.computed)} videos embedded, {len(stats.skipped)} "
                      f"already done, {stats.windows} windows in {stats.seconds:.1f} s -> {out}")


def _read_sentences(path: Path) -> list[str]:
    """The non-empty lines of the ``--texts`` file (UTF-8)."""
    from egokit.errors import DataError

    if not path.is_file():
        raise DataError(f"--texts file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save the sentences as UTF-8") from None
    return [line.strip() for line in text.splitlines() if line.strip()]
