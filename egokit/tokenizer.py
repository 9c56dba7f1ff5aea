"""Text tokenizers: load RoBERTa's (or any saved one) and train small RoBERTa-style BPE vocabularies.

EgoVLPv2 uses the ``roberta-base`` tokenizer. Small models trained from scratch on synthetic data do not need a
50k vocabulary, so :func:`train_bpe_tokenizer` builds a byte-level BPE with RoBERTa's special tokens and
conventions; both kinds load through :func:`load_tokenizer` and ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from egokit.errors import ConfigError, EgokitError
from egokit.io import atomic_dir

__all__ = ["ROBERTA_SPECIAL_TOKENS", "load_tokenizer", "train_bpe_tokenizer"]

#: RoBERTa's special tokens in id order; ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3 match roberta-base,
#: ``<mask>`` gets id 4 here (50264 in roberta-base) and is exposed as ``tokenizer.mask_token_id``.
ROBERTA_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

# roberta-base's maximum sequence length; EgoVLPv2 uses far shorter texts (15 tokens) but keeps the model limit.
_MODEL_MAX_LENGTH = 512


def _looks_like_path(source: str) -> bool:
    # hub ids are "name" or "org/name"; anything else that does not exist locally was meant as a folder
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source


def load_tokenizer(source: str | Path) -> PreTrainedTokenizerFast:
    """Load a fast tokenizer from a local folder or a Hugging Face hub name (e.g. ``roberta-base``).

    Hub names are resolved through transformers' normal cache, so they work offline once cached. Raises
    :class:`EgokitError` with a remedy when the folder does not exist or the hub cannot be reached.
    """
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        return _from_pretrained(path, hint=f"tokenizer folder {path}")
    if isinstance(source, Path) or path.exists() or _looks_like_path(text):
        raise EgokitError(
            f"tokenizer folder {path} does not exist; pass a folder written by save_pretrained() "
            "(it holds tokenizer.json) or a hub name such as 'roberta-base'"
        )
    try:
        return _as_fast(AutoTokenizer.from_pretrained(text, local_files_only=True), text)
    except OSError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise EgokitError(
            f"tokenizer {text!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            "download it once with network access or pass a local tokenizer folder instead"
        )
    try:
        return _as_fast(AutoTokenizer.from_pretrained(text), text)
    except OSError as exc:
        raise EgokitError(
            f"cannot load tokenizer {text!r}: it is not cached locally and the Hugging Face hub is unreachable "
            f"or has no such repository ({exc.__class__.__name__}); pass a local tokenizer folder "
            "(for example one written by `egokit synth`, OUT/tokenizer) instead"
        ) from exc


def _from_pretrained(path: Path, hint: str) -> PreTrainedTokenizerFast:
    try:
        return _as_fast(AutoTokenizer.from_pretrained(str(path), local_files_only=True), hint)
    except (OSError, ValueError) as exc:
        raise EgokitError(
            f"cannot load {hint}: {exc}; the folder must hold a tokenizer saved with save_pretrained()"
        ) from exc


def _as_fast(tokenizer: object, hint: str) -> PreTrainedTokenizerFast:
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise EgokitError(
            f"{hint} loaded as {type(tokenizer).__name__}, not a fast (tokenizers-backed) tokenizer; "
            "save it with a tokenizer.json"
        )
    return tokenizer


def train_bpe_tokenizer(
    texts: Iterable[str],
    out_dir: str | Path,
    vocab_size: int = 4096,
    min_frequency: int = 2,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE with RoBERTa's special tokens and post-processor and save it to ``out_dir``.

    Like roberta-base: no prefix space is added, sequences are wrapped as ``<s> ... </s>``, ``<mask>`` strips
    the space on its left. The folder is written atomically (temp folder, then rename) so a crash never leaves a
    half-written tokenizer behind. ``vocab_size`` is an upper bound: a tiny corpus runs out of merges earlier.
    """
    if vocab_size < 256 + len(ROBERTA_SPECIAL_TOKENS):
        raise ConfigError(f"vocab_size={vocab_size} is too small: byte-level BPE needs at least 261 entries")
    if min_frequency < 1:
        raise ConfigError(f"min_frequency must be >= 1, got {min_frequency}")
    backend = Tokenizer(models.BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix=""))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[_special(tok) for tok in ROBERTA_SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator((str(t) for t in texts), trainer=trainer)
    ids = {tok: backend.token_to_id(tok) for tok in ROBERTA_SPECIAL_TOKENS}
    expected = {tok: i for i, tok in enumerate(ROBERTA_SPECIAL_TOKENS)}
    if ids != expected:  # the trainer puts special tokens first, in order; guard against a library change
        raise RuntimeError(f"BPE trainer assigned special ids {ids}, expected {expected}")
    backend.post_processor = processors.RobertaProcessing(
        ("</s>", ids["</s>"]), ("<s>", ids["<s>"]), trim_offsets=True, add_prefix_space=False
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=_special("<mask>"),
        model_max_length=_MODEL_MAX_LENGTH,
        add_prefix_space=False,
        trim_offsets=True,
    )
    _save_atomically(tokenizer, Path(out_dir))
    return tokenizer


def _special(token: str) -> AddedToken:
    # roberta-base's <mask> swallows the space on its left so "a <mask>" predicts the word " b" with its space
    return AddedToken(token, lstrip=token == "<mask>", rstrip=False, normalized=False, special=True)


def _save_atomically(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    out_dir = out_dir.expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise EgokitError(f"cannot write tokenizer to {out_dir}: a file of that name exists")
    with atomic_dir(out_dir) as tmp:
        tokenizer.save_pretrained(str(tmp))
