"""Run logs: ``metrics.jsonl`` always, plus experiment trackers through Accelerate's tracker classes.

The trackers are Accelerate's (``accelerate.tracking``): TensorBoard by default, writing to ``RUN/tensorboard``;
``wandb``, ``mlflow`` and ``aim`` when a recipe names them (``log.with``) and their package is installed. Each is
given its own place: TensorBoard and Aim write under the run folder, W&B keeps its files in ``RUN/wandb``, MLflow
follows its own settings (``MLFLOW_TRACKING_URI``). A resumed run tells TensorBoard to drop what the interrupted
run logged after the checkpoint it resumes from, as :func:`truncate_metrics` does for ``metrics.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from egokit.errors import ConfigError

__all__ = ["DEFAULT_TRACKERS", "TRACKERS", "RunLogger", "check_trackers", "flat_config", "truncate_metrics"]

#: tracker name (as in ``log.with``) -> the package it needs
TRACKERS: dict[str, str] = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "aim": "aim"}
DEFAULT_TRACKERS: tuple[str, ...] = ("tensorboard",)


def _installed(name: str) -> bool:
    from accelerate.utils import is_aim_available, is_mlflow_available, is_tensorboard_available, is_wandb_available

    return {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available, "mlflow": is_mlflow_available,
            "aim": is_aim_available}[name]()


def check_trackers(names: Sequence[str], where: str = "log.with") -> list[str]:
    """``names`` without repeats, each a known tracker whose package is installed; otherwise a ConfigError naming
    the tracker and what to do."""
    out: list[str] = []
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"{where}: unknown tracker {name!r}; choose from {', '.join(TRACKERS)}")
        if not _installed(name):
            package = TRACKERS[name]
            need = " (version < 4)" if name == "aim" else ""
            raise ConfigError(f"{where}: the {name} tracker needs the {package!r} package{need}: `pip install "
                              f"{package}`, or remove {name} from {where}")
        if name not in out:
            out.append(name)
    return out


def _make_tracker(name: str, run_dir: Path, project: str, run_name: str, purge_step: int | None):
    from accelerate import tracking

    if name == "tensorboard":
        kwargs = {"purge_step": purge_step} if purge_step is not None else {}
        return tracking.TensorBoardTracker("tensorboard", str(run_dir), **kwargs)
    if name == "wandb":
        return tracking.WandBTracker(project, name=run_name, dir=str(run_dir))
    if name == "mlflow":
        return tracking.MLflowTracker(experiment_name=project, run_name=run_name)
    if name == "aim":
        return tracking.AimTracker(run_name, str(run_dir), experiment=project)
    raise ConfigError(f"unknown tracker {name!r}; choose from {', '.join(TRACKERS)}")


def flat_config(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested recipe as ``{"optim.lr": 3e-5, ...}`` with plain values (what every tracker accepts as
    hyperparameters): lists and other objects become text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[f"{prefix}{key}"] = value
        else:
            out[f"{prefix}{key}"] = json.dumps(value, default=str)
    return out


class RunLogger:
    """``RUN/metrics.jsonl`` (one JSON object per line, appended) and the experiment trackers.

    ``trackers``: names from :data:`TRACKERS`, checked with :func:`check_trackers`; ``None``: TensorBoard when
    installed. ``config`` (flat, see :func:`flat_config`) goes to the trackers that keep hyperparameters (W&B,
    MLflow, Aim; the recipe is in ``RUN/recipe.json`` for TensorBoard users). ``resumed_step``: the run resumes
    from that step's checkpoint, so TensorBoard discards events the interrupted run logged after it. Only an
    ``enabled`` logger (the main process) writes anything."""

    def __init__(self, run_dir: Path, enabled: bool = True, *, trackers: Sequence[str] | None = None,
                 project: str = "egokit", config: dict[str, Any] | None = None,
                 resumed_step: int | None = None) -> None:
        self.enabled = enabled
        self._jsonl = None
        self.trackers: list[Any] = []
        if not enabled:
            return
        run_dir = Path(run_dir)
        if trackers is None:
            names = [n for n in DEFAULT_TRACKERS if _installed(n)]
        else:
            names = check_trackers(trackers)
        run_dir.mkdir(parents=True, exist_ok=True)
        purge = resumed_step + 1 if resumed_step is not None else None
        try:
            for name in names:
                tracker = _make_tracker(name, run_dir, project, run_dir.resolve().name, purge)
                tracker.start()
                self.trackers.append(tracker)
                if config and name != "tensorboard":  # Accelerate's TensorBoard writes them as a separate run
                    tracker.store_init_configuration(config)
            self._jsonl = open(run_dir / "metrics.jsonl", "a", buffering=1, encoding="utf-8")
        except BaseException:
            self.close()
            raise

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._jsonl.write(json.dumps({"step": step, **values}, default=float) + "\n")
        scalars = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if scalars:
            for tracker in self.trackers:
                tracker.log(scalars, step=step)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.finish()


def truncate_metrics(path: Path, step: int) -> int:
    """Drop the records of ``path`` (``metrics.jsonl``) logged after ``step``, the step a run resumes from, so
    the steps it replays appear once; the file is replaced atomically. A last line cut short by a kill is dropped
    too; other lines that are not records are kept. Returns how many lines were dropped."""
    from egokit.io import write_bytes_atomic

    path = Path(path)
    if not path.is_file():
        return 0
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    lines = text.splitlines(keepends=True)
    kept = []
    for index, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            if index == len(lines) - 1 and not line.endswith("\n"):
                continue  # half-written by a killed run
            kept.append(line)
            continue
        later = isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step
        if not later:
            kept.append(line if line.endswith("\n") else line + "\n")
    new = "".join(kept)
    if new != text:
        write_bytes_atomic(path, new.encode("utf-8", "surrogateescape"))
    return len(lines) - len(kept)
