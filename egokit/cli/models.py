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
    num_heads: Optional[int] = typer.Option(None, help="Attention heads (official files do not record it; default width/64)."),
    num_frames: Optional[int] = typer.Option(None, help="Store the model for this many frames (temporal embedding interpolated)."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer to bundle: a local folder or a hub name such as roberta-base."),
    max_text_length: Optional[int] = typer.Option(None, help="Record this text length in the preprocessing config."),
) -> None:
    """Convert a checkpoint into egokit's folder format."""
    from egokit.checkpoint import load_model, save_pretrained

    overrides = {k: v for k, v in dict(num_heads=num_heads, num_frames=num_frames,
                                        max_text_length=max_text_length).items() if v is not None}
    model = load_model(src, **overrides)
    tok = None
    if tokenizer:
        from egokit.tokenizer import load_tokenizer

        tok = load_tokenizer(tokenizer)
    save_pretrained(model, dst, tokenizer=tok)
    report = model.load_report
    table = Table(title=f"converted {src} -> {dst}", show_header=False)
    table.add_row("sha256", report.sha256 or "")
    table.add_row("architecture", f"width {model.config.width}, depth {model.config.depth}, fused "
                  f"{model.config.fused_layers}, {model.config.projection} {model.config.projection_dim}-d, "
                  f"{model.config.num_frames} frames")
    table.add_row("missing keys", ", ".join(report.missing) or "none")
    table.add_row("unexpected keys", ", ".join(report.unexpected) or "none")
    table.add_row("temporal embedding", report.inflated or "unchanged")
    table.add_row("ignored pickled metadata", ", ".join(report.placeholders) or "none")
    console.print(table)
