"""Text side of pretraining: tokenisation, masked-language-model corruption and the doubled-batch collator.

Follows the official pipeline (spec §3.1, §3.3): narrations are tokenised verbatim to 15 tokens with
``padding='max_length'``; 15 % of non-special tokens are selected for MLM, of which 80 % become ``<mask>``, 10 % a
uniformly random id and 10 % stay unchanged (``DataCollatorForLanguageModeling`` semantics).

Reproducibility: the MLM corruption of each row is drawn from a generator derived from
``(collator seed, epoch, dataset index, slot)``, which every item carries. It therefore does not depend on which
DataLoader worker built the batch, on the batch composition or on how many steps ran before a resume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from egokit.errors import ConfigError, DataError

__all__ = ["IGNORE_INDEX", "MaskSpec", "PretrainCollator", "mask_tokens", "tokenize", "row_generator"]

#: label value that ``cross_entropy(ignore_index=...)`` skips (positions that were not selected for MLM)
IGNORE_INDEX = -100


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int = 15) -> dict[str, torch.Tensor]:
    """Tokenise ``texts`` to fixed-length ``input_ids``/``attention_mask`` (padding='max_length', truncation)."""
    if isinstance(texts, str):
        raise TypeError("tokenize() takes a sequence of texts, not a single string")
    encoded = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


@dataclass(frozen=True)
class MaskSpec:
    """What MLM corruption needs from a tokenizer: the mask id, the id range for random tokens, special ids."""

    mask_token_id: int
    vocab_size: int
    special_ids: tuple[int, ...]

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> MaskSpec:
        if tokenizer.mask_token_id is None:
            raise ConfigError(f"tokenizer {type(tokenizer).__name__} has no mask token; MLM needs one")
        # len(tokenizer) includes added tokens, as transformers' collator uses for random replacements
        return cls(int(tokenizer.mask_token_id), len(tokenizer), tuple(sorted(set(tokenizer.all_special_ids))))

    @classmethod
    def coerce(cls, value: Any) -> MaskSpec:
        if isinstance(value, MaskSpec):
            return value
        if isinstance(value, tuple) and len(value) == 3:
            mask_id, vocab, special = value
            return cls(int(mask_id), int(vocab), tuple(int(i) for i in special))
        return cls.from_tokenizer(value)


def mask_tokens(
    input_ids: torch.Tensor,
    tokenizer: Any,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
    max_per_row: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(mlm_input_ids, labels)`` for a (N, L) id tensor, BERT-style.

    ``tokenizer`` is a tokenizer, a :class:`MaskSpec` or a ``(mask_token_id, vocab_size, special_ids)`` tuple.
    Special tokens (including padding) are never selected; labels hold the original id at selected positions
    and :data:`IGNORE_INDEX` elsewhere. ``input_ids`` is not modified. ``max_per_row`` caps the selected tokens
    per row (BERT's ``max_predictions_per_seq``): of a row's selected tokens, those with the smallest selection
    draws are kept, the others are left unchanged and unlabelled.
    """
    spec = MaskSpec.coerce(tokenizer)
    shape = input_ids.shape
    uniforms = torch.rand((3, *shape), generator=generator)
    random_ids = torch.randint(spec.vocab_size, shape, generator=generator, dtype=torch.long)
    return _apply_mask(input_ids, spec, probability, uniforms, random_ids, max_per_row)


def _apply_mask(
    input_ids: torch.Tensor, spec: MaskSpec, probability: float, uniforms: torch.Tensor, random_ids: torch.Tensor,
    max_per_row: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if not 0.0 <= probability <= 1.0:
        raise ConfigError(f"mlm probability must be in [0, 1], got {probability}")
    special = torch.isin(input_ids, torch.tensor(spec.special_ids, dtype=input_ids.dtype))
    selected = (uniforms[0] < probability) & ~special
    if max_per_row is not None and max_per_row < input_ids.shape[-1]:
        draws = torch.where(selected, uniforms[0], torch.full_like(uniforms[0], 2.0))
        rank = draws.argsort(dim=-1, stable=True).argsort(dim=-1, stable=True)  # 0 = smallest draw of the row
        selected = selected & (rank < max_per_row)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    to_mask = selected & (uniforms[1] < 0.8)
    to_random = selected & ~to_mask & (uniforms[2] < 0.5)  # half of the remaining 20 %
    corrupted = torch.where(to_mask, torch.full_like(input_ids, spec.mask_token_id), input_ids)
    corrupted = torch.where(to_random, random_ids.to(input_ids.dtype), corrupted)
    return corrupted, labels


def row_generator(seed: int, *key: int) -> torch.Generator:
    """A torch generator determined by ``(seed, *key)`` only, so any process reproduces the same stream."""
    state = np.random.SeedSequence([int(seed), *(int(k) for k in key)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


class PretrainCollator:
    """Collate EgoClip items into the doubled pretraining batch of spec §3.1.

    Rows ``0..B-1`` are the positives and ``B..2B-1`` their scene-aware negatives (same order) for ``video``,
    ``text``, ``verb`` and ``noun``; without negatives the batch is not doubled. Texts are tokenised to
    ``max_length`` and MLM-corrupted row by row with :func:`row_generator` keyed on ``(seed, epoch, index,
    slot)`` (slot 0 = positive, 1 = negative), so it is picklable, stateless and worker-independent.
    ``mlm_slots`` caps the masked tokens per caption (see :func:`mask_tokens`; ``None``: no cap, the official
    masking), to match ``PretrainObjective(mlm_slots=...)``'s fixed number of scored slots.
    Failures recorded by :class:`~egokit.data.robust.RobustDataset` travel on as ``batch['_failures']``.
    """

    def __init__(self, tokenizer: Any, max_length: int = 15, mlm_probability: float = 0.15, seed: int = 0,
                 mlm_slots: int | None = None) -> None:
        if max_length < 3:
            raise ConfigError(f"max_length must leave room for <s>, a token and </s>; got {max_length}")
        if mlm_slots is not None and mlm_slots < 1:
            raise ConfigError(f"data.mlm_slots must be a positive number of masked tokens per caption (or null), "
                              f"got {mlm_slots}")
        self.mlm_slots = mlm_slots
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.mlm_probability = mlm_probability
        self.seed = seed
        self.spec = MaskSpec.from_tokenizer(tokenizer)

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        with_neg = "neg_video" in items[0]
        for i, item in enumerate(items):
            missing = [k for k in ("video", "text", "verb", "noun", "index", "epoch") if k not in item]
            if with_neg:
                missing += [k for k in ("neg_video", "neg_text", "neg_verb", "neg_noun") if k not in item]
            elif "neg_video" in item:
                missing.append("(no negatives, like item 0)")
            if missing:
                raise DataError(f"batch item {i} lacks {', '.join(missing)}; PretrainCollator expects EgoClip items")
        prefixes = ("", "neg_") if with_neg else ("",)
        texts = [item[p + "text"] for p in prefixes for item in items]
        keys = [(int(item["epoch"]), int(item["index"]), slot) for slot, _ in enumerate(prefixes) for item in items]
        tokens = tokenize(self.tokenizer, texts, self.max_length)
        mlm_ids, mlm_labels = self._mask(tokens["input_ids"], keys)
        return {
            "video": torch.stack([item[p + "video"] for p in prefixes for item in items]),
            "text": texts,
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "mlm_input_ids": mlm_ids,
            "mlm_labels": mlm_labels,
            "verb": torch.stack([torch.as_tensor(item[p + "verb"]) for p in prefixes for item in items]),
            "noun": torch.stack([torch.as_tensor(item[p + "noun"]) for p in prefixes for item in items]),
            "index": torch.tensor([int(item["index"]) for item in items]),
            "_failures": [f for item in items for f in item.get("_failures", ())],
        }

    def _mask(self, input_ids: torch.Tensor, keys: Sequence[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        length = input_ids.shape[1]
        uniforms = torch.empty((3, *input_ids.shape))
        random_ids = torch.empty(input_ids.shape, dtype=torch.long)
        for row, key in enumerate(keys):
            gen = row_generator(self.seed, *key)
            uniforms[:, row] = torch.rand((3, length), generator=gen)
            random_ids[row] = torch.randint(self.spec.vocab_size, (length,), generator=gen)
        return _apply_mask(input_ids, self.spec, self.mlm_probability, uniforms, random_ids, self.mlm_slots)
