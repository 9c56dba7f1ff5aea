"""Deterministic, resumable, rank-aware batch sampling.

The global batch of step ``s`` in epoch ``e`` is a fixed slice of a permutation seeded by ``(seed, e)``; rank ``r``
takes its contiguous part. So (1) a run resumed at step ``s`` sees exactly the batches it would have seen, and
(2) W processes with local batch b see, together and in rank order, the same samples as 1 process with batch W*b:
the property the distributed-equivalence test relies on.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import Sampler


class ResumableBatchSampler(Sampler[list[int]]):
    def __init__(self, num_samples: int, batch_size: int, *, seed: int = 0, shuffle: bool = True, rank: int = 0,
                 world_size: int = 1) -> None:
        if num_samples < batch_size * world_size:
            raise ValueError(f"dataset of {num_samples} samples is smaller than one global batch "
                             f"({world_size} x {batch_size}); lower data.batch_size")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.seed, self.shuffle, self.rank, self.world_size = seed, shuffle, rank, world_size
        self.epoch, self.start_step = 0, 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def steps_per_epoch(self) -> int:
        return self.num_samples // self.global_batch  # drop the last partial global batch

    def set_position(self, epoch: int, step_in_epoch: int = 0) -> None:
        self.epoch, self.start_step = int(epoch), int(step_in_epoch)

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)

    def __len__(self) -> int:
        return self.steps_per_epoch() - self.start_step

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order(self.epoch)
        for step in range(self.start_step, self.steps_per_epoch()):
            lo = step * self.global_batch + self.rank * self.batch_size
            yield order[lo:lo + self.batch_size].tolist()
