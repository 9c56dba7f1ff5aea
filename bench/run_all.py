"""Run every benchmark in turn and collect their JSON in one file (``make bench``).

    python bench/run_all.py [--out runs/bench] [--quick]

Each benchmark is its own script (readable on its own); this only runs them with the same interpreter and saves
``<out>/<name>.json`` plus ``<out>/summary.json`` with the machine description. Figures are noisy on shared
machines: compare ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--quick", action="store_true", help="smaller runs (fewer clips and steps)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {
        "decode": ["decode.py", "--clips", "10" if args.quick else "40"],
        "train_step": ["train_step.py", "--steps", "1" if args.quick else "2"],
        "model_throughput": ["model_throughput.py", "--repeats", "1" if args.quick else "3"],
        "embed": ["embed.py"],
    }
    summary = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "python": sys.version.split()[0]}, "results": {}}
    for name, (script, *extra) in runs.items():
        target = args.out / f"{name}.json"
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *extra, "--json", str(target)], check=True)
        summary["results"][name] = json.loads(target.read_text())
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
