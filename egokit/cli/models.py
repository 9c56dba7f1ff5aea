"""``egokit models`` and ``egokit convert``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from egokit.cli.common import console


def models() -> None:
    """List the registered model configurations."""
    import torch

    from egokit.models import EgoVLPv2, describe_model, get_config, list_models

    table = Table(title="registered models")
    table.add_column("name", no_wrap=True)
    for col in ("params", "width/depth/fused", "frames x px", "projection", "description"):
        table.add_column(col)
    for name in list_models():
        cfg = get_config(name)
        with torch.device("meta"):
            n = sum(p.numel() for p in EgoVLPv2(cfg).parameters())
        table.add_row(name, f"{n / 1e6:.1f} M", f"{cfg.width}/{cfg.depth}/{cfg.fused_layers}",
                      f"{cfg.num_frames} x {cfg.image_size}", f"{cfg.projection} {cfg.projection_dim}",
                      describe_model(name).split(':')[0])
    console.print(table)


def convert(
    src: str = typer.Argument(..., help="Official EgoVLPv2 .pth (or an egokit folder / hub:org/name)."),
    dst: Path = typer.Argument(..., help="Output folder (config.json + model.safetensors + tokenizer)."),
    num_heads: Optional[int] = typer.Option(None, help="Attention heads (official files do not record them; needed "
                                            "unless the width is a standard ViT one: 192, 384, 768 or 1024)."),
    num_frames: Optional[int] = typer.Option(None, help="Store the model for this many frames (temporal embedding interpolated)."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer to bundle: a local folder or a hub name such as "
                                            "roberta-base (default: the source folder's, else the model's "
                                            "tokenizer from the local cache or the hub)."),
    max_text_length: Optional[int] = typer.Option(None, help="Record this text length in the preprocessing config."),
) -> None:
    """Convert a checkpoint into egokit's folder format (with its tokenizer: the folder works offline)."""
    from egokit.checkpoint import load_model, save_pretrained
    from egokit.io import check_output_dir

    check_output_dir(dst)
    overrides = {k: v for k, v in dict(num_heads=num_heads, num_frames=num_frames,
                                        max_text_length=max_text_length).items() if v is not None}
    model = load_model(src, **overrides)
    tok, tok_source = _tokenizer_to_bundle(model, tokenizer, dst)
    save_pretrained(model, dst, tokenizer=tok)
    report = model.load_report
    table = Table(title=f"converted {src} -> {dst}", show_header=False)
    table.add_row("sha256", report.sha256 or "")
    table.add_row("architecture", f"width {model.config.width}, depth {model.config.depth}, fused "
                  f"{model.config.fused_layers}, {model.config.projection} {model.config.projection_dim}-d, "
                  f"{model.config.num_frames} frames")
    heads_from = f" ({report.num_heads})" if report.num_heads else ""
    table.add_row("attention heads", f"{model.config.num_heads}{heads_from}")
    table.add_row("tokenizer", f"{len(tok)} tokens, bundled from {tok_source}")
    table.add_row("missing keys", ", ".join(report.missing) or "none")
    table.add_row("unexpected keys", ", ".join(report.unexpected) or "none")
    table.add_row("temporal embedding", report.inflated or "unchanged")
    table.add_row("ignored pickled metadata", ", ".join(report.placeholders) or "none")
    console.print(table)


def _tokenizer_to_bundle(model, tokenizer: str | None, dst: Path):
    """The tokenizer written into the converted folder, and where it came from. A folder without one would need
    the network the first time text is encoded, so converting without one is an error naming the option."""
    from egokit.errors import CheckpointError, EgokitError
    from egokit.tokenizer import load_tokenizer

    folder = getattr(model, "source_path", None)
    if tokenizer is not None:
        source = tokenizer
    elif folder is not None and (Path(folder) / "tokenizer").is_dir():
        source = str(Path(folder) / "tokenizer")
    else:
        source = model.config.preprocess.tokenizer
    if source == "bundled":
        raise CheckpointError(f"{folder}: config.json says its tokenizer is bundled but {folder}/tokenizer is "
                              "missing; pass --tokenizer FOLDER (the tokenizer the model was trained with)")
    try:
        tok = load_tokenizer(source)
    except EgokitError:
        if tokenizer is not None or folder is not None and source == str(Path(folder) / "tokenizer"):
            raise
        tok = None
    if tok is None:
        raise CheckpointError(
            f"{dst}: cannot bundle a tokenizer: the model's tokenizer {source!r} is neither in the local cache nor "
            "downloadable now, and a folder without one does not work offline; pass --tokenizer FOLDER (a "
            f"tokenizer saved with save_pretrained, with tokenizer.json) or, with network access, --tokenizer {source} "
            "(downloaded once, then bundled)"
        )
    if len(tok) > model.config.vocab_size:
        raise CheckpointError(
            f"tokenizer {source} has {len(tok)} tokens but the checkpoint's vocabulary has {model.config.vocab_size}: "
            "it is not this model's tokenizer; pass the right one with --tokenizer FOLDER"
        )
    return tok, source
