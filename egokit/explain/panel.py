"""Drawing an :class:`~egokit.explain.api.Explanation`: a PNG panel and an mp4, with Pillow and numpy only.

Panel, top to bottom: the caption and the VTM match probability; the sampled frames (with their times); one row
per fused layer (its gate value in the label) and the mean over layers, each a heat-map of the share of patch
attention on the caption's words over the frames (video<-text); the caption words' own attention over the patches
(text<-video, mean of the fused layers); optionally the dual tower's CLS rollout; a colour bar; the caption's
tokens shaded by the attention they receive. Each row's colours run from its own minimum to its maximum
(printed in the row's label): the maps of one layer differ by a few hundredths across patches, which a scale shared
with other layers would hide; the raw values are in the JSON. The mp4 uses the mean map's range.
"""

from __future__ import annotations

import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np

from egokit.io import atomic_path

__all__ = ["colormap", "overlay", "render_panel", "write_explanation", "write_explanation_mp4"]

# inferno, sampled at 0, 1/4, 1/2, 3/4, 1
_ANCHORS = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], dtype=np.float64)
BACKGROUND = (20, 20, 24)
TEXT = (240, 240, 240)
DIM = (170, 170, 180)
LABEL_W = 118
GAP = 4


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> uint8 RGB (shape + (3,)), an inferno-like ramp."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.minimum(v.astype(int), len(_ANCHORS) - 2)
    frac = (v - lo)[..., None]
    return (_ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac).round().astype(np.uint8)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _resize_map(grid: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(grid.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))


def overlay(frame: np.ndarray, heat: np.ndarray, size: int, lo: float, hi: float, alpha: float = 0.55) -> np.ndarray:
    """``frame`` (S, S, 3) resized to ``size`` and blended with ``heat`` (gh, gw) colour-mapped from ``lo`` (dark)
    to ``hi`` (bright)."""
    from PIL import Image

    base = np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR), dtype=np.float64)
    colour = colormap((_resize_map(heat, size) - lo) / max(hi - lo, 1e-12)).astype(np.float64)
    return (base * (1 - alpha) + colour * alpha).round().astype(np.uint8)


def _row(ex, label: str, maps: np.ndarray, cell: int) -> tuple[str, list[np.ndarray]]:
    """One panel row: ``maps`` (F, gh, gw) over the frames, stretched from the row's minimum to its maximum (the
    range is printed in the label, with enough decimals to tell them apart), so the frames of a row compare and the
    spatial contrast shows."""
    lo, hi = float(maps.min()), float(maps.max())
    digits = int(min(5, max(2, np.ceil(-np.log10(max(hi - lo, 1e-5))) + 1)))
    return f"{label}\n{lo:.{digits}f} - {hi:.{digits}f}", [overlay(ex.frames[k], maps[k], cell, lo, hi)
                                                          for k in range(len(maps))]


def render_panel(ex, cell: int = 128):
    """The panel as a ``PIL.Image`` (RGB)."""
    from PIL import Image, ImageDraw

    f = ex.grid[0]
    maps = ex.heatmaps()
    frames = [np.asarray(Image.fromarray(fr).resize((cell, cell), Image.BILINEAR)) for fr in ex.frames]
    rows: list[tuple[str, list[np.ndarray]]] = [("frames", frames)]
    for i, layer in enumerate(ex.layers):
        rows.append(_row(ex, f"layer {layer}\ngate {ex.gates[i]:+.3f}", maps[i], cell))
    rows.append(_row(ex, "mean of\nfused layers", maps.mean(0), cell))
    rows.append(_row(ex, "words -> video\n(text<-video)", ex.text_heatmaps().mean(0), cell))
    if ex.rollout is not None:
        rows.append(_row(ex, "rollout of the\ndual tower", ex.rollout, cell))
    font, small = _font(15), _font(12)
    width = LABEL_W + f * (cell + GAP) + 70
    caption = textwrap.wrap(f"“{ex.text}”", width=max(20, width // 9))
    header_h = 10 + 20 * len(caption) + 22
    grid_h = len(rows) * (cell + GAP) + 16
    tokens_h = 64
    image = Image.new("RGB", (width, header_h + grid_h + tokens_h), BACKGROUND)
    draw = ImageDraw.Draw(image)
    y = 8
    for line in caption:
        draw.text((10, y), line, fill=TEXT, font=font)
        y += 20
    score = f"VTM match probability {ex.vtm:.3f}" if ex.vtm is not None else "no VTM head"
    where = f"{Path(ex.video).name} [{ex.start:.2f}, {ex.end:.2f}) s" if ex.video else ""
    draw.text((10, y), f"{score}   ·   {where}" if where else score, fill=DIM, font=small)
    y = header_h
    for r, (label, cells) in enumerate(rows):
        top = y + r * (cell + GAP)
        lines = label.split("\n")
        for k, line in enumerate(lines):
            draw.text((8, top + cell // 2 - 8 * len(lines) + 16 * k), line, fill=TEXT if k == 0 else DIM, font=small)
        for k, tile in enumerate(cells):
            image.paste(Image.fromarray(tile), (LABEL_W + k * (cell + GAP), top))
        if r == 0 and ex.frame_times:
            for k, t in enumerate(ex.frame_times):
                x0 = LABEL_W + k * (cell + GAP)
                draw.rectangle((x0, top + cell - 16, x0 + 52, top + cell), fill=BACKGROUND)
                draw.text((x0 + 3, top + cell - 15), f"{t:.2f} s", fill=TEXT, font=small)
    # colour bar beside the map rows: each row runs from its own minimum to its maximum
    bar_top = header_h + cell + GAP
    bar_h = (len(rows) - 1) * (cell + GAP) - GAP
    bar_x = LABEL_W + f * (cell + GAP) + 6
    ramp = colormap(np.linspace(1, 0, bar_h))[:, None, :].repeat(14, axis=1)
    image.paste(Image.fromarray(ramp), (bar_x, bar_top))
    draw.text((bar_x + 17, bar_top - 2), "row", fill=TEXT, font=small)
    draw.text((bar_x + 17, bar_top + 12), "max", fill=TEXT, font=small)
    draw.text((bar_x + 17, bar_top + bar_h - 26), "row", fill=TEXT, font=small)
    draw.text((bar_x + 17, bar_top + bar_h - 12), "min", fill=TEXT, font=small)
    # caption tokens shaded by the attention they receive (mean over layers and patches)
    weights = ex.token_attention().mean(0)
    top = header_h + grid_h
    draw.text((8, top + 2), "attention to", fill=DIM, font=small)
    draw.text((8, top + 16), "each token", fill=DIM, font=small)
    x, wmax = LABEL_W, float(max(weights.max(), 1e-12))
    for token, w in zip(ex.tokens, weights):
        text_w = max(int(draw.textlength(token, font=small)), int(draw.textlength(f"{w:.2f}", font=small))) + 10
        if x + text_w > width - 4:
            break
        shade = tuple(int(c) for c in colormap(np.array(w / wmax)))
        draw.rectangle((x, top, x + text_w, top + 22), fill=shade)
        draw.text((x + 5, top + 4), token, fill=(0, 0, 0) if w / wmax > 0.6 else TEXT, font=small)
        draw.text((x + 3, top + 26), f"{w:.2f}", fill=DIM, font=small)
        x += text_w + 3
    return image


def write_explanation(ex, out_dir: str | Path, *, mp4: bool = False, cell: int = 128,
                      raw: bool = True) -> dict[str, Path]:
    """Write ``explain.png`` (the panel), ``explain.json`` (maps, tokens, score) and, with ``raw``,
    ``attention.npz`` (per-head probabilities of both directions); with ``mp4`` also ``explain.mp4``."""
    from egokit.io import write_json_atomic
    from egokit.summarize.sheet import save_png

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"png": save_png(render_panel(ex, cell), out_dir / "explain.png"),
             "json": write_json_atomic(out_dir / "explain.json", ex.to_dict(), indent=None)}
    if raw:
        with atomic_path(out_dir / "attention.npz", suffix=".npz") as tmp:
            np.savez_compressed(tmp, video_to_text=ex.video_to_text, text_to_video=ex.text_to_video,
                                token_ids=np.asarray(ex.token_ids), layers=np.asarray(ex.layers))
        paths["npz"] = out_dir / "attention.npz"
    if mp4:
        paths["mp4"] = write_explanation_mp4(ex, out_dir / "explain.mp4")
    return paths


def write_explanation_mp4(ex, path: str | Path, *, size: int = 256, max_seconds: float = 60.0) -> Path:
    """The clip at its own frame rate (centre-cropped as the model saw it), each frame blended with the mean
    heat-map of the sampled frame nearest in time, the caption and score on top. Needs ``ex.video``."""
    import av
    from PIL import Image, ImageDraw

    from egokit.data.sampling import frame_range, slot_times
    from egokit.data.transforms import EvalTransform
    from egokit.data.video import probe_video, read_frames_at
    from egokit.errors import ConfigError

    if ex.video is None:
        raise ConfigError("an mp4 needs the explanation of a video file (explain_clip)")
    info = probe_video(ex.video)
    first, last = frame_range(ex.start, min(ex.end, ex.start + max_seconds), info.fps)
    times = slot_times(range(first, min(last, info.num_frames - 1) + 1), info.fps)
    frames = EvalTransform(ex.frames.shape[1])(read_frames_at(ex.video, times)).permute(0, 2, 3, 1).numpy()
    mean = ex.mean_heatmap()
    lo, hi = float(mean.min()), float(mean.max())
    sampled = np.asarray(ex.frame_times)
    font = _font(13)
    score = f"VTM {ex.vtm:.3f}" if ex.vtm is not None else ""
    path = Path(path)
    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), mode="w", format="mp4") as out:
        rate = Fraction(info.fps).limit_denominator(1001)
        stream = out.add_stream("libx264", rate=rate, options={"crf": "20", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = size, size + 24, "yuv420p"
        stream.time_base = 1 / rate
        for n, (t, frame) in enumerate(zip(times, frames)):
            k = int(np.abs(sampled - t).argmin())
            canvas = Image.new("RGB", (size, size + 24), BACKGROUND)
            canvas.paste(Image.fromarray(overlay(frame, mean[k], size, lo, hi)), (0, 24))
            draw = ImageDraw.Draw(canvas)
            draw.text((4, 5), f"{t:.2f}s {score}  {ex.text}"[:60], fill=TEXT, font=font)
            video_frame = av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24").reformat(format="yuv420p")
            video_frame.pts, video_frame.time_base = n, 1 / rate
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode(None))
    return path
