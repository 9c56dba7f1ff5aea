"""Query-conditioned shot scores in fusion mode.

The query's text prefix (the unfused text layers) is computed once and shared by every shot; each batch of shots
goes through the unfused video blocks once, then the fused layers with the query. Two scorers:

* ``vtm``: the video-text matching probability (class 1) of each shot, independent of its neighbours;
* ``qfvs``: the fused video CLS through ``cross_modal_video_transform`` (the official QFVS shot feature), and the
  QFVS summarisation head over the whole sequence of shots (sigmoid of its logits), so context matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from egokit.engine.features import tokenize_texts


@dataclass
class QueryPrefix:
    """The query's text states after the unfused layers (1, L, d) and its attention mask (1, L)."""

    states: torch.Tensor
    mask: torch.Tensor


@torch.no_grad()
def encode_query(model, tokenizer, text: str, max_length: int | None = None) -> QueryPrefix:
    device = next(model.parameters()).device
    max_length = max_length or model.config.preprocess.max_text_length
    ids, mask = tokenize_texts(tokenizer, [text.strip().lower()], max_length, padding="longest")
    ids, mask = ids.to(device), mask.to(device)
    return QueryPrefix(model.fusion_text_prefix(ids, mask), mask)


def fuse_with_query(model, video_prefix: torch.Tensor, query: QueryPrefix):
    """Fused outputs of ``B`` shots (their video prefixes) with one query."""
    b = video_prefix.shape[0]
    states = query.states.expand(b, -1, -1)
    mask = query.mask.expand(b, -1)
    return model.fuse(video_prefix, states, mask)


def shot_features(model, fused) -> torch.Tensor:
    """(B, d) query-conditioned shot features, as the official QFVS feature extractor."""
    return model.cross_modal_video_transform(fused.video_cls)


def vtm_probability(model, fused) -> torch.Tensor:
    """(B,) probability that each shot matches the query."""
    return model.vtm_head(fused).float().softmax(-1)[:, 1]
