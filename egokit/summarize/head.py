"""The QFVS summarisation head: a small transformer over a sequence of query-conditioned shot features.

Same layout and parameter names as the official ``Transformer_Encoder`` (``QFVS/model/model_summary.py``): a fixed
sinusoidal table added to the shot features, a 2-layer post-LN ``nn.TransformerEncoder`` (ReLU, ff 2048, dropout
0.1), then ``projector_1`` Linear(d, 8) -> ReLU -> Dropout(0.2) -> ``summ_head`` Linear(8, 1), one logit per shot.

Deliberate differences: the padding mask is boolean (True = padded shot, excluded from attention). The official
code passes a float 0/1 mask, which PyTorch *adds* to the attention logits, so padded shots get +1 instead of being
masked. The positional table keeps the official exponents (``2i/d`` for sin, ``2(i+1)/d`` for cos) so that a head
trained with either implementation sees the same positions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from egokit.errors import CheckpointError, ConfigError

#: The type name of this head in ``head.json`` (the one head format of :mod:`egokit.heads`).
HEAD_TYPE = "summary"
#: The files earlier releases wrote beside the model (weights + the config as JSON), still read.
HEAD_WEIGHTS = "qfvs_head.safetensors"
HEAD_CONFIG = "qfvs_head.json"


@dataclass(frozen=True)
class SummaryHeadConfig:
    width: int = 768
    nhead: int = 2
    num_layers: int = 2
    ff_dim: int = 2048
    dropout: float = 0.1
    max_shots: int = 200

    def validate(self) -> None:
        if self.width % self.nhead:
            raise ConfigError(f"qfvs head: nhead={self.nhead} must divide the model width {self.width}")
        if self.width % 2:
            raise ConfigError(f"qfvs head: width must be even for the sinusoidal table, got {self.width}")


def positional_table(length: int, width: int) -> torch.Tensor:
    """(length, width) table with the official exponents: sin at even column i, cos at i+1 (see module doc)."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    i = torch.arange(0, width, 2, dtype=torch.float64)[None, :]
    table = torch.zeros(length, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos / 10000 ** (2 * i / width))  # column i (even): exponent 2i/d
    table[:, 1::2] = torch.cos(pos / 10000 ** (2 * (i + 1) / width))  # column i+1: exponent 2(i+1)/d
    return table.float()


class SummaryHead(nn.Module):
    """(B, S, d) shot features + (B, S) boolean padding mask -> (B, S) logits (higher = keep the shot)."""

    def __init__(self, config: SummaryHeadConfig | None = None, **fields: Any) -> None:
        """``SummaryHead(config)`` or ``SummaryHead(width=..., ...)`` (the fields of :class:`SummaryHeadConfig`, as
        ``head.json`` stores them)."""
        super().__init__()
        if config is not None and fields:
            raise TypeError("pass a SummaryHeadConfig or its fields, not both")
        self.config = config or SummaryHeadConfig(**fields)
        self.config.validate()
        c = self.config
        self.register_buffer("pos", positional_table(c.max_shots, c.width), persistent=False)
        layer = nn.TransformerEncoderLayer(d_model=c.width, nhead=c.nhead, dim_feedforward=c.ff_dim,
                                           dropout=c.dropout, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=c.num_layers, enable_nested_tensor=False)
        self.dropout = nn.Dropout(0.2)
        self.projector_1 = nn.Linear(c.width, 8)
        self.summ_head = nn.Linear(8, 1)
        nn.init.normal_(self.summ_head.weight, std=0.1)
        nn.init.constant_(self.summ_head.bias, -1.91)  # prior: ~13 % of shots selected

    def forward(self, features: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        length = features.shape[1]
        if length > self.config.max_shots:
            raise ValueError(f"segment of {length} shots exceeds the head's max_shots={self.config.max_shots}")
        x = features + self.pos[:length].to(features.dtype)
        if padding is not None and padding.dtype != torch.bool:
            raise TypeError("padding must be a boolean mask (True = padded shot)")
        x = self.transformer_encoder(x, src_key_padding_mask=padding)
        return self.summ_head(self.dropout(torch.relu(self.projector_1(x)))).squeeze(-1)

    def score_sequence(self, features: torch.Tensor) -> torch.Tensor:
        """(S, d) features of one video -> (S,) logits, in segments of ``max_shots`` shots."""
        chunks = features.split(self.config.max_shots)
        return torch.cat([self(c[None])[0] for c in chunks]) if chunks else features.new_zeros(0)


def save_head(head: SummaryHead, folder: str | Path, name: str = HEAD_WEIGHTS) -> Path:
    """Write ``name`` (safetensors) and its JSON config next to it, atomically."""
    from safetensors.torch import save_file

    from egokit.io import atomic_path, write_json_atomic

    path = Path(folder) / name
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(tmp))
    write_json_atomic(path.with_suffix(".json"), asdict(head.config))
    return path


def load_head(path: str | Path) -> SummaryHead:
    """Read a head written by :func:`save_head` (``<name>.safetensors`` + ``<name>.json``, the layout of earlier
    releases' QFVS heads)."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = path.with_suffix(".json")
    if not path.is_file() or not meta.is_file():
        raise CheckpointError(f"QFVS head not found: need {path} and {meta.name} (written by `egokit train qfvs`)")
    try:
        config = SummaryHeadConfig(**json.loads(meta.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"{meta}: invalid QFVS head config ({exc})") from None
    head = SummaryHead(config)
    try:
        head.load_state_dict(load_file(str(path)))
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot load the QFVS head ({str(exc).splitlines()[0][:200]})") from None
    return head.eval()


def find_head(folder: str | Path | None) -> SummaryHead | None:
    """The QFVS head saved in a checkpoint folder, or None when the folder has none: ``head.json`` +
    ``head.safetensors`` of type ``summary`` (what ``egokit train qfvs`` writes beside the model), else the
    ``qfvs_head.safetensors`` + ``qfvs_head.json`` pair of earlier releases."""
    from egokit.heads import has_head, read_head_info
    from egokit.heads import load_head as load_task_head

    if folder is None or not Path(folder).is_dir():
        return None
    folder = Path(folder)
    if has_head(folder) and read_head_info(folder).get("head_type") == HEAD_TYPE:
        return load_task_head(folder, SummaryHead)[0]
    if (folder / HEAD_WEIGHTS).is_file():
        return load_head(folder / HEAD_WEIGHTS)
    return None
