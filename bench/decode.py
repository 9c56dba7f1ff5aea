"""Random-clip decode speed: egokit ``read_clip`` against an official-EgoVLPv2-style OpenCV reader.

The official ``read_frames_cv2_egoclip`` opens the file with OpenCV and, for every sampled frame, seeks with
``cap.set(CAP_PROP_POS_FRAMES, index - 1)`` and reads one frame, so each frame pays a seek and a decode from the
previous key frame. egokit seeks once per clip and decodes forward. Both readers get the same clips and frame
indices, are timed interleaved clip by clip (the machine is shared and noisy), and return uint8 RGB frames.

The test video mimics an Ego4D chunk after the official preprocessing: 600 s, 456x256, 30 fps H.264 with a key
frame every 250 frames. It is generated once (about a minute) and cached.

    python bench/decode.py [--seconds 600] [--clips 40] [--video-dir DIR] [--json PATH] [--thread-type AUTO]

Needs the ``bench`` extra (``opencv-python-headless``) for the official-style reader.
"""

from __future__ import annotations

import argparse
import json
import platform
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

from egokit.data.sampling import frame_range, sample_frame_indices  # noqa: E402
from egokit.data.video import probe_video, read_clip  # noqa: E402

WIDTH, HEIGHT, FPS, GOP = 456, 256, 30, 250


def make_bench_video(path: Path, seconds: float, preset: str = "veryfast", seed: int = 0) -> Path:
    """Write the synthetic chunk: smooth gradients drifting over time plus a scrolling low-detail texture, a key
    frame every ``GOP`` frames (also used by ``bench/prepare.py`` as its raw videos)."""
    rng = np.random.default_rng(seed)
    # Low-frequency texture (upsampled noise), twice the frame size so it can scroll without wrapping artefacts.
    coarse = rng.integers(0, 256, size=(HEIGHT // 8 + 1, WIDTH // 4 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[: 2 * HEIGHT, : 2 * WIDTH].astype(np.int16)
    ys = np.arange(HEIGHT, dtype=np.float32)[:, None]
    xs = np.arange(WIDTH, dtype=np.float32)[None, :]
    tmp = path.with_name(f".{path.stem}.partial.mp4")  # hidden: never taken for a finished video
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": preset, "crf": "23", "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"}
        for i in range(int(round(seconds * FPS))):
            t = i / FPS
            dy, dx = int(40 * t) % HEIGHT, int(70 * t) % WIDTH
            tex = texture[dy : dy + HEIGHT, dx : dx + WIDTH]
            grad = 60 * np.sin(xs / 37.0 + 1.3 * t) + 60 * np.cos(ys / 23.0 - 0.7 * t)
            img = np.clip(tex // 2 + 64 + grad[:, :, None], 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    tmp.replace(path)
    return path


def read_official_style(path: str, frame_indices: list[int]) -> torch.Tensor:
    """OpenCV reading as ``read_frames_cv2_egoclip`` does it: one seek to ``index - 1`` and one read per frame."""
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        vlen = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        for index in frame_indices:
            cap.set(cv2.CAP_PROP_POS_FRAMES, min(index, vlen) - 1)
            ok, frame = cap.read()
            if ok:
                frames.append(torch.from_numpy(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).permute(2, 0, 1))
        if len(frames) != len(frame_indices):
            raise RuntimeError(f"OpenCV read {len(frames)} of {len(frame_indices)} frames from {path}")
        return torch.stack(frames)
    finally:
        cap.release()


def run(video: Path, num_frames: int, clips: int, seed: int, thread_type: str | None) -> dict[str, float]:
    """Clips/s of each reader on the same random ~1 s clips ('rand' sampling, as in pre-training)."""
    info = probe_video(video)
    rng = np.random.default_rng(seed)
    totals = {"egokit": 0.0, "official_cv2": 0.0}
    if thread_type:
        totals[f"egokit_{thread_type}"] = 0.0
    for _ in range(clips):
        length = rng.uniform(0.5, 1.5)
        start = rng.uniform(0, info.duration - length - 0.1)
        seed_clip = int(rng.integers(2**31))
        t0 = time.perf_counter()
        clip_rng = np.random.default_rng(seed_clip)
        clip = read_clip(video, start, start + length, num_frames, sampling="rand", rng=clip_rng)
        totals["egokit"] += time.perf_counter() - t0
        # Same frames for the official-style reader (it returns index - 1, so ask for index + 1).
        indices = sample_frame_indices(*frame_range(start, start + length, info.fps), num_frames, "rand",
                                       np.random.default_rng(seed_clip))
        t0 = time.perf_counter()
        reference = read_official_style(str(video), [i + 1 for i in indices])
        totals["official_cv2"] += time.perf_counter() - t0
        if clip.shape != reference.shape:
            raise RuntimeError(f"shape mismatch {tuple(clip.shape)} vs {tuple(reference.shape)}")
        if thread_type:
            t0 = time.perf_counter()
            read_clip(video, start, start + length, num_frames, sampling="rand",
                      rng=np.random.default_rng(seed_clip), thread_type=thread_type)
            totals[f"egokit_{thread_type}"] += time.perf_counter() - t0
    return {name: clips / seconds for name, seconds in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the synthetic chunk")
    parser.add_argument("--clips", type=int, default=40, help="random clips per frame count")
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 16], help="frames per clip")
    parser.add_argument("--video-dir", type=Path, default=Path(tempfile.gettempdir()) / "egokit-bench",
                        help="where the synthetic video is cached")
    parser.add_argument("--preset", default="veryfast", help="x264 preset used to generate the video")
    parser.add_argument("--thread-type", choices=["AUTO", "FRAME", "SLICE"], help="also time egokit with threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    args.video_dir.mkdir(parents=True, exist_ok=True)
    video = args.video_dir / f"chunk_{args.seconds:g}s_{WIDTH}x{HEIGHT}_{FPS}fps_gop{GOP}_{args.preset}.mp4"
    if not video.exists():
        t0 = time.perf_counter()
        make_bench_video(video, args.seconds, args.preset)
        print(f"generated {video} in {time.perf_counter() - t0:.1f} s")
    info = probe_video(video)
    print(f"video: {video} ({info.duration:.0f} s, {info.width}x{info.height}, {info.fps:g} fps, "
          f"{video.stat().st_size / 1e6:.1f} MB), torch threads {torch.get_num_threads()}, av {av.__version__}")

    results = {}
    for num_frames in args.frames:
        results[num_frames] = run(video, num_frames, args.clips, args.seed, args.thread_type)

    names = list(next(iter(results.values())))
    header = f"{'frames':>6} " + " ".join(f"{n + ' clips/s':>22}" for n in names) + f" {'egokit / official':>18}"
    print(header)
    for num_frames, row in results.items():
        ratio = row["egokit"] / row["official_cv2"]
        print(f"{num_frames:>6} " + " ".join(f"{row[n]:>22.2f}" for n in names) + f" {ratio:>17.1f}x")
    if args.json:
        payload = {
            "video": {"path": str(video), "seconds": info.duration, "width": info.width, "height": info.height,
                      "fps": info.fps, "gop": GOP, "preset": args.preset, "bytes": video.stat().st_size},
            "clips_per_setting": args.clips,
            "machine": platform.platform(),
            "results": {str(k): {**v, "ratio": v["egokit"] / v["official_cv2"]} for k, v in results.items()},
            "headline": [{"what": f"decode, random {k}-frame clips", "value": f"{v['egokit']:.2f} clips/s",
                          "note": f"official-style reader {v['official_cv2']:.2f} clips/s -> "
                                  f"{v['egokit'] / v['official_cv2']:.1f}x"} for k, v in results.items()],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
