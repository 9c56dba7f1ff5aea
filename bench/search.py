"""Exact text-to-moment search (``egokit search``) over a memory-mapped index of N windows.

    python bench/search.py [--windows 1000000] [--dims 256 4096] [--dtype float16] [--batches 1 16 64]
                           [--keep DIR] [--quiet-load 1.6] [--text-model egovlpv2-base] [--json out.json]

For each dimension an index of ``--windows`` random unit vectors (float16: N x D x 2 bytes on disk) is written in
the `egokit index` format and searched with :class:`egokit.search.SearchIndex`, the code `egokit search` runs:
one exact pass over the memory-mapped matrix per batch of queries, chunk by chunk into a float32 buffer. Rows:

* per dimension and query batch size, each timed in a fresh process: seconds per batch (median and best of
  ``--repeats`` after one pass that pulls the file into the page cache, ``first_pass_s``), queries/s (from the
  median), and the process memory:
  ``search_anon`` (private memory added by the search: buffers, results) and ``search_file`` (index pages mapped
  from the page cache, which the OS can drop at any time: the index never has to fit in private memory), both
  relative to the process before the index was opened, plus the whole process's RSS;
* a planted check: a query equal to a stored row must return that row first with score 1;
* the dual text encoder (``--text-model``, random weights) that turns a query into a vector, per query and per
  batch, so the end-to-end latency is text + scan.

Dimensions: 256 is the projection of the EK-100 / Charades-Ego checkpoints (``egovlpv2-base-smallproj``), 4096
that of the main EgoVLPv2 checkpoint (``egovlpv2-base``, "minimal" projection).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from egokit.search import SearchIndex
from egokit.search.index import INDEX_FORMAT, INDEX_NAME, INDEX_VERSION, WINDOW_DTYPE


def write_index(folder: Path, n: int, dim: int, dtype: str, windows_per_video: int = 3600, seed: int = 0) -> Path:
    """An index of ``n`` random unit vectors (videos of ``windows_per_video`` 1-s windows: an hour each)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vectors = np.lib.format.open_memmap(folder / "vectors-bench.npy", mode="w+", dtype=np.dtype(dtype), shape=(n, dim))
    step = max(1, (64 << 20) // (4 * dim))
    for r0 in range(0, n, step):
        block = rng.standard_normal((min(step, n - r0), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors[r0:r0 + len(block)] = block
    vectors.flush()
    del vectors
    windows = np.lib.format.open_memmap(folder / "windows-bench.npy", mode="w+", dtype=WINDOW_DTYPE, shape=(n,))
    rows = np.arange(n)
    windows["video"], windows["window"] = rows // windows_per_video, rows % windows_per_video
    windows["start"] = (rows % windows_per_video).astype(np.float64)
    windows["end"] = windows["start"] + 1.0
    windows.flush()
    del windows
    videos = [{"uid": f"v{v:05d}", "path": f"/videos/v{v:05d}.mp4", "first_row": v * windows_per_video,
               "num_windows": min(windows_per_video, n - v * windows_per_video), "clip_start": 0.0,
               "clip_end": float(windows_per_video), "fps": 30.0}
              for v in range((n + windows_per_video - 1) // windows_per_video)]
    meta = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "content": "bench", "count": n, "dim": dim,
            "dtype": dtype, "normalized": True, "vectors": "vectors-bench.npy", "windows": "windows-bench.npy",
            "videos": videos}
    (folder / INDEX_NAME).write_text(json.dumps(meta))
    return folder


def memory() -> dict[str, float]:
    """Current private and file-backed resident memory and the peak RSS, in MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def time_search(index: SearchIndex, batch: int, repeats: int, chunk_rows: int | None, base: dict) -> dict:
    rng = np.random.default_rng(batch)
    queries = rng.standard_normal((batch, index.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    t0 = time.perf_counter()
    index.search_vectors(queries, 10, chunk_rows=chunk_rows)
    cold = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        index.search_vectors(queries, 10, chunk_rows=chunk_rows)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    mem = memory()
    return {"batch": batch, "first_pass_s": round(cold, 4), "s_per_batch": round(med, 4),
            "best_s_per_batch": round(min(times), 4),
            "s_per_query": round(med / batch, 5), "queries_per_s": round(batch / med, 1),
            "rss_anon_mib": round(mem.get("RssAnon", 0)), "rss_file_mib": round(mem.get("RssFile", 0)),
            "search_anon_mib": round(mem.get("RssAnon", 0) - base.get("RssAnon", 0)),
            "search_file_mib": round(mem.get("RssFile", 0) - base.get("RssFile", 0)),
            "peak_rss_mib": round(mem["peak_rss"]), "base_rss_mib": round(base.get("VmRSS", 0))}


def planted_check(index: SearchIndex) -> bool:
    row = len(index) // 2 + 7
    scores, rows = index.search_vectors(np.asarray(index.vectors[row], dtype=np.float32), 3)
    return int(rows[0, 0]) == row and abs(float(scores[0, 0]) - 1.0) < 2e-3


def wait_quiet(limit: float | None, timeout: float = 1800.0) -> None:
    """Sleep until the 1-minute load average drops below ``limit`` (or ``timeout`` s pass)."""
    start = time.monotonic()
    while limit is not None and os.getloadavg()[0] >= limit and time.monotonic() - start < timeout:
        time.sleep(5)


def time_text(name: str, dim: int, batches: list[int], repeats: int) -> list[dict]:
    from egokit.models import create_model

    proj = {256: {"projection": "small", "projection_dim": 256}, 4096: {}}.get(dim, {"projection_dim": dim})
    torch.manual_seed(0)
    model = create_model(name, mlm_head=False, vtm_head=False, fused_layers=0, **proj).eval()
    length = model.config.preprocess.max_text_length
    rows = []
    for batch in batches:
        ids = torch.randint(5, 1000, (batch, length))
        mask = torch.ones_like(ids)
        with torch.no_grad():
            model.encode_text(ids, mask)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model.encode_text(ids, mask)
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        rows.append({"model": name, "dim": model.config.projection_dim, "batch": batch, "s_per_batch": round(med, 4),
                     "queries_per_s": round(batch / med, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default: 32 MiB of float32)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dir", default=None, help="where to write the temporary index (default: the temp dir)")
    parser.add_argument("--quiet-load", type=float, default=None,
                        help="before each timed row wait (up to 30 min) until the 1-minute load average is below this "
                             "(shared machines: other jobs' threads distort multi-threaded timings several-fold)")
    parser.add_argument("--keep", default=None, help="write the indexes to KEEP/index-<dim> and keep them; an index "
                                                     "already there (same windows) is reused")
    parser.add_argument("--text-model", default="egovlpv2-base", help="'' to skip the text-encoder rows")
    parser.add_argument("--quick", action="store_true", help="100k windows, 256-d only, 2 repeats, no text encoder")
    parser.add_argument("--json", default=None, help="write the results to this file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # time one batch size on this index
    args = parser.parse_args()
    if args.child:
        if args.threads:
            torch.set_num_threads(args.threads)
        base = memory()  # python + torch before the index is mapped
        index = SearchIndex(args.child)
        out = time_search(index, args.batches[0], args.repeats, args.chunk_rows, base)
        print(json.dumps({**out, "planted_top1": planted_check(index)}))
        return
    if args.quick:
        args.windows, args.dims, args.repeats, args.text_model = 100_000, [256], 2, ""
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, checks = [], {}
    for dim in args.dims:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="egokit-bench-search-") as tmp:
            t0 = time.perf_counter()
            folder = Path(args.keep or tmp) / f"index-{dim}-{args.dtype}"
            meta = json.loads((folder / INDEX_NAME).read_text()) if (folder / INDEX_NAME).is_file() else {}
            if meta.get("count") != args.windows:
                write_index(folder, args.windows, dim, args.dtype)
            written = time.perf_counter() - t0
            size_mib = os.path.getsize(folder / "vectors-bench.npy") / 2**20
            for batch in args.batches:  # a fresh process per row: its peak RSS is the search's alone
                wait_quiet(args.quiet_load)
                cmd = [sys.executable, __file__, "--child", str(folder), "--batches", str(batch), "--repeats",
                       str(args.repeats), *(["--chunk-rows", str(args.chunk_rows)] if args.chunk_rows else []),
                       *(["--threads", str(args.threads)] if args.threads else [])]
                child = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                checks[dim] = child.pop("planted_top1")
                row = {"windows": args.windows, "dim": dim, "dtype": args.dtype, "index_mib": round(size_mib),
                       "write_s": round(written, 1), "load_avg_1min": round(os.getloadavg()[0], 2), **child}
                rows.append(row)
                print(json.dumps(row), flush=True)
    text = []
    if args.text_model:
        for dim in sorted(set(args.dims) & {256, 4096}):
            wait_quiet(args.quiet_load)
            text += time_text(args.text_model, dim, [1, 16], max(2, args.repeats // 2))
        for row in text:
            print(json.dumps(row), flush=True)
    headline = []
    for row in rows:
        if row["batch"] in (1, max(args.batches)):
            headline.append({"what": f"search {row['windows'] / 1e6:g} M x {row['dim']}-d {row['dtype']}, "
                                     f"batch {row['batch']}",
                             "value": f"{row['queries_per_s']} queries/s",
                             "note": f"{row['s_per_batch']} s per batch; search memory: private +"
                                     f"{row['search_anon_mib']} MiB, mapped index pages +{row['search_file_mib']} "
                                     f"MiB (page cache); index {row['index_mib']} MiB"})
    result = {"rows": rows, "text_encoder": text, "planted_top1": checks, "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "headline": headline}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps({"planted_top1": checks, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
