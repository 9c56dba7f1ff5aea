"""Batched, de-duplicated embedding of texts and datasets, split across processes with Accelerate.

Every evaluation embeds each video and each text once; with several processes the dataset is sharded by Accelerate
and ``gather_for_metrics`` drops the padding duplicates, so results never depend on the number of processes.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from egokit.data.transforms import normalize_video


def tokenize_texts(tokenizer: Any, texts: Sequence[str], max_length: int | None, padding: str = "max_length"):
    """RoBERTa tokenisation: ``max_length`` padding (training/most evals) or ``longest`` (EgoMCQ queries)."""
    kwargs = dict(truncation=max_length is not None, return_tensors="pt")
    if padding == "max_length":
        kwargs.update(padding="max_length", max_length=max_length)
    else:
        kwargs.update(padding=True, max_length=max_length)
    enc = tokenizer(list(texts), **kwargs)
    return enc["input_ids"], enc["attention_mask"]


@torch.no_grad()
def encode_texts(model, tokenizer, texts: Sequence[str], *, max_length: int | None = None, batch_size: int = 256,
                 padding: str = "max_length", device=None, progress=None) -> torch.Tensor:
    """Projected dual-mode text embeddings (N, P) on CPU, in input order."""
    device = device or next(model.parameters()).device
    max_length = max_length or model.config.preprocess.max_text_length
    out = []
    for start in range(0, len(texts), batch_size):
        ids, mask = tokenize_texts(tokenizer, texts[start:start + batch_size], max_length, padding)
        out.append(model.encode_text(ids.to(device), mask.to(device)).float().cpu())
        if progress is not None:
            progress.advance(len(ids))
    return torch.cat(out) if out else torch.empty(0)


def prepare_video(video_uint8: torch.Tensor, model, device) -> torch.Tensor:
    """uint8 (..., F, 3, H, W) from a loader -> normalised float on the model's device (normalise on device)."""
    pre = model.config.preprocess
    dtype = next(model.parameters()).dtype
    return normalize_video(video_uint8.to(device, non_blocking=True), pre.mean, pre.std, dtype=dtype)


@torch.no_grad()
def map_dataset(accelerator, dataset: Dataset, fn: Callable[[dict], dict[str, torch.Tensor]], *, batch_size: int,
                num_workers: int = 0, collate_fn=None, progress=None) -> dict[str, torch.Tensor]:
    """Apply ``fn(batch) -> {name: tensor (B, ...)}`` over ``dataset`` on all processes; return full results in
    dataset order on every process. Items must carry an integer ``index`` (their dataset position)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_fn, pin_memory=accelerator.device.type == "cuda")
    loader = accelerator.prepare_data_loader(loader)
    chunks: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        result = fn(batch)
        result["index"] = batch["index"].to(accelerator.device)
        result = accelerator.gather_for_metrics(result)
        for key, value in result.items():
            chunks.setdefault(key, []).append(value.cpu())
        if progress is not None:
            progress.advance(len(result["index"]))
    merged = {k: torch.cat(v) for k, v in chunks.items()}
    if not merged:
        return merged
    order = torch.argsort(merged.pop("index"))
    return {k: v[order] for k, v in merged.items()}
