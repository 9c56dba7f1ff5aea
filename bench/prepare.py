"""``egokit prepare`` throughput, and random-clip decode speed before and after it.

Generates a few long synthetic raw videos like the official Ego4D data after downscaling (456x256, 30 fps H.264,
one key frame every 250 frames; cached), prepares them with :func:`egokit.prepare.prepare` (the code behind
``egokit prepare``: 1-s key-frame interval, chunks), then times egokit's ``read_clip`` on the same random clips
(4 frames from ~1 s, 'rand' sampling as in pre-training) from (a) the original files and (b) the prepared chunks
(``ChunkedVideo``), interleaved clip by clip (the machine is shared and noisy). Both readers return frames of the
same size; their mean absolute pixel difference is reported as a check that they show the same frames.

    python bench/prepare.py [--videos 3] [--seconds 120] [--clips 100] [--frames 4] [--chunk-seconds 600]
                            [--workers 1] [--video-dir DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

try:
    import egokit  # noqa: F401
except ModuleNotFoundError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode import FPS, GOP, HEIGHT, WIDTH, make_bench_video  # noqa: E402
from egokit.data.video import probe_video, read_clip  # noqa: E402
from egokit.prepare import PrepareSettings, load_manifest, prepare  # noqa: E402


def make_raw_video(path: Path, seconds: float, seed: int, preset: str = "veryfast") -> Path:
    """A synthetic raw video (``bench/decode.py``'s chunk): key frame every 250 frames, as the official raw data."""
    return make_bench_video(path, seconds, preset=preset, seed=seed)


def time_clips(raw: dict[str, Path], prepared: dict, num_frames: int, clips: int, seed: int) -> dict[str, float]:
    """Clips/s from the raw files and from the prepared chunks on the same random clips, plus a pixel check."""
    rng = np.random.default_rng(seed)
    uids = sorted(raw)
    totals = {"raw": 0.0, "prepared": 0.0}
    diffs = []
    for _ in range(clips):
        uid = uids[int(rng.integers(len(uids)))]
        video = prepared[uid]
        length = rng.uniform(0.5, 1.5)
        start = rng.uniform(0, video.duration - length - 0.1)
        clip_seed = int(rng.integers(2**31))
        t0 = time.perf_counter()
        a = read_clip(raw[uid], start, start + length, num_frames, sampling="rand",
                      rng=np.random.default_rng(clip_seed))
        totals["raw"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        b = read_clip(video.chunked(), start, start + length, num_frames, sampling="rand",
                      rng=np.random.default_rng(clip_seed))
        totals["prepared"] += time.perf_counter() - t0
        if a.shape != b.shape:
            raise RuntimeError(f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)} for {uid} at {start:.3f} s")
        diffs.append(float((a.float() - b.float()).abs().mean()))
    return {"raw_clips_per_s": clips / totals["raw"], "prepared_clips_per_s": clips / totals["prepared"],
            "speedup": totals["raw"] / totals["prepared"], "mean_abs_pixel_diff": float(np.mean(diffs)),
            "max_clip_pixel_diff": float(np.max(diffs))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=3, help="number of raw videos")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of each raw video")
    parser.add_argument("--clips", type=int, default=100, help="random clips timed per reader")
    parser.add_argument("--frames", type=int, default=4, help="frames per clip")
    parser.add_argument("--chunk-seconds", type=float, default=600.0, help="egokit prepare --chunk-seconds")
    parser.add_argument("--workers", type=int, default=1, help="egokit prepare --workers")
    parser.add_argument("--video-dir", type=Path, default=Path(tempfile.gettempdir()) / "egokit-bench",
                        help="where the raw videos are cached (the prepared copy goes to a temporary folder)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset used to generate the raw videos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    raw_dir = args.video_dir / f"prepare_raw_{args.videos}x{args.seconds:g}s_{WIDTH}x{HEIGHT}_{FPS}fps_gop{GOP}"
    raw_dir.mkdir(parents=True, exist_ok=True)
    raw = {}
    for n in range(args.videos):
        path = raw_dir / f"video{n:02d}.mp4"
        if not path.exists():
            t0 = time.perf_counter()
            make_raw_video(path, args.seconds, seed=n, preset=args.preset)
            print(f"generated {path} in {time.perf_counter() - t0:.1f} s")
        raw[path.stem] = path
    info = probe_video(next(iter(raw.values())))
    print(f"raw: {args.videos} x {info.duration:.0f} s, {info.width}x{info.height}, {info.fps:g} fps, key frame "
          f"every {GOP} frames; torch threads {torch.get_num_threads()}, av {av.__version__}")

    out = Path(tempfile.mkdtemp(prefix="egokit-bench-prepare-"))
    try:
        settings = PrepareSettings(chunk_seconds=args.chunk_seconds)
        report = prepare(raw_dir, out, settings, layout="plain", workers=args.workers)
        if not report.ok:
            raise RuntimeError(f"prepare failed: {[(r.source, r.error) for r in report.by_status('failed')]}")
        prepared = load_manifest(out)
        prepare_fps = report.frames / report.seconds
        raw_bytes = sum(p.stat().st_size for p in raw.values())
        out_bytes = sum(p.stat().st_size for p in out.rglob("*.mp4"))
        print(f"prepare: {report.frames} frames in {report.seconds:.1f} s = {prepare_fps:.0f} frames/s "
              f"({args.workers} worker(s), codec {report.codec}); {raw_bytes / 1e6:.1f} MB -> {out_bytes / 1e6:.1f} MB")
        results = time_clips(raw, prepared, args.frames, args.clips, args.seed)
    finally:
        shutil.rmtree(out, ignore_errors=True)

    print(f"{'frames':>6} {'raw (gop 250) clips/s':>22} {'prepared clips/s':>17} {'prepared / raw':>15} "
          f"{'pixel diff':>11}")
    print(f"{args.frames:>6} {results['raw_clips_per_s']:>22.2f} {results['prepared_clips_per_s']:>17.2f} "
          f"{results['speedup']:>14.2f}x {results['mean_abs_pixel_diff']:>11.2f}")
    if args.json:
        payload = {
            "raw": {"videos": args.videos, "seconds": info.duration, "width": info.width, "height": info.height,
                    "fps": info.fps, "gop": GOP, "preset": args.preset, "bytes": raw_bytes},
            "prepare": {"frames": report.frames, "seconds": report.seconds, "frames_per_s": prepare_fps,
                        "workers": args.workers, "codec": report.codec, "chunk_seconds": args.chunk_seconds,
                        "bytes": out_bytes},
            "clips": args.clips,
            "frames_per_clip": args.frames,
            "machine": platform.platform(),
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
