from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from egokit.errors import EgokitError
from egokit.tokenizer import load_tokenizer, train_bpe_tokenizer

CORPUS = [
    "#C C picks up the red cup",
    "#C C puts down the blue box",
    "#C C pushes the green ball away",
    "#C C pulls the yellow bottle closer",
    "#C C opens the purple ring",
    "#C C closes the orange cone",
] * 4


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_bpe_tokenizer(CORPUS, out, vocab_size=400, min_frequency=2)
    return out


def test_special_ids_follow_roberta(tok_dir: Path) -> None:
    tok = load_tokenizer(tok_dir)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.convert_ids_to_tokens(tok.mask_token_id) == "<mask>"
    assert set(tok.all_special_ids) == {0, 1, 2, 3, tok.mask_token_id}
    ids = tok("#C C picks up the red cup")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and 3 not in ids  # <s> ... </s>, no unknowns


def test_round_trip_and_auto_tokenizer(tok_dir: Path) -> None:
    tok = load_tokenizer(tok_dir)
    auto = AutoTokenizer.from_pretrained(str(tok_dir))
    for text in CORPUS[:6] + ["an unseen Sentence, with ünïcode!"]:
        ids = tok(text)["input_ids"]
        assert auto(text)["input_ids"] == ids
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(tok) <= 400
    # roberta-base conventions: no prefix space, <mask> absorbs the space on its left
    assert tok("the <mask> cup")["input_ids"] == [0, *tok("the")["input_ids"][1:-1], tok.mask_token_id, *tok(" cup")["input_ids"][1:-1], 2]


def test_padding_and_truncation(tok_dir: Path) -> None:
    tok = load_tokenizer(tok_dir)
    enc = tok(["#C C picks up the red cup", "#C C " + "pushes the green ball " * 10], padding="max_length", max_length=15, truncation=True)
    short, long = enc["input_ids"]
    assert len(short) == len(long) == 15
    n = sum(enc["attention_mask"][0])
    assert short[n - 1] == 2 and short[n:] == [1] * (15 - n)
    assert long[0] == 0 and long[-1] == 2 and all(enc["attention_mask"][1])


def test_missing_folder_and_unreachable_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EgokitError, match="does not exist"):
        load_tokenizer(tmp_path / "nope")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EgokitError, match="local tokenizer folder"):
        load_tokenizer("egokit-test/definitely-not-a-tokenizer")
