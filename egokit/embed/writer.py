"""Feature files and run metadata, written so that an interrupted run never leaves a partial file and resumes.

Layout of an output folder::

    <uid>.pt | .safetensors | .npy   one per clip/video: float tensor (n_windows, D); fusion with per-clip
                                     queries: (n_queries, n_windows, D), query order in the metadata
    embed_meta.json                  the run: recipe (+ fingerprint), checkpoint sha256, model and decoder
                                     settings, library versions, egokit git revision, and per video the window
                                     start/end times (s from the clip start) and query keys
    .embed-parts/<uid>.json          per-video entries (merged into embed_meta.json at the end of the run)

``.pt`` files hold a plain tensor saved with ``torch.save`` (the official layout; load with
``torch.load(path, weights_only=True)``); ``.safetensors`` hold one tensor named ``features``.

A video is *finished* when its feature file and its entry (with the same recipe fingerprint) both exist. Each is
written to a temporary file and renamed (``os.replace``), the feature file first, so a crash at any point leaves
either nothing or a complete pair; the next run skips finished videos and recomputes the rest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egokit.errors import ConfigError
from egokit.io import atomic_path, write_json_atomic

__all__ = ["FORMATS", "META_NAME", "FeatureWriter", "atomic_save", "load_features"]

FORMATS = {"pt": ".pt", "safetensors": ".safetensors", "npy": ".npy"}
META_NAME = "embed_meta.json"
PARTS = ".embed-parts"


def atomic_save(path: Path, write) -> None:
    """``write(tmp_path)`` then rename onto ``path`` (see :func:`egokit.io.atomic_path`)."""
    with atomic_path(path) as tmp:
        write(str(tmp))


def load_features(path: str | os.PathLike) -> torch.Tensor:
    """Read a feature file written by :class:`FeatureWriter` (any format) as a tensor."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))["features"]
    if path.suffix == ".npy":
        return torch.from_numpy(np.load(path, allow_pickle=False))
    return torch.load(path, map_location="cpu", weights_only=True)


class FeatureWriter:
    """Writes ``<uid><ext>`` feature files and their metadata entries into ``out_dir``."""

    def __init__(self, out_dir: str | os.PathLike, fmt: str, run: dict[str, Any], *, overwrite: bool = False) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"output format must be one of {sorted(FORMATS)}, got {fmt!r}")
        self.out_dir, self.fmt, self.run = Path(out_dir), fmt, run
        self.fingerprint = run["fingerprint"]
        self.parts = self.out_dir / PARTS
        self.parts.mkdir(parents=True, exist_ok=True)
        meta = self.out_dir / META_NAME
        if meta.is_file() and not overwrite:
            old = json.loads(meta.read_text()).get("fingerprint")
            if old != self.fingerprint:
                raise ConfigError(f"{self.out_dir} holds features of another recipe/checkpoint ({old} != "
                                  f"{self.fingerprint}); use a new output folder or --overwrite")
        self.overwrite = overwrite

    def path_for(self, uid: str) -> Path:
        return self.out_dir / f"{uid}{FORMATS[self.fmt]}"

    def _part(self, uid: str) -> Path:
        return self.parts / f"{uid}.json"

    def is_done(self, uid: str) -> bool:
        if self.overwrite or not self.path_for(uid).is_file() or not self._part(uid).is_file():
            return False
        try:
            return json.loads(self._part(uid).read_text()).get("fingerprint") == self.fingerprint
        except (OSError, json.JSONDecodeError):
            return False

    def write(self, uid: str, features: torch.Tensor, entry: dict[str, Any]) -> Path:
        features = features.detach().float().cpu().contiguous()
        path = self.path_for(uid)
        if self.fmt == "pt":
            atomic_save(path, lambda tmp: torch.save(features.clone(), tmp))
        elif self.fmt == "safetensors":
            from safetensors.torch import save_file

            atomic_save(path, lambda tmp: save_file({"features": features}, tmp))
        else:
            def save_npy(tmp: str) -> None:
                with open(tmp, "wb") as handle:
                    np.save(handle, features.numpy(), allow_pickle=False)

            atomic_save(path, save_npy)
        write_json_atomic(self._part(uid), {**entry, "file": path.name, "shape": list(features.shape),
                                            "fingerprint": self.fingerprint})
        return path

    def finalize(self) -> Path:
        """Merge every finished entry of this recipe into ``embed_meta.json`` (main process, after all ranks)."""
        videos = {}
        for part in sorted(self.parts.glob("*.json")):
            try:
                entry = json.loads(part.read_text())
            except json.JSONDecodeError:
                continue
            if entry.get("fingerprint") == self.fingerprint and (self.out_dir / entry.get("file", "")).is_file():
                videos[part.stem] = {k: v for k, v in entry.items() if k != "fingerprint"}
        return write_json_atomic(self.out_dir / META_NAME, {**self.run, "videos": videos})
