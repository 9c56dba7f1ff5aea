"""``egokit explain VIDEO --text CAPTION --ckpt SRC``: where the fused layers look, as heat-maps over the frames."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from egokit.cli.common import console, err_console


def explain(
    video: Path = typer.Argument(..., help="Video file (anything PyAV/FFmpeg decodes)."),
    text: str = typer.Option(..., "--text", "-t", help="The caption to explain, e.g. 'I pick up the red cup'."),
    ckpt: str = typer.Option(..., "--ckpt", help="Official .pth, egokit folder or hub:org/name[@rev] (full model)."),
    start: Optional[float] = typer.Option(None, "--start", help="Clip start in seconds (default: 0)."),
    end: Optional[float] = typer.Option(None, "--end", help="Clip end in seconds (default: the end of the video)."),
    out: Path = typer.Option(Path("explain"), "--out", "-o", help="Output folder."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames sampled from the clip (default: the "
                                         "checkpoint's)."),
    rollout: bool = typer.Option(False, "--rollout", help="Add the attention rollout of the dual video tower."),
    mp4: bool = typer.Option(False, "--mp4", help="Also write explain.mp4 (the clip with the mean heat-map)."),
    cell: int = typer.Option(128, "--cell", help="Pixels per frame in the panel."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer folder or name (default: the checkpoint's)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cpu; one clip takes seconds)."),
) -> None:
    """Heat-maps of the fused layers' video<-text cross-attention over the sampled frames (per layer and mean),
    the VTM match probability and each caption token's share: explain.png, explain.json, attention.npz."""
    import torch

    from egokit.checkpoint import load_model
    from egokit.cli.search import _tokenizer_for
    from egokit.errors import ConfigError
    from egokit.explain import explain_clip, write_explanation

    if not video.is_file():
        raise ConfigError(f"video not found: {video}")
    if cell < 32:
        raise ConfigError(f"--cell must be >= 32 pixels, got {cell}")
    model = load_model(ckpt, **({"num_frames": frames} if frames else {})).to(torch.device(device or "cpu")).eval()
    tok = _tokenizer_for(model, tokenizer)
    ex = explain_clip(model, tok, video, text, start=start, end=end, rollout=rollout)
    paths = write_explanation(ex, out, mp4=mp4, cell=cell)
    score = f"VTM match probability {ex.vtm:.3f}" if ex.vtm is not None else "no VTM head"
    console.print(f"“{ex.text}” on {video.name} [{ex.start:.2f}, {ex.end:.2f}) s: {score} "
                  f"({len(ex.layers)} fused layers, {ex.seconds:.2f} s)")
    for kind, path in paths.items():
        err_console.print(f"{kind}: {path}")
