"""The EgoTaskQA model: EgoVLPv2 in fusion mode (video = clip, text = question) and a two-layer answer head.

Head as the official ``video_qa_model_linear_end2end.py``: fused video CLS (after the model-level norm) ->
``projector_1`` Linear(width, A) -> ReLU -> Dropout(0.2) -> ``projector_2`` Linear(A, A). The names match the extra
keys of the official fine-tuned checkpoints, so their heads load unchanged. The fused text stream is unused.

A fine-tuned folder is an egokit checkpoint (the backbone) plus the head in egokit's head format
(``head.safetensors`` + ``head.json``) and ``answer_set.txt`` (the answers the head's classes stand for). Folders
written by egokit 0.1 (``head.safetensors`` without ``head.json``) and official fine-tuned ``.pth`` files load too.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from egokit.tasks.api import (CheckpointError, has_head, load_head, normalize_video, read_official_checkpoint,
                              save_head, save_pretrained, write_text_atomic)

HEAD_TYPE = "taskqa"
HEAD_WEIGHTS = "head.safetensors"
ANSWERS = "answer_set.txt"


class TaskQAHead(nn.Module):
    def __init__(self, width: int, num_answers: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.config = {"width": width, "num_answers": num_answers, "dropout": dropout}
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


def save_taskqa(module: TaskQAModel, folder: str | Path, tokenizer, answers: list[str], **info) -> Path:
    """Backbone (an egokit checkpoint folder) + the head (``head.safetensors`` + ``head.json`` carrying ``info``)
    + ``answer_set.txt``, into ``folder``."""
    folder = Path(folder)
    save_pretrained(module.backbone, folder, tokenizer=tokenizer)
    write_text_atomic(folder / ANSWERS, "\n".join(answers) + "\n")
    save_head(folder, module.head, HEAD_TYPE, module.head.config, task="egotaskqa", **info)
    return folder


def load_taskqa_head(source: str | Path | None, width: int, num_answers: int) -> TaskQAHead:
    """The head of a fine-tuned folder (egokit's head format, or egokit 0.1's bare ``head.safetensors``) or of an
    official fine-tuned ``.pth`` (its ``projector_*`` keys), checked against the answer set's size."""
    path = Path(source) if source is not None else None
    if path is not None and path.is_dir() and has_head(path):
        head, _ = load_head(path, TaskQAHead, what="egokit train egotaskqa")
        _check_answers(head.num_answers, num_answers, path)
        return head
    state = _legacy_state(path) if path is not None else None
    if state is None:
        raise CheckpointError(f"{source}: no EgoTaskQA head (head.json + head.safetensors, or official "
                              "projector_1/2 keys); fine-tune one first: egokit train egotaskqa --ckpt ... data=...")
    shape = tuple(state.get("projector_2.weight", torch.empty(0)).shape)
    _check_answers(shape[0] if shape else None, num_answers, path)
    head = TaskQAHead(width, num_answers)
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: EgoTaskQA head does not fit ({str(exc).splitlines()[0]})") from None
    return head.eval()


def _check_answers(head_answers: int | None, num_answers: int, where: Path) -> None:
    if head_answers != num_answers:
        raise CheckpointError(f"{where}: the EgoTaskQA head has {head_answers or '?'} answers but the answer set "
                              f"has {num_answers}; evaluate with the answer_set.txt it was trained with")


def _legacy_state(path: Path) -> dict[str, torch.Tensor] | None:
    """``projector_*`` tensors of an egokit 0.1 folder (``head.safetensors`` alone) or an official ``.pth``."""
    if path.is_dir():
        if not (path / HEAD_WEIGHTS).is_file():
            return None
        from safetensors.torch import load_file

        return load_file(str(path / HEAD_WEIGHTS))
    if path.is_file():
        state, _ = read_official_checkpoint(path)
        return {k: v for k, v in state.items() if k.startswith(("projector_1.", "projector_2."))} or None
    return None
