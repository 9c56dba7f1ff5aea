"""Test helpers for egokit and for third-party task packages: tiny models, tokenizers and checkpoint folders built
in-process (nothing is downloaded), synthetic videos, and a way to run the CLI in-process.

A task package's tests typically do::

    from egokit.testing import run_cli, tiny_checkpoint

    def test_eval(tmp_path):
        ckpt = tiny_checkpoint(tmp_path / "ckpt", ["a red cup", "a blue box"])
        run_cli("eval", "my-task", "--ckpt", ckpt, "--data", data, "-o", tmp_path / "out")
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from egokit.testing.videos import decode_all, index_image, make_chunked_video, make_index_video, read_index

__all__ = ["CliError", "cpu_accelerator", "decode_all", "index_image", "make_chunked_video", "make_index_video",
           "one_thread", "read_index", "run_cli", "tiny_checkpoint", "tiny_config", "tiny_model", "tiny_tokenizer"]


def tiny_config(**overrides: Any):
    """A very small EgoVLPv2 configuration (3 layers, 2 fused, width 32, 32 px, 2 frames) for fast tests."""
    from egokit.models import EgoVLPv2Config, PreprocessConfig

    base = dict(width=32, num_heads=4, depth=3, fused_layers=2, image_size=32, patch_size=16, num_frames=2,
                vocab_size=60, max_text_positions=24, text_intermediate_size=64, projection_dim=24,
                text_dropout=0.0, preprocess=PreprocessConfig(num_frames=2, image_size=32))
    base.update(overrides)
    return EgoVLPv2Config(**base)


def tiny_tokenizer(texts: Sequence[str], folder: str | Path, vocab_size: int = 300):
    """A byte-level BPE tokenizer with RoBERTa's special tokens, trained on ``texts`` and saved to ``folder``."""
    from egokit.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(list(texts), Path(folder), vocab_size=vocab_size, min_frequency=1)


def tiny_model(seed: int = 0, *, spread_text: bool = False, **config: Any):
    """A freshly initialised tiny EgoVLPv2 (``tiny_config(**config)``).

    ``spread_text``: a fresh tiny model maps every caption to nearly the same embedding (cosine > 0.9999), which
    a few fine-tuning steps cannot separate; a wide normal init of the text tower's matrices stands in for
    pretrained, content-dependent text features."""
    import torch

    from egokit.models import EgoVLPv2

    torch.manual_seed(seed)
    model = EgoVLPv2(tiny_config(**config))
    if spread_text:
        with torch.no_grad():
            for param in model.text_model.parameters():
                if param.dim() == 2:
                    torch.nn.init.normal_(param, std=0.5)
    return model


def tiny_checkpoint(folder: str | Path, texts: Sequence[str], *, seed: int = 0, spread_text: bool = True,
                    **config: Any) -> Path:
    """An egokit checkpoint folder (``config.json`` + ``model.safetensors`` + ``tokenizer/``) of a tiny model
    whose BPE tokenizer is trained on ``texts`` (saved beside ``folder`` too, as ``<folder>-tokenizer``)."""
    from egokit.checkpoint import save_pretrained

    folder = Path(folder)
    tokenizer = tiny_tokenizer(texts, folder.parent / f"{folder.name}-tokenizer")
    config.setdefault("vocab_size", len(tokenizer))
    model = tiny_model(seed, spread_text=spread_text, **config)
    return save_pretrained(model, folder, tokenizer=tokenizer)


def cpu_accelerator():
    from accelerate import Accelerator

    return Accelerator(cpu=True)


@contextmanager
def one_thread() -> Iterator[None]:
    """Tiny-model matrices gain nothing from threads; one thread avoids oversubscribing shared CI cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class CliError(AssertionError):
    """``egokit`` exited non-zero; the message holds its exit code and output."""


def run_cli(*args: Any, expect: int = 0, env: dict[str, str] | None = None):
    """Run ``egokit ARGS`` in-process (typer's runner); an exception raised inside is re-raised, a different exit
    code raises :class:`CliError`. Returns the runner's result (``.output``, ``.exit_code``)."""
    from typer.testing import CliRunner

    from egokit.cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    if result.exit_code != expect:
        raise CliError(f"egokit {' '.join(map(str, args))} exited {result.exit_code} (expected {expect}):\n"
                       f"{result.output}")
    return result
