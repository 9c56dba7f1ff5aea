"""The QFVS head as the feature-head family uses it: build, loss and decoding of :class:`SummaryHead`.

An item is one query of one video: ``feats``, the shot features (n_shots, width) of its three prompts (concept 1,
concept 2, both), and ``labels``, the shots that carry concept 1, concept 2 (dense per-shot tags) and the oracle
summary. The loss of a query is the sum of the three BCE terms (the official objective); a batch averages its
queries. Decoding keeps the top ``max(1, int(summary_ratio * n_shots))`` shots by the "both" prompt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from egokit.tasks.api import HeadRegistry, HeadSpec, SummaryHead, SummaryHeadConfig

__all__ = ["HEADS", "head_scores", "query_items"]


def _segments(x: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, ...) -> (n_seg, length, ...) zero-padded, and the boolean padding mask (n_seg, length)."""
    n = x.shape[0]
    n_seg = -(-n // length)
    padded = x.new_zeros((n_seg * length, *x.shape[1:]))
    padded[:n] = x
    pad = torch.ones(n_seg * length, dtype=torch.bool, device=x.device)
    pad[:n] = False
    return padded.view(n_seg, length, *x.shape[1:]), pad.view(n_seg, length)


def head_scores(head: SummaryHead, feats: torch.Tensor, length: int) -> torch.Tensor:
    """(n_shots,) logits of one video's shot features, scored in fixed-length segments of ``length`` shots."""
    dev = next(head.parameters()).device
    x, pad = _segments(feats.to(dev), length)
    return head(x, pad).reshape(-1)[: feats.shape[0]]


def query_items(video, feats: dict[str, torch.Tensor]) -> list[dict]:
    """One training/evaluation item per query of ``video`` (a :class:`~egokit_qfvs.data.QFVSVideo`)."""
    items = []
    for q in video.queries:
        oracle = torch.zeros(video.num_shots)
        oracle[list(q.oracle)] = 1
        labels = [torch.tensor(video.concept_labels(q.c1)), torch.tensor(video.concept_labels(q.c2)), oracle]
        items.append({"feats": [feats[p] for p in q.prompts()], "labels": labels})
    return items


def _build(options, split) -> SummaryHead:
    width = split.dataset[0]["feats"][0].shape[1]
    return SummaryHead(SummaryHeadConfig(width=width, nhead=options.nhead, ff_dim=options.ff_dim,
                                         max_shots=options.segment_shots))


def _loss(head: SummaryHead, batch: list[dict], options) -> torch.Tensor:
    losses = [sum(F.binary_cross_entropy_with_logits(head_scores(head, f, options.segment_shots), y.float())
                  for f, y in zip(item["feats"], item["labels"])) for item in batch]
    return torch.stack(losses).mean()


def _predict(head: SummaryHead, batch: list[dict], split, options) -> list[list[int]]:
    out = []
    for item in batch:
        scores = head_scores(head, item["feats"][2], options.segment_shots).cpu()
        k = max(1, int(len(scores) * options.summary_ratio))
        out.append(torch.topk(scores, k).indices.tolist())
    return out


HEADS = HeadRegistry(HeadSpec(
    "summary", SummaryHead, _build, _loss, _predict,
    description="the official QFVS Transformer_Encoder: 2 post-LN layers over the shot sequence, one logit per shot"))
