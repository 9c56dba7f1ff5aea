"""A randomly initialised checkpoint folder for trying a task's pipeline on its synthetic data.

``egokit synth --task NAME OUT`` writes one to ``OUT/model`` so that ``egokit train NAME --ckpt OUT/model`` and
``egokit eval NAME --ckpt OUT/model`` run without downloading anything. Its scores show that the pipeline works,
not what a pretrained model reaches (use ``egokit pretrain recipes/demo.yaml`` or an official checkpoint for that).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from egokit.errors import ConfigError

__all__ = ["write_random_checkpoint"]


def write_random_checkpoint(folder: str | Path, *, texts: Sequence[str] | None = None,
                            tokenizer_dir: str | Path | None = None, model: str = "egovlpv2-tiny",
                            seed: int = 0) -> Path:
    """Save a registered configuration (``model``) with random weights and a tokenizer to ``folder`` (atomically).

    The tokenizer is the one in ``tokenizer_dir`` or a byte-level BPE trained on ``texts`` (the dataset's own
    captions, queries and answers, so every word of the data has tokens)."""
    from egokit.tokenizer import load_tokenizer, train_bpe_tokenizer

    if tokenizer_dir is not None:
        return _save(folder, model, load_tokenizer(Path(tokenizer_dir)), seed)
    if not texts:
        raise ConfigError("a random checkpoint needs a tokenizer folder or the dataset's texts to train one on")
    Path(folder).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tokenizer-", dir=Path(folder).parent) as tmp:
        tokenizer = train_bpe_tokenizer(list(texts), Path(tmp) / "tokenizer", vocab_size=1000, min_frequency=1)
        return _save(folder, model, tokenizer, seed)


def _save(folder: str | Path, model: str, tokenizer, seed: int) -> Path:
    import torch

    from egokit.checkpoint import save_pretrained_atomic
    from egokit.models import create_model

    torch.manual_seed(seed)
    net = create_model(model, vocab_size=len(tokenizer))
    card = (f"# Random {model} (seed {seed})\n\nWritten by `egokit synth --task` to try a task's pipeline on its "
            "synthetic data. Its weights are random: scores show the pipeline runs, not what a pretrained model "
            "reaches.\n")
    return save_pretrained_atomic(net, folder, tokenizer=tokenizer, card=card)
