"""Feature recipes: everything that decides what a feature file contains, named so one flag reproduces a setting.

A recipe is recorded in every run's metadata (with the checkpoint hash and library versions), which answers the
most common complaint about released video features: the windowing and head were never written down (spec §8.2,
peer survey §4.1).

Named recipes:

* ``egovlpv2-mq`` -- official EgoMQ features: dual mode, projected (4096-d with the main checkpoint), 16 frames
  per window, ``ego4d`` windowing at 1.87 windows/s (spec §5.5).
* ``egovlpv2-mq-backbone`` -- same windows, the 768-d unprojected video CLS (what users re-extracting features
  for other heads ask for).
* ``egovlpv2-nlq`` -- official EgoNLQ features: fusion mode, the query-conditioned fused video CLS (768-d,
  unprojected), 4 frames per window at 1.87 windows/s, query lower-cased, stripped and padded to 30 tokens
  (spec §5.4).
* ``egovlpv2-nlq-dual`` -- NLQ windows with query-independent 768-d backbone features (one file per clip, shared
  by all its queries; much cheaper than fusion).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

from egokit.embed.windows import WINDOWINGS
from egokit.errors import ConfigError

__all__ = ["MODES", "FeatureRecipe", "get_recipe", "list_recipes"]

#: ``projected`` = ``encode_video`` (dual, after vid_proj); ``backbone`` = ``video_features`` (dual, unprojected
#: CLS); ``fusion`` = ``fusion(video, query).video_cls`` (query-conditioned, unprojected).
MODES = ("projected", "backbone", "fusion")


@dataclass(frozen=True)
class FeatureRecipe:
    """How windows are cut and which model output becomes the feature (see ``egokit.embed.windows``)."""

    mode: str = "projected"
    frames_per_window: int = 16
    windowing: str = "ego4d"
    windows_per_second: Optional[float] = 1.87  # ego4d: target rate; sliding: alternative to stride
    stride: Optional[float] = None  # sliding only, seconds between window starts
    window_frames: Optional[int] = None  # sliding only, source frames per window (default frames_per_window)
    short_side: Optional[int] = None  # resize the short side while decoding (None: decode at native size)
    query_max_length: int = 30  # fusion: query tokens (padded to this length, as officially)
    lowercase_query: bool = True  # fusion: official NLQ lower-cases and strips queries
    name: Optional[str] = None

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.windowing not in WINDOWINGS:
            problems.append(f"windowing must be one of {WINDOWINGS}, got {self.windowing!r}")
        if self.frames_per_window < 1:
            problems.append(f"frames_per_window must be >= 1, got {self.frames_per_window}")
        if self.windowing == "ego4d":
            if not self.windows_per_second or self.windows_per_second <= 0:
                problems.append("ego4d windowing needs windows_per_second > 0")
            if self.stride is not None or self.window_frames is not None:
                problems.append("stride/window_frames apply to windowing='sliding' only")
        else:
            if (self.stride is None) == (self.windows_per_second is None):
                problems.append("sliding windowing needs exactly one of stride (s) or windows_per_second")
            elif (self.stride if self.stride is not None else self.windows_per_second) <= 0:
                problems.append("stride / windows_per_second must be positive")
            if self.window_frames is not None and self.window_frames < 1:
                problems.append(f"window_frames must be >= 1, got {self.window_frames}")
        if self.short_side is not None and self.short_side < 1:
            problems.append(f"short_side must be a positive number of pixels, got {self.short_side}")
        if self.query_max_length < 2:
            problems.append(f"query_max_length must be >= 2, got {self.query_max_length}")
        if problems:
            raise ConfigError("invalid feature recipe: " + "; ".join(problems))

    @property
    def stride_seconds(self) -> float:
        """Seconds between window starts (sliding) or the nominal window period 1/rate (ego4d)."""
        if self.windowing == "sliding" and self.stride is not None:
            return float(self.stride)
        return 1.0 / float(self.windows_per_second)  # type: ignore[arg-type]

    @property
    def source_window_frames(self) -> int:
        return self.window_frames or self.frames_per_window

    def replace(self, **changes: Any) -> "FeatureRecipe":
        """A copy with ``changes`` (the name is dropped unless given: a changed recipe is no longer the named one)."""
        changes.setdefault("name", None)
        if changes.get("windowing") == "sliding" and "windows_per_second" not in changes and "stride" in changes:
            changes["windows_per_second"] = None
        if changes.get("windowing") == "ego4d":
            changes.setdefault("stride", None)
            changes.setdefault("window_frames", None)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Hash of the fields that change features (not the name): equal recipes give equal features."""
        data = {k: v for k, v in self.to_dict().items() if k != "name"}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_NAMED: dict[str, dict[str, Any]] = {
    "egovlpv2-mq": dict(mode="projected", frames_per_window=16, windowing="ego4d", windows_per_second=1.87),
    "egovlpv2-mq-backbone": dict(mode="backbone", frames_per_window=16, windowing="ego4d", windows_per_second=1.87),
    "egovlpv2-nlq": dict(mode="fusion", frames_per_window=4, windowing="ego4d", windows_per_second=1.87,
                         query_max_length=30, lowercase_query=True),
    "egovlpv2-nlq-dual": dict(mode="backbone", frames_per_window=4, windowing="ego4d", windows_per_second=1.87),
}


def list_recipes() -> list[str]:
    return sorted(_NAMED)


def get_recipe(name: str, **changes: Any) -> FeatureRecipe:
    """The named recipe, optionally with ``changes`` (which then make it unnamed)."""
    try:
        base = FeatureRecipe(**_NAMED[name], name=name)
    except KeyError:
        raise ConfigError(f"unknown feature recipe {name!r}; known: {', '.join(list_recipes())}") from None
    return base.replace(**changes) if changes else base
