"""The EgoVLPv2 pretraining objective as one module, so DDP/Accelerate see the whole step in ``forward``.

Per step (spec §3): dual embeddings -> gathered with gradient -> EgoNCE on the global batch; MLM and VTM in fusion
mode. Work egokit does not repeat or move, relative to the official code:

* the lower (unfused) video blocks of the fusion passes run once per clip and are shared by MLM and VTM (the
  official code runs them twice); the dual pass cannot be shared (it uses a different CLS token);
* the lower (unfused) text layers are the same in dual and fusion mode: they run once, on the captions and their MLM
  view as one batch, and the caption states feed the dual pass and VTM (the official code runs them three times,
  each with its own vocabulary-sized embedding gradient);
* MLM logits are computed only at masked positions (~15 % of tokens) and never gathered: each rank scales its local
  sum by the global number of masked tokens;
* raw pixels are never gathered: VTM pairs are drawn once for the global batch (identically on every rank from a
  per-step seed) and each pair is evaluated on the rank that owns its video; only the captions' lower-layer states
  (L x width per caption, with gradient) and masks are gathered. Pairs are drawn in the order one process would see
  the global batch (all positives, then all scene negatives), so W processes with local batch b draw exactly the
  pairs of one process with batch W*b. With one process this is the official sampler; with W processes the labels
  are balanced over the global batch rather than per rank.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from egokit.distributed import gather_no_grad, gather_with_grad, world_info
from egokit.losses import egonce_loss, mlm_loss, sample_vtm_pairs


class PretrainObjective(nn.Module):
    def __init__(self, model: nn.Module, *, temperature: float = 0.05, weights: tuple[float, float, float] = (1, 1, 2),
                 use_verb: bool = True, use_noun: bool = True, doubled: bool = True) -> None:
        super().__init__()
        self.doubled = doubled
        self.model = model
        self.temperature = temperature
        self.w_egonce, self.w_mlm, self.w_vtm = weights
        self.use_verb, self.use_noun = use_verb, use_noun

    def forward(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                mlm_input_ids: torch.Tensor, mlm_labels: torch.Tensor, verb: torch.Tensor, noun: torch.Tensor,
                vtm_seed: int) -> dict[str, torch.Tensor]:
        model = self.model
        rank, world = world_info()
        b = video.shape[0]
        # The unfused text layers are the same in dual and fusion mode: run them once, on the captions and their
        # MLM view together, and reuse the caption states for VTM (one embedding backward instead of three).
        shared = self.w_mlm and mlm_input_ids.shape == input_ids.shape
        if shared:
            prefix = model.fusion_text_prefix(torch.cat([input_ids, mlm_input_ids]),
                                              torch.cat([attention_mask, attention_mask]))
            text_prefix, mlm_prefix = prefix.split(input_ids.shape[0])
        else:
            text_prefix = model.fusion_text_prefix(input_ids, attention_mask)
        text_emb = model.encode_text_prefix(text_prefix, attention_mask)
        video_emb = model.encode_video(video)
        egonce = egonce_loss(gather_with_grad(text_emb), gather_with_grad(video_emb),
                             gather_no_grad(verb) if self.use_verb else None,
                             gather_no_grad(noun) if self.use_noun else None, temperature=self.temperature)
        out = {"egonce": egonce.loss}
        total = self.w_egonce * egonce.loss
        video_prefix = model.fusion_video_prefix(video) if (self.w_mlm or self.w_vtm) else None

        if self.w_mlm:
            positions = mlm_labels != -100
            count = _global_sum(positions.sum())
            if not shared:
                mlm_prefix = model.fusion_text_prefix(mlm_input_ids, attention_mask)
            fused = model.fuse(video_prefix, mlm_prefix, attention_mask)
            logits = model.mlm_head(fused.text[positions])
            local = mlm_loss(logits, mlm_labels[positions], num_targets=count.clamp_min(1) / world)
            out["mlm"] = local
            total = total + self.w_mlm * local

        if self.w_vtm:
            n = b * world
            order = canonical_order(b, world, self.doubled, video.device)  # canonical position -> gathered row
            generator = torch.Generator(device=video.device).manual_seed(int(vtm_seed))
            sim = egonce.similarity.detach()[order][:, order]
            pairs = sample_vtm_pairs(sim, egonce.positive_mask[order][:, order], temperature=self.temperature,
                                     local_rows=slice(0, n), generator=generator)
            pairs = pairs._replace(text_index=order[pairs.text_index], video_index=order[pairs.video_index])
            mine = (pairs.video_index >= rank * b) & (pairs.video_index < (rank + 1) * b)
            v_idx = pairs.video_index[mine] - rank * b
            t_idx = pairs.text_index[mine]
            mask = gather_no_grad(attention_mask)[t_idx]
            fused = model.fuse(video_prefix[v_idx], gather_with_grad(text_prefix)[t_idx], mask)
            logits = model.vtm_head(fused).float()
            ce = nn.functional.cross_entropy(logits, pairs.labels[mine], reduction="sum")
            local = ce / (n / world)
            out["vtm"] = local
            total = total + self.w_vtm * local
            out["vtm_accuracy_sum"] = (logits.argmax(-1) == pairs.labels[mine]).float().sum().detach()
            out["vtm_pairs"] = mine.sum().float()  # stays on device: no host sync, no host->device copy
        out["loss"] = total
        return out


def canonical_order(local_batch: int, world: int, doubled: bool, device=None) -> torch.Tensor:
    """Gathered-row index of each position of the single-process global batch.

    Each rank's batch is [its positives, their scene negatives]; gathered rank-major that interleaves positives and
    negatives, whereas one process holding the whole global batch has all positives first.
    """
    rows = torch.arange(local_batch * world, device=device)
    if not doubled or world == 1:
        return rows
    half = local_batch // 2
    rank, slot = rows // local_batch, rows % local_batch
    positive = slot < half
    canonical = torch.where(positive, rank * half + slot, world * half + rank * half + slot - half)
    order = torch.empty_like(rows)
    order[canonical] = rows
    return order


def _global_sum(value: torch.Tensor) -> torch.Tensor:
    value = value.detach().float()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        value = value.clone()
        torch.distributed.all_reduce(value)
    return value
