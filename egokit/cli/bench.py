"""``egokit bench``: run the benchmark scripts of ``bench/`` and print their headline figures in one table.

Each suite is a standalone script in the source checkout's ``bench/`` folder (readable and runnable on its own)
that accepts ``--json PATH``. The JSON may carry ``"headline": [{"what", "value", "note"}, ...]``; those rows are
what the table shows. Results go to ``OUT/<suite>.json`` and ``OUT/summary.json`` (machine description, package
versions, git revision, every suite's result). Adding a suite is one entry in ``SUITES``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from egokit.cli.common import console
from egokit.errors import ConfigError

__all__ = ["bench", "SUITES", "Suite", "find_bench_dir", "plan"]


@dataclass(frozen=True)
class Suite:
    script: str                         # file in bench/
    args: tuple[str, ...] = ()          # full run
    quick: tuple[str, ...] | None = None  # --quick run (None: same as the full run)
    official: bool = False              # needs --official-repo (skipped without it)
    about: str = ""


NARROW = ("--width", "192", "--heads", "3", "--depth", "4", "--fused", "2", "--projection-dim", "256")

SUITES: dict[str, Suite] = {
    "decode": Suite("decode.py", ("--clips", "40"), ("--clips", "8", "--seconds", "120"),
                    about="random-clip decode: egokit vs the official-style OpenCV reader"),
    "flops": Suite("flops.py", (), ("--quick",), about="matmul peak (fp32, bf16) and model FLOPs per step"),
    "train_step": Suite("train_step.py", ("--steps", "2"), ("--steps", "1", "--models", "tiny"),
                        about="egokit pretraining step, tiny and base, fp32 and bf16: time, peak memory, % of peak"),
    "official_step": Suite("official_step.py", ("--steps", "3", "--rounds", "2"),
                           ("--steps", "1", "--rounds", "1", *NARROW), official=True,
                           about="official and egokit pretraining step side by side (same run)"),
    "model_throughput": Suite("model_throughput.py", ("--repeats", "3"), ("--repeats", "1"),
                              about="base dual forward clips/s; tiny forward+backward"),
    "embed": Suite("embed.py", (), ("--seconds", "4", "--base-seconds", "1"), about="egokit embed windows/s"),
    "data_wait": Suite("data_wait.py", ("--steps", "20"), ("--steps", "5", "--videos", "4", "--quick"),
                       about="data-wait share of a short pretraining run"),
    "prepare": Suite("prepare.py", (), ("--videos", "1", "--seconds", "60", "--clips", "20"),
                     about="egokit prepare throughput; decode before and after it"),
    "heads": Suite("heads.py", (), ("--seeds", "1", "--lrs", "1e-3", "--nlq-epochs", "3", "--mq-epochs", "3"),
                   about="NLQ/MQ localisation heads against VSLNet/VSGN on synthetic features"),
    "search": Suite("search.py", (), ("--quick",), about="egokit search: queries/s and memory at 1 M windows"),
}


def find_bench_dir(explicit: Optional[Path] = None) -> Path:
    """The ``bench/`` folder of the source checkout egokit runs from (or ``explicit``)."""
    import egokit

    folder = explicit or Path(egokit.__file__).resolve().parents[1] / "bench"
    if not folder.is_dir():
        raise ConfigError(f"no benchmark scripts at {folder}: `egokit bench` runs the scripts of a source checkout's "
                          "bench/ folder. Install egokit from a clone (pip install -e .) or pass --bench-dir.")
    return folder


def plan(only: list[str], skip: list[str], official_repo: Optional[Path], bench_dir: Path,
         quick: bool) -> list[tuple[str, list[str] | None, str]]:
    """``(suite, argv, reason)`` per suite in order; ``argv`` is None when the suite is skipped for ``reason``."""
    names = [n for item in only for n in item.split(",") if n] or list(SUITES)
    skipped = {n for item in skip for n in item.split(",") if n}
    unknown = sorted((set(names) | skipped) - set(SUITES))
    if unknown:
        raise ConfigError(f"unknown benchmark suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    out = []
    for name in names:
        suite = SUITES[name]
        script = bench_dir / suite.script
        if name in skipped:
            out.append((name, None, "--skip"))
        elif not script.is_file():
            out.append((name, None, f"{script.name} is not in {bench_dir}"))
        elif suite.official and official_repo is None:
            out.append((name, None, "needs --official-repo PATH (a checkout of facebookresearch/EgoVLPv2 outside "
                                    "this repository)"))
        else:
            args = list(suite.quick if quick and suite.quick is not None else suite.args)
            if suite.official:
                args += ["--official-repo", str(official_repo)]
            out.append((name, [str(script), *args], ""))
    return out


def bench(
    only: Optional[List[str]] = typer.Option(None, "--only", help=f"Suites to run (repeat or comma-separate): {', '.join(SUITES)}."),
    skip: Optional[List[str]] = typer.Option(None, "--skip", help="Suites not to run."),
    quick: bool = typer.Option(False, "--quick", help="Small runs (minutes): fewer clips/steps, tiny or narrow models."),
    official_repo: Optional[Path] = typer.Option(None, "--official-repo", help="Checkout of facebookresearch/EgoVLPv2 (outside this repository) for the side-by-side step."),
    out: Path = typer.Option(Path("runs/bench"), "--out", "-o", help="Folder for <suite>.json and summary.json."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch/OpenMP threads for every suite (default: torch's)."),
    bench_dir: Optional[Path] = typer.Option(None, "--bench-dir", help="Folder with the benchmark scripts (default: the checkout's bench/)."),
) -> None:
    """Benchmark this machine: decoding, training step (vs the official code), FLOPs and matmul peak, embedding, data wait."""
    folder = find_bench_dir(bench_dir)
    steps = plan(only or [], skip or [], official_repo, folder, quick)
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    import torch

    from egokit.perf import machine_info
    from egokit.results import run_metadata, write_json_atomic

    if threads:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"machine": machine_info(), "environment": run_metadata(), "quick": quick, "suites": {}}
    m = summary["machine"]
    console.print(f"[bold]egokit bench[/] on {m['cpu_model']} ({m['usable_cpus']} CPUs usable, "
                  f"{m['torch']['threads']} torch threads, {m['ram_gb']} GB RAM), torch {m['torch']['version']}")
    failed = []
    for name, argv, reason in steps:
        if argv is None:
            console.print(f"[yellow]== {name}: skipped[/] ({reason})")
            summary["suites"][name] = {"status": "skipped", "reason": reason}
            continue
        target = out / f"{name}.json"
        target.unlink(missing_ok=True)
        console.print(f"[bold]== {name}[/]: {SUITES[name].about}", highlight=False)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, *argv, "--json", str(target)], env=env).returncode
        record = {"status": "ok" if code == 0 and target.is_file() else "failed", "exit_code": code,
                  "seconds": round(time.perf_counter() - start, 1), "argv": argv[1:], "json": str(target)}
        if record["status"] == "ok":
            record["result"] = json.loads(target.read_text())
        else:
            failed.append(name)
        summary["suites"][name] = record
        write_json_atomic(out / "summary.json", summary)  # partial results survive an interrupted run
    write_json_atomic(out / "summary.json", summary)
    wide = Console(width=None if console.is_terminal else 160)  # logs and pipes: do not wrap at 80 columns
    wide.print(headline_table(summary))
    console.print(f"wrote {out / 'summary.json'}")
    if failed:
        console.print(f"[bold red]failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)


def headline_table(summary: dict) -> Table:
    m = summary["machine"]
    table = Table(title=f"egokit bench{' (quick)' if summary.get('quick') else ''}: {m['cpu_model']}, "
                        f"{m['torch']['threads']} threads, torch {m['torch']['version']}")
    for col in ("suite", "what", "value", "note"):
        table.add_column(col)
    for name, record in summary["suites"].items():
        if record["status"] != "ok":
            why = record.get("reason") or f"exit code {record.get('exit_code')}"
            table.add_row(name, f"[dim]{record['status']}[/]", "", why)
            continue
        rows = record["result"].get("headline") if isinstance(record["result"], dict) else None
        if not rows:
            table.add_row(name, "done", f"{record['seconds']:.0f} s", f"see {record['json']}")
        for i, row in enumerate(rows or []):
            table.add_row(name if i == 0 else "", str(row.get("what", "")), str(row.get("value", "")),
                          str(row.get("note", "")))
    return table
