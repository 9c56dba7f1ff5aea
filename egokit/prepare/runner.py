"""Run ``egokit prepare``: skip finished videos, encode the others (optionally in a process pool), keep the manifest.

Resuming: a video is skipped when its manifest entry says ``done`` with the same settings, its source file has the
same size and modification time, and every chunk exists with the recorded size and passes :func:`verify_chunk`.
Chunks are written under hidden temporary names and renamed when complete, so a killed run leaves no partial file
under a final name; the manifest is rewritten atomically by this process only (workers return entries). A video
that fails is recorded with ``status: failed`` and its error, its chunks are removed, and the other videos go on.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from egokit.errors import ConfigError
from egokit.io import check_output_dir
from egokit.prepare.discover import VideoJob, discover
from egokit.prepare.encode import chunk_path, encode_video
from egokit.prepare.manifest import MANIFEST_NAME, read_manifest, write_manifest
from egokit.prepare.settings import PrepareSettings, choose_codec
from egokit.prepare.verify import ChunkCheckError, verify_chunk

__all__ = ["PrepareReport", "VideoResult", "is_up_to_date", "prepare", "process_video"]

MANIFEST_WRITE_INTERVAL = 2.0  # seconds between manifest rewrites while videos finish (and once at the end)


@dataclass
class VideoResult:
    """Outcome of one video: ``done`` (encoded now), ``skipped`` (already prepared) or ``failed``."""

    uid: str
    source: str
    status: str
    entry: dict[str, Any]
    error: str | None = None
    frames: int = 0  # frames encoded by this run
    seconds: float = 0.0


@dataclass
class PrepareReport:
    layout: str
    codec: str
    warning: str | None
    results: list[VideoResult] = field(default_factory=list)
    seconds: float = 0.0
    manifest_error: OSError | None = None  # the manifest could not be written (full disk...): raise it after reporting

    def by_status(self, status: str) -> list[VideoResult]:
        return [r for r in self.results if r.status == status]

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.by_status("failed") and self.manifest_error is None


def is_up_to_date(
    job: VideoJob, dst: Path, settings: PrepareSettings, codec: str, entry: dict[str, Any] | None
) -> bool:
    """Whether ``entry`` describes finished, intact outputs of this source with these settings."""
    if not entry or entry.get("status") != "done" or entry.get("settings") != settings.record(codec):
        return False
    try:
        stat = os.stat(job.path)
        if (stat.st_size, stat.st_mtime_ns) != (entry["source_bytes"], entry["source_mtime_ns"]):
            return False
        rate = Fraction(entry["rate"])
        for chunk in entry["chunks"]:
            path = chunk_path(dst, job.uid, chunk["index"])
            if not path.is_file() or path.stat().st_size != chunk["bytes"]:
                return False
            verify_chunk(path, chunk["num_frames"], rate, entry["width"], entry["height"])
    except (OSError, KeyError, TypeError, ValueError, ChunkCheckError):
        return False
    return True


def process_video(
    job: VideoJob,
    dst: Path,
    settings: PrepareSettings,
    codec: str,
    previous: dict[str, Any] | None,
    overwrite: bool = False,
    on_frames: Callable[[int], None] | None = None,
) -> VideoResult:
    """Skip, encode or fail one video; never raises for a problem with this video."""
    started = time.perf_counter()
    source = str(job.path)
    if not overwrite and is_up_to_date(job, dst, settings, codec, previous):
        return VideoResult(job.uid, source, "skipped", previous, seconds=time.perf_counter() - started)
    try:
        entry = encode_video(job, dst, settings, codec, on_frames)
    except Exception as exc:  # noqa: BLE001 - any failure of this video is reported, the others go on
        _remove_outputs(dst / job.uid)
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        entry = {"uid": job.uid, "status": "failed", "source": str(job.path.resolve()), "error": error,
                 "settings": settings.record(codec)}
        return VideoResult(job.uid, source, "failed", entry, error, seconds=time.perf_counter() - started)
    return VideoResult(job.uid, source, "done", entry, frames=entry["num_frames"],
                       seconds=time.perf_counter() - started)


def _remove_outputs(folder: Path) -> None:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if (path.suffix == ".mp4" and path.stem.isdigit()) or path.name.endswith(".mp4.partial"):
            path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def prepare(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    settings: PrepareSettings | None = None,
    *,
    layout: str = "auto",
    workers: int = 1,
    overwrite: bool = False,
    on_start: Callable[[PrepareReport, list[VideoJob]], None] | None = None,
    on_frames: Callable[[int], None] | None = None,
    on_video: Callable[[VideoResult], None] | None = None,
) -> PrepareReport:
    """Prepare every video of ``src`` into ``dst`` (see the module doc); returns what happened to each video.

    ``on_start(report, jobs)`` is called once the videos are found, ``on_frames(n)`` as frames are encoded and
    ``on_video(result)`` as each video finishes, all in the calling process.
    """
    settings = settings or PrepareSettings()
    settings.validate()
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    started = time.perf_counter()
    dst = Path(dst)
    codec, warning = choose_codec(settings.codec)
    used_layout, jobs = discover(src, layout, exclude=dst)
    check_output_dir(dst)  # a read-only or misplaced DST is one error now, not one failure per video
    dst.mkdir(parents=True, exist_ok=True)
    entries = read_manifest(dst)
    report = PrepareReport(used_layout, codec, warning)
    if on_start is not None:
        on_start(report, jobs)

    last_write = time.perf_counter()
    dirty = False

    def save() -> None:
        # A manifest that cannot be written (full disk) does not stop the run: the videos go on (and are reported,
        # failed ones included), the write is retried, and the last error is kept in the report for the caller.
        nonlocal last_write, dirty
        try:
            write_manifest(dst, entries)
        except OSError as exc:
            report.manifest_error = exc
            return
        report.manifest_error = None
        last_write, dirty = time.perf_counter(), False

    def record(result: VideoResult) -> None:
        nonlocal dirty
        report.results.append(result)
        if result.status != "skipped":
            entries[result.uid] = result.entry
            dirty = True
        if dirty and time.perf_counter() - last_write >= MANIFEST_WRITE_INTERVAL:
            save()
        if on_video is not None:
            on_video(result)

    try:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                record(process_video(job, dst, settings, codec, entries.get(job.uid), overwrite, on_frames))
        else:
            _run_pool(jobs, dst, settings, codec, entries, overwrite, min(workers, len(jobs)), on_frames, record)
    finally:
        if dirty or not (dst / MANIFEST_NAME).exists():
            save()
        report.seconds = time.perf_counter() - started
    return report


_QUEUE: Any = None  # a worker's progress queue (set by the pool initializer)


def _init_worker(progress: Any) -> None:
    global _QUEUE
    _QUEUE = progress


def _worker(job: VideoJob, dst: Path, settings: PrepareSettings, codec: str, previous: dict[str, Any] | None,
            overwrite: bool) -> tuple[VideoResult, int]:
    """The video's result and how many progress messages it queued (the parent waits for all of them: a queue's
    items can still be in flight when the result arrives)."""
    sent = 0

    def report(n: int) -> None:
        nonlocal sent
        sent += 1
        _QUEUE.put(n)

    return process_video(job, dst, settings, codec, previous, overwrite, report), sent


def _run_pool(jobs: list[VideoJob], dst: Path, settings: PrepareSettings, codec: str,
              entries: dict[str, dict[str, Any]], overwrite: bool, workers: int,
              on_frames: Callable[[int], None] | None, record: Callable[[VideoResult], None]) -> None:
    context = multiprocessing.get_context("spawn")  # no fork of a process holding decoder threads
    progress = context.Queue()

    counts = {"sent": 0, "received": 0}

    def drain(wait_for_all: bool = False) -> None:
        while True:
            try:
                missing = wait_for_all and counts["received"] < counts["sent"]
                n = progress.get(timeout=30) if missing else progress.get_nowait()
            except queue_module.Empty:
                return
            counts["received"] += 1
            if on_frames is not None:
                on_frames(n)

    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(progress,)) as pool:
        futures: dict[Future, VideoJob] = {
            pool.submit(_worker, job, dst, settings, codec, entries.get(job.uid), overwrite): job for job in jobs
        }
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                drain()
                for future in finished:
                    job = futures[future]
                    try:
                        result, sent = future.result()
                        counts["sent"] += sent
                    except Exception as exc:  # noqa: BLE001 - a crashed worker (e.g. killed for memory)
                        error = f"worker process failed: {type(exc).__name__}: {exc}"
                        result = VideoResult(job.uid, str(job.path), "failed",
                                             {"uid": job.uid, "status": "failed",
                                              "source": str(job.path.resolve()),
                                              "error": error, "settings": settings.record(codec)}, error)
                    record(result)
            drain(wait_for_all=True)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
