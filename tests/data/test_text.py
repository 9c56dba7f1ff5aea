from __future__ import annotations

import math

import pytest
import torch

from egokit.data.text import IGNORE_INDEX, MaskSpec, PretrainCollator, mask_tokens, tokenize
from egokit.tokenizer import train_bpe_tokenizer

SPEC = MaskSpec(mask_token_id=4, vocab_size=300, special_ids=(0, 1, 2, 3, 4))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    texts = ["#C C picks up the red cup", "#C C puts down the blue box", "#C C pushes the green ball away"] * 3
    return train_bpe_tokenizer(texts, tmp_path_factory.mktemp("tok") / "t", vocab_size=350)


def _within(observed: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_tokenize_fixed_length(tokenizer) -> None:
    out = tokenize(tokenizer, ["#C C picks up the red cup", "#C C"], max_length=15)
    assert out["input_ids"].shape == out["attention_mask"].shape == (2, 15)
    assert out["input_ids"][1, out["attention_mask"][1] == 0].eq(tokenizer.pad_token_id).all()
    with pytest.raises(TypeError):
        tokenize(tokenizer, "one string")


def test_mlm_statistics() -> None:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, SPEC.vocab_size, (6000, 15), generator=gen)
    ids[:, 0], ids[:, 10], ids[:, 11:] = 0, 2, 1  # <s> ... </s> <pad>...
    ids[::7, 5] = 3  # some <unk>
    mlm, labels = mask_tokens(ids, SPEC, 0.15, generator=torch.Generator().manual_seed(1))
    special = torch.isin(ids, torch.tensor(SPEC.special_ids))
    selected = labels != IGNORE_INDEX
    assert not (selected & special).any()
    assert torch.equal(mlm[special], ids[special])
    assert torch.equal(labels[selected], ids[selected])
    n_candidates = int((~special).sum())
    n_sel = int(selected.sum())
    assert _within(n_sel, n_candidates, 0.15)
    masked = int((mlm[selected] == SPEC.mask_token_id).sum())
    unchanged = int((mlm[selected] == ids[selected]).sum())
    random = n_sel - masked - unchanged
    assert _within(masked, n_sel, 0.8)
    # a random replacement equals the original with probability 1/V, counted as unchanged
    assert _within(random, n_sel, 0.1 * (1 - 1 / SPEC.vocab_size))
    assert _within(unchanged, n_sel, 0.1 + 0.1 / SPEC.vocab_size)
    assert mlm.min() >= 0 and mlm.max() < SPEC.vocab_size
    assert not ((mlm != ids) & ~selected).any()


def test_mlm_deterministic_and_accepts_tuple_spec(tokenizer) -> None:
    ids = tokenize(tokenizer, ["#C C picks up the red cup"] * 8)["input_ids"]
    a = mask_tokens(ids, tokenizer, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(ids, (tokenizer.mask_token_id, len(tokenizer), tokenizer.all_special_ids), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def _item(i: int, neg: bool = True) -> dict:
    item = {
        "video": torch.full((2, 3, 4, 4), i, dtype=torch.uint8),
        "text": f"#C C picks up the red cup {i}",
        "verb": torch.tensor([float(i), 0.0]),
        "noun": torch.tensor([0.0, float(i)]),
        "index": i,
        "epoch": 0,
    }
    if neg:
        item.update(
            neg_video=torch.full((2, 3, 4, 4), 100 + i, dtype=torch.uint8),
            neg_text=f"#C C puts down the blue box {i}",
            neg_verb=torch.tensor([100.0 + i, 0.0]),
            neg_noun=torch.tensor([0.0, 100.0 + i]),
        )
    return item


def test_collator_doubles_in_official_order(tokenizer) -> None:
    collate = PretrainCollator(tokenizer, max_length=15, seed=5)
    batch = collate([_item(i) for i in range(3)])
    assert batch["video"].shape == (6, 2, 3, 4, 4)
    assert batch["video"][:, 0, 0, 0, 0].tolist() == [0, 1, 2, 100, 101, 102]
    assert batch["verb"][:, 0].tolist() == [0, 1, 2, 100, 101, 102]
    assert batch["noun"][:, 1].tolist() == [0, 1, 2, 100, 101, 102]
    assert batch["text"][3] == "#C C puts down the blue box 0"
    for key in ("input_ids", "attention_mask", "mlm_input_ids", "mlm_labels"):
        assert batch[key].shape == (6, 15)
    assert torch.equal(batch["input_ids"], tokenize(tokenizer, batch["text"])["input_ids"])
    assert batch["_failures"] == []


def test_collator_mlm_reproducible_per_item(tokenizer) -> None:
    collate = PretrainCollator(tokenizer, mlm_probability=0.5, seed=5)
    items = [_item(i) for i in range(6)]
    full = collate(items)
    part = collate([items[4], items[2]])  # other batch composition, as in another worker or after resume
    assert torch.equal(part["mlm_input_ids"][0], full["mlm_input_ids"][4])
    assert torch.equal(part["mlm_labels"][3], full["mlm_labels"][8])  # negative of item 2
    assert (full["mlm_labels"] != IGNORE_INDEX).any()
    other_seed = PretrainCollator(tokenizer, mlm_probability=0.5, seed=6)(items)
    assert not torch.equal(other_seed["mlm_input_ids"], full["mlm_input_ids"])


def test_collator_without_negatives_and_with_failures(tokenizer) -> None:
    items = [_item(i, neg=False) for i in range(2)]
    items[1]["_failures"] = [(7, "VideoDecodeError", "bad.mp4")]
    batch = PretrainCollator(tokenizer)(items)
    assert batch["video"].shape[0] == 2 and batch["input_ids"].shape == (2, 15)
    assert batch["_failures"] == [(7, "VideoDecodeError", "bad.mp4")]
