"""Data-wait share of a short ``egokit pretrain`` run: how much of the wall time the model waits for batches.

    python bench/data_wait.py [--steps 20] [--videos 8] [--batch-size 16] [--workers 2] [--data DIR] [--json out.json]

Runs the real pretraining engine (``recipes/demo.yaml``: the tiny model at 64 px, scene-aware negatives, PyAV
decoding in DataLoader workers) for ``--steps`` steps on a small ``egokit synth`` dataset with the demo's video
format (128 px, 15 fps, 20 s chunks), generated into a temporary folder unless ``--data`` names one (e.g. the
demo's ``runs/demo/data``). The figures are the engine's own (``results.json`` summary, the same numbers as the
``wait`` column of the progress bar): data-wait share = time spent waiting for the next batch / wall time of the
loop, which includes the workers' start-up on the first batch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import egokit  # noqa: F401
except ModuleNotFoundError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))


def make_data(folder: Path, videos: int, quick: bool) -> tuple[float, float]:
    from egokit.synth import SynthConfig, generate

    config = (SynthConfig(videos=videos, val_videos=0, duration=12.0, size=64, fps=10, chunk_seconds=4.0,
                          questions=0, vocab_size=300, seed=0) if quick else
              SynthConfig(videos=videos, val_videos=0, duration=30.0, questions=0, seed=0))
    start = time.perf_counter()
    generate(folder, config, workers=2)
    return config.chunk_seconds, time.perf_counter() - start


def run(data: Path, out: Path, steps: int, batch_size: int, workers: int, chunk_seconds: float,
        precision: str) -> dict:
    from rich.console import Console

    from egokit.pretrain import pretrain

    overrides = [f"data.root={data}", f"output_dir={out}", f"train.max_steps={steps}", f"train.log_every={steps}",
                 f"train.checkpoint_every={10 * steps}", f"data.batch_size={batch_size}",
                 f"data.num_workers={workers}", f"data.chunk_seconds={chunk_seconds:g}",
                 f"train.precision={precision}", "eval.egomcq=null"]
    started = time.perf_counter()
    pretrain(str(REPO / "recipes" / "demo.yaml"), overrides, console=Console(stderr=True, quiet=True))
    summary = json.loads((out / "results.json").read_text())["summary"]
    return {"steps": summary["steps"], "data_wait_share": summary["data_wait_share"],
            "clips_per_s": summary["clips_per_s"], "loop_seconds": summary["seconds"],
            "wall_seconds": time.perf_counter() - started, "batch_size": batch_size, "workers": workers,
            "precision": precision}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--videos", type=int, default=8, help="training videos of the generated dataset")
    parser.add_argument("--batch-size", type=int, default=16, help="positives per step (doubled by negatives)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--data", type=Path, help="an existing `egokit synth` dataset instead of a generated one")
    parser.add_argument("--chunk-seconds", type=float, default=None, help="chunk length of --data (default 20)")
    parser.add_argument("--quick", action="store_true", help="a smaller, lower-resolution dataset")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="egokit-bench-data-wait-") as tmp:
        data, chunk, generated_s = args.data, args.chunk_seconds or 20.0, None
        if data is None:
            data = Path(tmp) / "data"
            chunk, generated_s = make_data(data, args.videos, args.quick)
            print(f"generated {args.videos} synthetic videos in {generated_s:.1f} s", flush=True)
        row = run(data, Path(tmp) / "run", args.steps, args.batch_size, args.workers, chunk, args.precision)
    row["dataset"] = str(args.data) if args.data else f"egokit synth, {args.videos} videos{' (quick)' if args.quick else ''}"
    print(f"{row['steps']} steps of the demo recipe, batch {row['batch_size']} (+ negatives), {row['workers']} "
          f"workers: data wait {100 * row['data_wait_share']:.1f} % of the loop time, {row['clips_per_s']:.1f} clips/s "
          f"(run {row['loop_seconds']:.1f} s)")
    if args.json:
        row["headline"] = [{"what": f"data wait, {row['steps']}-step demo run ({row['workers']} workers)",
                            "value": f"{100 * row['data_wait_share']:.1f} %",
                            "note": f"{row['clips_per_s']:.1f} clips/s, tiny model, {row['dataset']}"}]
        Path(args.json).write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
