"""Strict vs lax handling of unreadable samples, with failures reported instead of hidden.

The official 'lax' mode silently trains on black frames (spec §4.6, §8.1 item 16). Here 'lax' replaces a failed
sample by another *real* sample (a deterministic replacement index) and records why, and 'strict' re-raises
the :class:`~egokit.errors.DataError`, whose message names the file and time range. DataLoader workers are separate
processes, so each failure travels inside the returned item (``item['_failures']``), the collator keeps the
list in the batch, and the training loop feeds batches to a :class:`FailureReport`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from torch.utils.data import Dataset, default_collate

from egokit.errors import ConfigError, DataError

__all__ = ["Failure", "FailureReport", "RobustDataset", "collate_with_failures"]

Policy = Literal["strict", "lax"]
FAILURES_KEY = "_failures"


class Failure(NamedTuple):
    """One failed sample: its dataset index, the error class name and the error message (names file and range)."""

    index: int
    reason: str
    message: str


class RobustDataset(Dataset):
    """Wrap a map-style dataset with a bad-data policy.

    ``strict`` re-raises the first :class:`DataError`. ``lax`` retries with replacement indices drawn from
    ``(seed, epoch, index, attempt)`` (reproducible in any worker) up to ``max_retries`` times, and adds the
    failures to the returned item under ``'_failures'``. Other exceptions (bugs) always propagate.
    """

    def __init__(self, dataset: Dataset, policy: Policy = "strict", max_retries: int = 10, seed: int = 0) -> None:
        if policy not in ("strict", "lax"):
            raise ConfigError(f"data policy must be 'strict' or 'lax', got {policy!r}")
        if max_retries < 1:
            raise ConfigError(f"max_retries must be >= 1, got {max_retries}")
        self.dataset = dataset
        self.policy = policy
        self.max_retries = max_retries
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        """Change the replacement draws per epoch and forward the epoch to the wrapped dataset."""
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int) -> Any:
        if self.policy == "strict":
            return self.dataset[index]
        failures: list[Failure] = []
        current = int(index)
        for attempt in range(self.max_retries + 1):
            try:
                item = self.dataset[current]
            except DataError as exc:
                failures.append(Failure(current, type(exc).__name__, str(exc)))
                rng = np.random.default_rng([self.seed, self.epoch, int(index), attempt])
                current = int(rng.integers(len(self)))
                continue
            if failures:
                if not isinstance(item, dict):
                    raise TypeError(f"lax policy needs dict items to carry failures, got {type(item).__name__}")
                item = {**item, FAILURES_KEY: [*item.get(FAILURES_KEY, ()), *failures]}
            return item
        raise DataError(
            f"{len(failures)} samples in a row failed to load starting at index {index} (policy 'lax', "
            f"max_retries={self.max_retries}); last error: {failures[-1].message}; check the data paths"
        )


def collate_with_failures(
    items: Sequence[Mapping[str, Any]], collate: Callable[[list[Any]], Any] = default_collate
) -> dict[str, Any]:
    """Collate dict items with ``collate`` while concatenating their ``'_failures'`` lists (for lax datasets)."""
    failures = [f for item in items for f in item.get(FAILURES_KEY, ())]
    batch = collate([{k: v for k, v in item.items() if k != FAILURES_KEY} for item in items])
    batch[FAILURES_KEY] = failures
    return batch


class FailureReport:
    """Accumulates failures from batches (main process) and summarises them per reason at the end of a run."""

    def __init__(self, max_examples: int = 3) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.max_examples = max_examples

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, failure: Failure | Sequence[Any]) -> None:
        failure = Failure(*failure)
        self.counts[failure.reason] += 1
        examples = self.examples.setdefault(failure.reason, [])
        if len(examples) < self.max_examples and failure.message not in examples:
            examples.append(failure.message)

    def update(self, batch: Mapping[str, Any]) -> None:
        """Record the failures a batch carries (no-op for batches without the key)."""
        for failure in batch.get(FAILURES_KEY, ()):
            self.add(failure)

    def summary(self) -> str:
        if not self.total:
            return "0 samples failed"
        parts = ", ".join(f"{reason} x {count}" for reason, count in self.counts.most_common())
        return f"{self.total} samples failed: {parts}"

    def to_table(self) -> Any:
        """A rich table with one row per reason: count and example messages."""
        from rich.table import Table

        table = Table(title=self.summary())
        table.add_column("reason")
        table.add_column("count", justify="right")
        table.add_column("examples")
        for reason, count in self.counts.most_common():
            table.add_row(reason, str(count), "\n".join(self.examples.get(reason, [])))
        return table
