"""Training modules the task families wrap a model in (the loss is computed in ``forward``)."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from egokit.tasks.retrieval import encode_clips

__all__ = ["DualEncoderObjective"]


class DualEncoderObjective(nn.Module):
    """``forward(batch) -> {"loss"}``: both towers, then ``loss(text, video, extras)`` on the embeddings
    all-gathered *with gradient* inside ``forward`` (DDP sees the whole computation; every process computes the
    loss of the global batch, as the official trainers do)."""

    _INPUTS = ("video", "input_ids", "attention_mask", "index")

    def __init__(self, model, loss: Callable) -> None:
        super().__init__()
        self.model, self._loss = model, loss

    def forward(self, batch: dict) -> dict:
        from egokit.distributed import gather_no_grad, gather_with_grad

        device = next(self.model.parameters()).device
        video = encode_clips(self.model, batch["video"])
        text = self.model.encode_text(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        extras = {k: gather_no_grad(v.to(device)) for k, v in batch.items() if k not in self._INPUTS}
        return {"loss": self._loss(gather_with_grad(text), gather_with_grad(video), extras)}
