"""EgoClip pretraining data: the official ``egoclip.csv`` table, scene-aware negatives and the dataset.

Differences from the official loader (spec §4.1, §8.1 items 13-14), each on purpose:

* tag strings are parsed as literals (JSON, then ``ast.literal_eval``), never ``eval``'d; only lists of ints
  within the taxonomy are accepted, and the error names the file, line and column;
* the scene-aware negative is drawn from an index ``{(video, floor(narration_time / window)): rows}`` built once,
  O(1) per item instead of a full-table scan. Semantics are kept: uniform over the rows of the anchor's window,
  **the anchor itself included** (a window with one narration yields the anchor as its own negative);
* randomness (frame sampling, augmentation, the negative) comes from a generator derived from
  ``(seed, epoch, index)``: reproducible and identical whichever DataLoader worker loads the item.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from egokit.data.video import ChunkedVideo, read_clip
from egokit.errors import ConfigError, DataError

__all__ = [
    "EGOCLIP_COLUMNS",
    "NUM_NOUNS",
    "NUM_VERBS",
    "EgoClipDataset",
    "EgoClipTable",
    "SceneNegativeIndex",
    "item_rng",
    "multi_hot",
    "parse_tag_list",
    "read_egoclip_csv",
]

#: Ego4D taxonomy sizes used by the official checkpoints (verb and noun multi-hot lengths).
NUM_VERBS = 118
NUM_NOUNS = 582

#: Official column order of egoclip.csv (tab-separated); ``clip_idx`` and the metadata columns are optional.
EGOCLIP_COLUMNS = (
    "clip_idx",
    "video_uid",
    "video_dur",
    "narration_source",
    "narration_ind",
    "narration_time",
    "clip_start",
    "clip_end",
    "clip_text",
    "tag_verb",
    "tag_noun",
)
_REQUIRED = ("video_uid", "narration_time", "clip_start", "clip_end", "clip_text", "tag_verb", "tag_noun")
_MAX_TAG_CHARS = 10_000  # literal_eval on megabyte strings is a denial of service; real tags are < 100 chars


def parse_tag_list(text: str, size: int, where: str) -> tuple[int, ...]:
    """Parse a tag string such as ``"[192, 115, 12]"`` into class indices in ``[0, size)``.

    Only a list (or tuple) literal of ints is accepted; anything else, e.g. a function call, raises
    :class:`DataError` mentioning ``where`` (file, line and column).
    """
    if not isinstance(text, str):
        raise DataError(f"{where}: expected a string holding a list of ints, got {type(text).__name__}")
    if len(text) > _MAX_TAG_CHARS:
        raise DataError(f"{where}: tag string is {len(text)} characters long; expected a short list of ints")
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise DataError(
                f"{where}: {text[:80]!r} is not a list literal of ints (e.g. \"[3, 17]\"); fix the annotation"
            ) from None
    if not isinstance(value, list | tuple) or not all(type(v) is int for v in value):
        raise DataError(f"{where}: {text[:80]!r} is not a list of ints (e.g. \"[3, 17]\"); fix the annotation")
    bad = [v for v in value if not 0 <= v < size]
    if bad:
        raise DataError(f"{where}: class index {bad[0]} is outside [0, {size}); check the taxonomy size")
    return tuple(value)


def multi_hot(indices: Sequence[int], size: int) -> torch.Tensor:
    """Float multi-hot vector of length ``size`` with ones at ``indices`` (empty list -> all zeros)."""
    vec = torch.zeros(size)
    if len(indices):
        vec[torch.as_tensor(list(indices), dtype=torch.long)] = 1.0
    return vec


@dataclass(frozen=True)
class EgoClipTable:
    """Column-wise contents of an egoclip.csv (rows in file order, skipped bad lines excluded)."""

    path: Path
    video_uid: list[str]
    narration_time: np.ndarray
    clip_start: np.ndarray
    clip_end: np.ndarray
    clip_text: list[str]
    tag_verb: list[tuple[int, ...]]
    tag_noun: list[tuple[int, ...]]
    line: np.ndarray  # 1-based line of each row in the file, for error messages
    num_verbs: int = NUM_VERBS
    num_nouns: int = NUM_NOUNS
    extra: dict[str, list[str]] = field(default_factory=dict)  # optional columns kept as text

    def __len__(self) -> int:
        return len(self.video_uid)

    def where(self, row: int) -> str:
        return f"{self.path}:{int(self.line[row])}"


def _first_non_utf8(path: Path) -> tuple[int, int]:
    """(line number, byte offset) of the first byte of ``path`` that is not UTF-8, read in blocks."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            pending = len(decoder.getstate()[0])  # bytes of a character split across the previous block's end
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                start = max(exc.start - pending, 0)
                return line + block.count(b"\n", 0, start), offset + start
            line += block.count(b"\n")
            offset += len(block)
    return line, offset


def read_egoclip_csv(
    path: str | os.PathLike,
    *,
    num_verbs: int = NUM_VERBS,
    num_nouns: int = NUM_NOUNS,
    on_bad_lines: Literal["error", "skip"] = "error",
) -> EgoClipTable:
    """Read a tab-separated egoclip.csv (official columns) into an :class:`EgoClipTable`.

    ``on_bad_lines='skip'`` mirrors the official ``error_bad_lines=False`` for lines with the wrong number of
    fields (a warning reports how many); malformed values always raise :class:`DataError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"EgoClip annotation file {path} does not exist; pass the path of egoclip.csv")
    cols: dict[str, list[Any]] = {}
    lines: list[int] = []
    skipped = 0
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter="\t")
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(f"{path} is empty; expected a tab-separated header with "
                                f"{', '.join(_REQUIRED)}") from None
            header = [h.strip() for h in header]
            if header and header[0] == "":
                header[0] = "clip_idx"  # pandas writes the index column without a name
            missing = [c for c in _REQUIRED if c not in header]
            if missing:
                raise DataError(
                    f"{path}:1: missing column(s) {', '.join(missing)}; egoclip.csv must be tab-separated with "
                    f"columns {', '.join(EGOCLIP_COLUMNS)}"
                )
            cols = {name: [] for name in header}
            for fields in reader:
                if len(fields) != len(header):
                    if on_bad_lines == "skip":
                        skipped += 1
                        continue
                    raise DataError(
                        f"{path}:{reader.line_num}: expected {len(header)} tab-separated fields, found {len(fields)}; "
                        "fix the line or read with on_bad_lines='skip'"
                    )
                lines.append(reader.line_num)
                for name, value in zip(header, fields, strict=True):
                    cols[name].append(value)
    except UnicodeDecodeError:
        line_no, offset = _first_non_utf8(path)
        raise DataError(f"{path}:{line_no}: not UTF-8 text (byte {offset} of the file); "
                        "save egoclip.csv as UTF-8") from None
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} line(s) with the wrong number of fields", stacklevel=2)
    line = np.asarray(lines, dtype=np.int64)

    def floats(name: str) -> np.ndarray:
        out = np.empty(len(lines), dtype=np.float64)
        for i, text in enumerate(cols[name]):
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise DataError(f"{path}:{lines[i]}: column {name}: {text!r} is not a finite number")
            out[i] = value
        return out

    uids = [sys.intern(u) for u in cols["video_uid"]]  # millions of rows share a few thousand ids
    for i, uid in enumerate(uids):
        if not uid or "/" in uid or uid in (".", ".."):
            raise DataError(f"{path}:{lines[i]}: column video_uid: {uid!r} is not a valid video id")
    return EgoClipTable(
        path=path,
        video_uid=uids,
        narration_time=floats("narration_time"),
        clip_start=floats("clip_start"),
        clip_end=floats("clip_end"),
        clip_text=cols["clip_text"],
        tag_verb=[
            parse_tag_list(t, num_verbs, f"{path}:{n}: column tag_verb")
            for t, n in zip(cols["tag_verb"], lines)
        ],
        tag_noun=[
            parse_tag_list(t, num_nouns, f"{path}:{n}: column tag_noun")
            for t, n in zip(cols["tag_noun"], lines)
        ],
        line=line,
        num_verbs=num_verbs,
        num_nouns=num_nouns,
        extra={k: v for k, v in cols.items() if k not in _REQUIRED},
    )


class SceneNegativeIndex:
    """Rows grouped by ``(video_uid, floor(narration_time / window))`` for O(1) scene-aware negatives."""

    def __init__(self, video_uid: Sequence[str], narration_time: np.ndarray, window: float = 60.0) -> None:
        if not window > 0:
            raise ConfigError(f"negative window must be > 0 seconds, got {window}")
        self.window = float(window)
        codes = {uid: i for i, uid in enumerate(dict.fromkeys(video_uid))}
        video = np.fromiter((codes[u] for u in video_uid), dtype=np.int64, count=len(video_uid))
        bucket = np.floor(np.asarray(narration_time, dtype=np.float64) / self.window).astype(np.int64)
        _, group = np.unique(np.stack([video, bucket], axis=1), axis=0, return_inverse=True)
        self.group_of_row = group.reshape(-1)
        order = np.argsort(self.group_of_row, kind="stable")  # rows of a group stay in file order
        bounds = np.searchsorted(self.group_of_row[order], np.arange(int(self.group_of_row.max(initial=-1)) + 2))
        self._order = order
        self._bounds = bounds

    @classmethod
    def from_table(cls, table: EgoClipTable, window: float = 60.0) -> SceneNegativeIndex:
        return cls(table.video_uid, table.narration_time, window)

    def candidates(self, row: int) -> np.ndarray:
        """All rows in the same video and window as ``row`` (ascending, ``row`` included)."""
        g = self.group_of_row[row]
        return self._order[self._bounds[g] : self._bounds[g + 1]]

    def sample(self, row: int, rng: np.random.Generator) -> int:
        """A uniformly random row of ``row``'s window; may return ``row`` itself, as the official sampler."""
        g = self.group_of_row[row]
        lo, hi = self._bounds[g], self._bounds[g + 1]
        return int(self._order[lo + int(rng.integers(hi - lo))])


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one item: a pure function of ``(seed, epoch, index)``, hence worker-independent."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


Transform = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


class EgoClipDataset(Dataset):
    """EgoClip pretraining items: a clip, its narration and verb/noun multi-hots, plus a scene negative.

    Item keys: ``video`` uint8 (F,3,S,S), ``text``, ``verb`` (num_verbs,), ``noun`` (num_nouns,), ``index``,
    ``epoch`` and, with ``scene_negatives``, ``neg_video``, ``neg_text``, ``neg_verb``, ``neg_noun``,
    ``neg_index``. ``transform(video, generator)`` is a train transform (e.g. ``TrainTransform``); without one
    the decoded frames are returned as read. Call :meth:`set_epoch` each epoch; with persistent DataLoader
    workers the call does not reach the worker copies, so recreate workers (the default) to vary epochs.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike,
        video_root: str | os.PathLike,
        *,
        num_frames: int = 4,
        chunk_seconds: float = 600.0,
        transform: Transform | None = None,
        scene_negatives: bool = True,
        neg_window: float | None = 60.0,
        sampling: str = "rand",
        short_side: int | None = None,
        seed: int = 0,
        num_verbs: int = NUM_VERBS,
        num_nouns: int = NUM_NOUNS,
    ) -> None:
        if num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        self.table = read_egoclip_csv(csv_path, num_verbs=num_verbs, num_nouns=num_nouns)
        self.video_root = Path(video_root)
        if not self.video_root.is_dir():
            raise DataError(f"video root {self.video_root} is not a folder; expected <root>/<video_uid>/<chunk>.mp4")
        self.num_frames = num_frames
        self.chunk_seconds = float(chunk_seconds)
        self.transform = transform
        self.sampling = sampling
        self.short_side = short_side
        self.seed = seed
        self.epoch = 0
        use_neg = scene_negatives and neg_window is not None
        self.negatives = SceneNegativeIndex.from_table(self.table, neg_window) if use_neg else None

    def __len__(self) -> int:
        return len(self.table)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} EgoClip rows")
        rng = item_rng(self.seed, self.epoch, index)
        neg_row = self.negatives.sample(index, rng) if self.negatives is not None else None
        item: dict[str, Any] = {**self._sample(index, rng), "index": index, "epoch": self.epoch}
        if neg_row is not None:
            neg = self._sample(neg_row, rng)
            item.update({f"neg_{k}": v for k, v in neg.items()})
            item["neg_index"] = neg_row
        return item

    def _sample(self, row: int, rng: np.random.Generator) -> dict[str, Any]:
        t = self.table
        return {
            "video": self.load_video(row, rng),
            "text": t.clip_text[row],
            "verb": multi_hot(t.tag_verb[row], t.num_verbs),
            "noun": multi_hot(t.tag_noun[row], t.num_nouns),
        }

    def load_video(self, row: int, rng: np.random.Generator) -> torch.Tensor:
        """Decode (and transform) the clip of ``row``; errors name the csv line, video and time range."""
        t = self.table
        uid = t.video_uid[row]
        start, end = max(float(t.clip_start[row]), 0.0), max(float(t.clip_end[row]), 0.0)
        source = ChunkedVideo(self.video_root, uid, self.chunk_seconds)
        try:
            video = read_clip(
                source, start, end, self.num_frames, sampling=self.sampling, rng=rng, short_side=self.short_side
            )
        except DataError as exc:
            raise type(exc)(
                f"{t.where(row)}: clip {uid} [{start:.3f}, {end:.3f}] s under {self.video_root}: {exc}"
            ) from exc
        if self.transform is None:
            return video
        generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        return self.transform(video, generator)
