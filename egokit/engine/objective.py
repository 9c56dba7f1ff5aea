"""The EgoVLPv2 pretraining objective as one module, so DDP/Accelerate see the whole step in ``forward``.

Per step (spec §3): dual embeddings -> gathered with gradient -> EgoNCE on the global batch; MLM and VTM in fusion
mode. Work egokit does not repeat or move, relative to the official code:

* the lower (unfused) video blocks of the fusion passes run once per clip and are shared by MLM and VTM (the
  official code runs them twice); the dual pass cannot be shared (it uses a different CLS token);
* the lower (unfused) text layers are the same in dual and fusion mode: they run once, on the captions and their MLM
  view as one batch, and the caption states feed the dual pass and VTM (the official code runs them three times,
  each with its own vocabulary-sized embedding gradient);
* MLM logits are never gathered: each rank scales its local sum by the global number of masked tokens (with
  dynamic shapes the logits are computed at the masked positions only; with static shapes at a fixed number of
  slots per caption, by default every position, see below);
* raw pixels are never gathered: VTM pairs are drawn once for the global batch (identically on every rank from a
  per-step seed); the captions' lower-layer states (L x width per caption, with gradient) and masks are gathered,
  and with several processes either the video tokens after the unfused blocks (static shapes, below) or nothing
  more (each pair evaluated on the rank that owns its video). Pairs are drawn in the order one process would see
  the global batch (all positives, then all scene negatives), so W processes with local batch b draw exactly the
  pairs of one process with batch W*b. With one process this is the official sampler; with W processes the labels
  are balanced over the global batch rather than per rank.

Static shapes (``static_shapes=True``, the default): no step-dependent tensor shape and no host synchronisation,
so ``torch.compile(fullgraph=True)`` captures the whole step (forward, losses, backward) as one graph and CUDA
graphs can replay it. MLM scores a fixed number of slots per caption (``mlm_slots``; default every position, so
no masked token is ever dropped; with fewer slots the collator must cap the masked tokens per caption, see
``PretrainCollator(mlm_slots=...)``) and unused slots carry the ignore label. VTM scores exactly ``b`` pairs per
rank: the pairs of the slots of its own rows, with the video tokens after the unfused blocks gathered over ranks
(with gradient; one rank: nothing is gathered). The VTM draws are functions of the step's key and the slot
(:func:`egokit.losses.sample_vtm_pairs`); ``vtm_seed`` may be an int (eager use) or a 0-dim int64 tensor holding
``egokit.losses.vtm_key(seed)`` (compiled/CUDA-graphed steps, where an int would be baked in). ``static_shapes=
False`` keeps the earlier form (boolean indexing of masked tokens; each rank scores the pairs whose video it owns,
a number that varies per step) for comparison.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from egokit.distributed import gather_no_grad, gather_with_grad, world_info
from egokit.losses import egonce_loss, mlm_loss, sample_vtm_pairs, vtm_key

IGNORE_INDEX = -100


class PretrainObjective(nn.Module):
    def __init__(self, model: nn.Module, *, temperature: float = 0.05, weights: tuple[float, float, float] = (1, 1, 2),
                 use_verb: bool = True, use_noun: bool = True, doubled: bool = True, static_shapes: bool = True,
                 mlm_slots: int | None = None) -> None:
        super().__init__()
        if mlm_slots is not None and mlm_slots < 1:
            raise ValueError(f"mlm_slots must be a positive number of slots per caption, got {mlm_slots}")
        self.doubled = doubled
        self.model = model
        self.temperature = temperature
        self.w_egonce, self.w_mlm, self.w_vtm = weights
        self.use_verb, self.use_noun = use_verb, use_noun
        self.static_shapes = static_shapes
        self.mlm_slots = mlm_slots

    def forward(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                mlm_input_ids: torch.Tensor, mlm_labels: torch.Tensor, verb: torch.Tensor, noun: torch.Tensor,
                vtm_seed: int | torch.Tensor) -> dict[str, torch.Tensor]:
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
            if not shared:
                mlm_prefix = model.fusion_text_prefix(mlm_input_ids, attention_mask)
            fused = model.fuse(video_prefix, mlm_prefix, attention_mask)
            if self.static_shapes:
                text, labels = select_mlm_slots(fused.text, mlm_labels, self.mlm_slots)
            else:
                positions = mlm_labels != IGNORE_INDEX
                text, labels = fused.text[positions], mlm_labels[positions]
            count = _global_sum((labels != IGNORE_INDEX).sum())
            logits = model.mlm_head(text)
            local = mlm_loss(logits, labels, num_targets=count.clamp_min(1) / world)
            out["mlm"] = local
            total = total + self.w_mlm * local

        if self.w_vtm:
            n = b * world
            order = canonical_order(b, world, self.doubled, video.device)  # canonical position -> gathered row
            key = vtm_seed if isinstance(vtm_seed, torch.Tensor) else vtm_key(vtm_seed)
            sim = egonce.similarity.detach()[order][:, order]
            pairs = sample_vtm_pairs(sim, egonce.positive_mask[order][:, order], temperature=self.temperature,
                                     local_rows=slice(0, n), key=key)
            text_rows, video_rows, labels = order[pairs.text_index], order[pairs.video_index], pairs.labels
            if self.static_shapes:
                # The slots of this rank's rows: b pairs whatever was drawn (one rank: slots 0..n-1 in order).
                slots = _inverse(order)[rank * b:(rank + 1) * b] if world > 1 else slice(None)
                t_rows, v_rows, labels = text_rows[slots], video_rows[slots], labels[slots]
                videos = gather_with_grad(video_prefix)[v_rows]
                count = torch.full((), float(b), device=video.device)
            else:
                mine = (video_rows >= rank * b) & (video_rows < (rank + 1) * b)
                t_rows, labels = text_rows[mine], labels[mine]
                videos = video_prefix[video_rows[mine] - rank * b]
                count = mine.sum().float()  # stays on device: no host sync, no host->device copy
            mask = gather_no_grad(attention_mask)[t_rows]
            fused = model.fuse(videos, gather_with_grad(text_prefix)[t_rows], mask)
            logits = model.vtm_head(fused).float()
            ce = nn.functional.cross_entropy(logits, labels, reduction="sum")
            local = ce / (n / world)
            out["vtm"] = local
            total = total + self.w_vtm * local
            out["vtm_accuracy_sum"] = (logits.argmax(-1) == labels).float().sum().detach()
            out["vtm_pairs"] = count
        out["loss"] = total
        return out


def select_mlm_slots(text: torch.Tensor, labels: torch.Tensor, slots: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``slots`` masked positions of each caption, in position order, as fixed-shape (B, K, D) states
    and (B, K) labels (unused slots: :data:`IGNORE_INDEX`). ``slots=None`` (or >= L): every position, unchanged.
    A caption with more masked tokens than slots loses the last ones (the collator's cap prevents that)."""
    length = labels.shape[1]
    if slots is None or slots >= length:
        return text, labels
    index = torch.argsort((labels == IGNORE_INDEX).to(torch.uint8), dim=1, stable=True)[:, :slots]
    return text.gather(1, index[..., None].expand(-1, -1, text.shape[-1])), labels.gather(1, index)


def _inverse(order: torch.Tensor) -> torch.Tensor:
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.shape[0], device=order.device)
    return inverse

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
    if torch.distributed.is_available() and torch.distributed.is_initialized() and world_info()[1] > 1:
        from torch.distributed import _functional_collectives as fc  # traceable by torch.compile

        value = fc.all_reduce(value, "sum", torch.distributed.group.WORLD)
    return value
