"""EgoVLPv2: one backbone pair, two modes.

Dual mode (gates unused): each tower runs alone and the projected CLS features are compared by cosine similarity
(retrieval, features). Fusion mode: the lower ``depth - fused_layers`` layers of both towers run alone, then the top
layers run in parallel, each tower cross-attending to the other tower's *previous-layer* states; the video side
uses the model-level ``cls_token`` and ``norm`` (separate from the dual-mode ones), exactly as the official code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from egokit.models.attention import key_padding_mask, resolve_kernel
from egokit.errors import ConfigError
from egokit.models.config import EgoVLPv2Config
from egokit.models.heads import MLMHead, Pooler, VTMHead, build_projections, init_bert_style, outside_autocast
from egokit.models.text import RobertaTextModel
from egokit.models.video import SpaceTimeTransformer, _maybe_checkpoint


@dataclass
class FusionOutput:
    """Fused token states: ``video`` after the model-level norm (B, 1+F*N, D), ``text`` (B, L, D)."""

    video: torch.Tensor
    text: torch.Tensor

    @property
    def video_cls(self) -> torch.Tensor:
        return self.video[:, 0]

    @property
    def text_cls(self) -> torch.Tensor:
        return self.text[:, 0]


class EgoVLPv2(nn.Module):
    """The EgoVLPv2 model. Parameter names match the official checkpoints after the ``module.`` prefix."""

    def __init__(self, config: EgoVLPv2Config) -> None:
        super().__init__()
        self.config = config
        d = config.width
        # Registration order follows the official model so state dicts list keys in the same order.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.text_model = RobertaTextModel(config)
        self.video_model = SpaceTimeTransformer(config)
        self.txt_proj, self.vid_proj = build_projections(config)
        self.cross_modal_text_transform = nn.Linear(d, d)
        self.cross_modal_video_transform = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d, eps=config.fusion_ln_eps)
        self.cross_modal_video_pooler = Pooler(d)
        self.cross_modal_text_pooler = Pooler(d)
        if config.mlm_head:
            self.mlm_score = MLMHead(d, config.vocab_size, config.mlm_ln_eps)
        if config.vtm_head:
            self.itm_score = VTMHead(d)
        self.reset_parameters()

    # ------------------------------------------------------------------ setup
    def reset_parameters(self) -> None:
        """From-scratch init: ViT-style video tower, BERT-style text tower and fusion heads.

        Pretrained weights (ImageNet ViT, RoBERTa, an EgoVLPv2 checkpoint) overwrite this; the time attention keeps
        the official zero/all-ones init and every gate starts at 0, so a fresh model is a dual encoder.
        The zero time attention exists to start from a per-frame ImageNet ViT; from random weights it is a
        handicap: with q = k = v = 0 the branch first learns a uniform average over frames, and the frame *order*
        (what tells "picks up" from "puts down") needs q and k, whose gradients are zero until v has grown.
        ``config.time_init = "random"`` initialises it like the other linear layers (the tiny model does).
        ``config.init_std`` / ``embed_init_std`` are 0.02 as in ViT/BERT. At that scale a narrow model maps every
        caption to nearly the same CLS feature (cosine > 0.999 at width 128) and joint contrastive training from
        scratch sits at chance for hundreds of steps, so small configurations use ``width ** -0.5`` for linear
        layers and 1.0 for word embeddings (measured on `egokit synth` data: the plateau shrinks several-fold).
        """
        std = self.config.init_std
        for name, m in self.video_model.named_modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.config.time_init == "zeros":
            for block in self.video_model.blocks:
                block.timeattn.zero_init()
        init_bert_style(self.text_model, std)
        nn.init.normal_(self.text_model.embeddings.word_embeddings.weight, std=self.config.embed_init_std)
        for emb in (self.text_model.embeddings.word_embeddings, self.text_model.embeddings.position_embeddings):
            with torch.no_grad():
                emb.weight[self.config.pad_token_id].zero_()
        for name in ("cross_modal_text_transform", "cross_modal_video_transform", "cross_modal_video_pooler",
                     "cross_modal_text_pooler", "mlm_score", "itm_score"):
            if hasattr(self, name):
                init_bert_style(getattr(self, name), std)
        for p in self.gates():
            nn.init.zeros_(p)

    def gates(self) -> list[nn.Parameter]:
        """The alpha gates of every fused layer (video ``alpha_i2t`` and text ``alpha_t2i``)."""
        return [p for n, p in self.named_parameters() if n.endswith(("alpha_i2t", "alpha_t2i"))]

    def set_grad_checkpointing(self, enabled: bool | str = True) -> None:
        """Activation checkpointing of every transformer block: ``False``/``"none"``; ``True``/``"full"`` (keep only
        block inputs, recompute the block); ``"selective"`` (keep matmul and attention outputs, recompute norms,
        activations, softmax and copies: most of the memory saving of ``full`` at a fraction of its recompute)."""
        from egokit.models.video import checkpoint_mode

        try:
            checkpoint_mode(enabled)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.config.gradient_checkpointing = enabled

    def compile_blocks(self, backend: str = "inductor", **options) -> None:
        """``torch.compile`` every transformer block in place (``nn.Module.compile``): the repeated blocks are where
        the time goes, whole-model compilation would recompile for every fusion/dual call pattern, and in-place
        compilation keeps parameter names (checkpoints load and save unchanged). Opt-in: worth it on CUDA, where
        it fuses the norms, GELUs and residual adds between the matmuls."""
        for block in (*self.video_model.blocks, *self.text_model.encoder.layer):
            block.compile(backend=backend, **options)

    def kernel(self, device: torch.device) -> str:
        return resolve_kernel(self.config.attention, device)

    @property
    def first_fused(self) -> int:
        return self.config.depth - self.config.fused_layers

    # -------------------------------------------------------------- dual mode
    def video_features(self, video: torch.Tensor) -> torch.Tensor:
        """Dual-mode backbone feature (B, width): video CLS after ``video_model.norm``, unprojected."""
        return self.video_model(video, self.kernel(video.device), self.config.gradient_checkpointing,
                                self.config.divided_attention)

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, H, W) normalised pixels -> (B, projection_dim), projected, not L2-normalised."""
        return outside_autocast(self.vid_proj, self.video_features(video))

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Dual-mode last hidden states (B, L, width), no cross-attention."""
        x, mask, kernel = self._text_inputs(input_ids, attention_mask)
        return self._run_text(x, mask, kernel, range(self.config.depth))

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids and 0/1 mask -> (B, projection_dim), projected, not L2-normalised."""
        return outside_autocast(self.txt_proj, self.text_features(input_ids, attention_mask)[:, 0])

    def encode_text_prefix(self, text_prefix: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """:meth:`encode_text` from :meth:`fusion_text_prefix`'s output: the unfused lower layers are the same in
        dual and fusion mode, so a training step can run them once for its dual, MLM and VTM passes."""
        kernel = self.kernel(text_prefix.device)
        x = self._run_text(text_prefix, key_padding_mask(attention_mask), kernel,
                           range(self.first_fused, self.config.depth))
        return outside_autocast(self.txt_proj, x[:, 0])

    # ------------------------------------------------------------ fusion mode
    def fusion_video_prefix(self, video: torch.Tensor) -> torch.Tensor:
        """Video tokens after the unfused blocks with the fusion CLS; depends on the video only, so it can be
        computed once and shared by several fusion passes (MLM, VTM) over the same clips."""
        kernel = self.kernel(video.device)
        x = self.video_model.embed(video, self.cls_token)
        return self.video_model.run_blocks(x, range(self.first_fused), kernel, self.config.gradient_checkpointing,
                                           self.config.divided_attention)

    def fusion_text_prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text states after the unfused layers."""
        x, mask, kernel = self._text_inputs(input_ids, attention_mask)
        return self._run_text(x, mask, kernel, range(self.first_fused))

    def fuse(self, video_prefix: torch.Tensor, text_prefix: torch.Tensor, attention_mask: torch.Tensor) -> FusionOutput:
        """Run the fused layers in parallel: layer l of each tower reads the other tower's layer-l input."""
        kernel = self.kernel(video_prefix.device)
        mask = key_padding_mask(attention_mask)
        ckpt = self.config.gradient_checkpointing
        v, t = video_prefix, text_prefix
        frames, divided = self.video_model.num_frames, self.config.divided_attention
        for i in range(self.first_fused, self.config.depth):
            v_next = _maybe_checkpoint(self.video_model.blocks[i], ckpt, v, frames, kernel, t, mask, divided)
            t = _maybe_checkpoint(self.text_model.encoder.layer[i], ckpt, t, mask, kernel, v)
            v = v_next
        return FusionOutput(video=self.norm(v), text=t)

    def fusion(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> FusionOutput:
        """Full fusion-mode forward of matched (video_i, text_i) pairs."""
        return self.fuse(self.fusion_video_prefix(video), self.fusion_text_prefix(input_ids, attention_mask),
                         attention_mask)

    def vtm_head(self, fused: FusionOutput) -> torch.Tensor:
        """(B, 2) matching logits from fused states; class 1 = match."""
        text = self.cross_modal_text_pooler(self.cross_modal_text_transform(fused.text_cls))
        video = self.cross_modal_video_pooler(self.cross_modal_video_transform(fused.video_cls))
        return self.itm_score(torch.cat([text, video], dim=-1))

    def vtm_logits(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Fusion-mode video-text matching logits (B, 2); class 1 = match."""
        return self.vtm_head(self.fusion(video, input_ids, attention_mask))

    def mlm_head(self, fused_text: torch.Tensor) -> torch.Tensor:
        return self.mlm_score(self.cross_modal_text_transform(fused_text))

    def mlm_logits(
        self,
        video: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fusion-mode MLM logits (B, L, V); with a boolean ``positions`` (B, L) only those rows: (M, V); with
        integer ``positions`` (B, K) (fixed slots per caption, static shapes) the rows they index: (B, K, V).

        Computing the vocabulary projection only where tokens were masked avoids ~85 % of the head's work.
        """
        text = self.fusion(video, input_ids, attention_mask).text
        if positions is not None:
            if positions.dtype == torch.bool:
                text = text[positions]
            else:
                text = text.gather(1, positions[..., None].expand(-1, -1, text.shape[-1]))
        return self.mlm_head(text)

    # ------------------------------------------------------------------ misc
    def forward(self, task: str = "dual", **inputs: torch.Tensor):
        """Dispatch by task so wrappers that only hook ``forward`` (DDP, Accelerate) see every pass.

        ``dual`` -> (text_emb, video_emb); ``video``/``text`` -> one side; ``vtm`` -> logits; ``mlm`` -> logits.
        """
        if task == "dual":
            return self.encode_text(inputs["input_ids"], inputs["attention_mask"]), self.encode_video(inputs["video"])
        if task == "video":
            return self.encode_video(inputs["video"])
        if task == "text":
            return self.encode_text(inputs["input_ids"], inputs["attention_mask"])
        if task == "vtm":
            return self.vtm_logits(inputs["video"], inputs["input_ids"], inputs["attention_mask"])
        if task == "mlm":
            return self.mlm_logits(inputs["video"], inputs["input_ids"], inputs["attention_mask"], inputs.get("positions"))
        raise ValueError(f"unknown task {task!r}")

    def _text_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.text_model.embeddings(input_ids), key_padding_mask(attention_mask), self.kernel(input_ids.device)

    def _run_text(self, x: torch.Tensor, mask: torch.Tensor, kernel: str, layers: range) -> torch.Tensor:
        for i in layers:
            x = _maybe_checkpoint(self.text_model.encoder.layer[i], self.config.gradient_checkpointing, x, mask, kernel)
        return x
