"""UT-Egocentric QFVS in the official layout.

``<data>/video_frames/P0v*/*.jpg`` (sorted; every ``shot_frames`` = 5 consecutive images form one shot),
``<data>/[origin_data/]Query-Focused_Summaries/Oracle_Summaries/P0v/<c1>_<c2>_oracle.txt`` (1-based shot ids, one
per line), ``<data>/[origin_data/]Dense_per_shot_tags/P0v/P0v.txt`` (line s = comma-separated concepts of shot s)
and ``Tags.mat`` (48-concept binary vectors per shot, used by the semantic F1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from egokit.tasks.api import DataError

VIDEOS = ("P01", "P02", "P03", "P04")
#: Concept names the official prompts rename to plain words.
RENAME = {"Cupglass": "Glass", "Musicalinstrument": "Instrument", "Petsanimal": "Animal"}


@dataclass(frozen=True)
class Query:
    c1: str
    c2: str
    oracle: tuple[int, ...]  # 0-based shot indices

    def prompts(self) -> tuple[str, str, str]:
        """The official three prompts: concept 1, concept 2, both."""
        a, b = RENAME.get(self.c1, self.c1), RENAME.get(self.c2, self.c2)
        return f"There is a {a}", f"There is a {b}", f"There is a {a} and a {b}"


@dataclass(frozen=True)
class QFVSVideo:
    name: str
    shots: tuple[tuple[Path, ...], ...]
    shot_concepts: tuple[frozenset[str], ...]
    queries: tuple[Query, ...]

    @property
    def num_shots(self) -> int:
        return len(self.shots)

    def concept_labels(self, concept: str) -> list[float]:
        return [float(concept in c) for c in self.shot_concepts]


def _origin(data: Path, *parts: str) -> Path:
    for base in (data / "origin_data", data):
        if (base.joinpath(*parts)).exists():
            return base.joinpath(*parts)
    raise DataError(f"QFVS: {Path(*parts)} not found under {data} or {data / 'origin_data'}")


def load_video(data: str | Path, name: str, shot_frames: int = 5) -> QFVSVideo:
    """Parse one video (``P01``..``P04``) of the official layout."""
    data = Path(data)
    folders = sorted(p for p in (data / "video_frames").glob(f"{name}*") if p.is_dir())
    if not folders:
        raise DataError(f"QFVS: no frame folder {data}/video_frames/{name}*/ (expected e.g. {name}-moviepy/*.jpg)")
    frames = sorted(folders[0].glob("*.jpg"))
    n = len(frames) // shot_frames
    if n == 0:
        raise DataError(f"QFVS: {folders[0]} has {len(frames)} images, fewer than one shot of {shot_frames}")
    shots = tuple(tuple(frames[i * shot_frames:(i + 1) * shot_frames]) for i in range(n))
    dense = _origin(data, "Dense_per_shot_tags", name, f"{name}.txt")
    lines = dense.read_text().splitlines()
    if len(lines) < n:
        raise DataError(f"{dense}: {len(lines)} lines for {n} shots; the frames and the dense tags disagree")
    concepts = tuple(frozenset(c.strip() for c in line.split(",") if c.strip()) for line in lines[:n])
    queries = []
    for path in sorted(_origin(data, "Query-Focused_Summaries", "Oracle_Summaries", name).glob("*_oracle.txt")):
        parts = path.name[: -len("_oracle.txt")].split("_")
        if len(parts) != 2:
            raise DataError(f"{path}: oracle files are named <concept1>_<concept2>_oracle.txt")
        try:
            ids = [int(line) - 1 for line in path.read_text().split()]
        except ValueError:
            raise DataError(f"{path}: expected one integer shot id per line") from None
        bad = [i + 1 for i in ids if not 0 <= i < n]
        if bad or not ids:
            raise DataError(f"{path}: shot ids {bad[:5] or '(none)'} outside 1..{n}")
        queries.append(Query(parts[0], parts[1], tuple(sorted(set(ids)))))
    if not queries:
        raise DataError(f"QFVS: no oracle summaries for {name}")
    return QFVSVideo(name, shots, concepts, tuple(queries))
