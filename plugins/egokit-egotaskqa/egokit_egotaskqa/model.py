"""The EgoTaskQA model: EgoVLPv2 in fusion mode (video = clip, text = question) and a two-layer answer head.

Head as the official ``video_qa_model_linear_end2end.py``: fused video CLS (after the model-level norm) ->
``projector_1`` Linear(width, A) -> ReLU -> Dropout(0.2) -> ``projector_2`` Linear(A, A). The names match the extra
keys of the official fine-tuned checkpoints, so their heads load unchanged. The fused text stream is unused.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from egokit.data.transforms import normalize_video
from egokit.errors import CheckpointError

HEAD_WEIGHTS = "head.safetensors"
ANSWERS = "answer_set.txt"
META = "egotaskqa.json"


class TaskQAHead(nn.Module):
    def __init__(self, width: int, num_answers: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.projector_1 = nn.Linear(width, num_answers)
        self.projector_2 = nn.Linear(num_answers, num_answers)
        self.dropout = nn.Dropout(dropout)

    @property
    def num_answers(self) -> int:
        return self.projector_2.out_features

    def forward(self, video_cls: torch.Tensor) -> torch.Tensor:
        return self.projector_2(self.dropout(F.relu(self.projector_1(video_cls))))


class TaskQAModel(nn.Module):
    """``forward(batch)`` -> {"logits", "loss" (when the batch has answers)}; the loss is computed in forward so
    DDP/Accelerate wrappers see the whole computation."""

    def __init__(self, backbone: nn.Module, head: TaskQAHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, batch: dict) -> dict:
        pre = self.backbone.config.preprocess
        dtype = next(self.backbone.parameters()).dtype
        video = normalize_video(batch["video"], pre.mean, pre.std, dtype=dtype)
        fused = self.backbone.fusion(video, batch["input_ids"], batch["attention_mask"])
        logits = self.head(fused.video_cls)
        out = {"logits": logits}
        if "answer" in batch:
            out["loss"] = F.cross_entropy(logits.float(), batch["answer"])
        return out


def save_taskqa(model: TaskQAModel, folder: str | Path, tokenizer, answers: list[str], meta: dict) -> Path:
    """Backbone with :func:`egokit.checkpoint.save_pretrained` + ``head.safetensors`` + answer set + metadata."""
    from safetensors.torch import save_file

    from egokit.checkpoint import save_pretrained
    from egokit.results import write_json_atomic
    from egokit.synth.writer import write_text

    folder = Path(folder)
    save_pretrained(model.backbone, folder, tokenizer=tokenizer)
    tmp = folder / f".{HEAD_WEIGHTS}.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}, str(tmp))
    tmp.replace(folder / HEAD_WEIGHTS)
    write_text(folder / ANSWERS, "\n".join(answers) + "\n")
    write_json_atomic(folder / META, {**meta, "num_answers": len(answers)})
    return folder


def load_head_state(source: str | Path) -> dict[str, torch.Tensor] | None:
    """The ``projector_*`` tensors of an egokit EgoTaskQA folder or an official fine-tuned ``.pth``; None if absent."""
    source = Path(source)
    if source.is_dir():
        if not (source / HEAD_WEIGHTS).is_file():
            return None
        from safetensors.torch import load_file

        return load_file(str(source / HEAD_WEIGHTS))
    if source.is_file():
        from egokit.checkpoint import read_official_checkpoint

        state, _ = read_official_checkpoint(source)
        head = {k: v for k, v in state.items() if k.startswith(("projector_1.", "projector_2."))}
        return head or None
    return None


def build_head_from(state: dict[str, torch.Tensor], width: int, num_answers: int, where: str) -> TaskQAHead:
    shape = tuple(state.get("projector_2.weight", torch.empty(0)).shape)
    if shape != (num_answers, num_answers):
        raise CheckpointError(f"{where}: the EgoTaskQA head has {shape[0] if shape else '?'} answers but the answer set "
                              f"has {num_answers}; evaluate with the answer_set.txt it was trained with")
    head = TaskQAHead(width, num_answers)
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: EgoTaskQA head does not fit ({str(exc).splitlines()[0]})") from None
    return head


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META
    return json.loads(path.read_text()) if path.is_file() else {}
