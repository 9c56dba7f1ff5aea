"""Throughput of ``egokit embed``: videos/s and windows/s (decode + model) on a generated video.

    python bench/embed.py [--seconds 20] [--size 256] [--base-seconds 2] [--json out.json]

Rows: the tiny model (egovlpv2-tiny, 16-frame windows at 1.87 windows/s, the egovlpv2-mq windowing) over the
whole video, and the base model (fp32 and bf16 autocast) over its first ``--base-seconds`` (the base model is
slow on a CPU; windows/s is what extrapolates). Random weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from egokit.embed import FeatureRecipe, embed_video
from egokit.models import create_model
from egokit.synth.writer import encode_chunks


def make_video(folder: Path, seconds: float, size: int, fps: int = 30) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size * 16 // 9 // 2 * 2, 3), dtype=np.uint8)
    encode_chunks(lambda i: np.roll(base, 4 * i, axis=1), int(seconds * fps), folder, fps, int(seconds * fps))
    return folder / "0.mp4"


def run(name: str, precision: str, video: Path, seconds: float, frames: int) -> dict:
    torch.manual_seed(0)
    model = create_model(name, num_frames=frames).eval()
    recipe = FeatureRecipe(mode="projected", frames_per_window=frames, windows_per_second=1.87)
    embed_video(model, video, recipe, end=min(seconds, 1.1), precision=precision)  # warm-up
    start = time.perf_counter()
    out = embed_video(model, video, recipe, end=seconds, precision=precision, batch_size=8)
    elapsed = time.perf_counter() - start
    return {"model": name, "precision": precision, "seconds_of_video": seconds, "windows": len(out.features),
            "elapsed_s": round(elapsed, 2), "windows_per_s": round(len(out.features) / elapsed, 2),
            "videos_per_s": round(1 / elapsed, 4), "realtime_x": round(seconds / elapsed, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--base-seconds", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp), args.seconds, args.size)
        rows = [run("egovlpv2-tiny", "fp32", video, args.seconds, args.frames)]
        for precision in ("fp32", "bf16"):
            rows.append(run("egovlpv2-base", precision, video, args.base_seconds, args.frames))
    if args.json:
        with open(args.json, "w") as handle:
            headline = [{"what": f"embed, {r['model']} {r['precision']}", "value": f"{r['windows_per_s']:.2f} windows/s",
                         "note": f"{args.frames}-frame windows, {r['realtime_x']:.2f}x real time"} for r in rows]
            json.dump({"device": "cpu", "threads": torch.get_num_threads(), "rows": rows, "headline": headline},
                      handle, indent=2)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"egokit embed, {args.frames}-frame windows at 1.87/s, {args.size}-px video, CPU "
                        f"({torch.get_num_threads()} threads)")
    for col in ("model", "precision", "video s", "windows", "windows/s", "videos/s", "x realtime"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["model"], r["precision"], f"{r['seconds_of_video']:g}", str(r["windows"]),
                      f"{r['windows_per_s']:.2f}", f"{r['videos_per_s']:.4f}", f"{r['realtime_x']:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
