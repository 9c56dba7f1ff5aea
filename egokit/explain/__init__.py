"""Where a fusion model looks when it matches a caption to a clip (``egokit explain``).

The fused layers' video<-text (and text<-video) cross-attention, recorded with module hooks only while a capture
context is open (normal forward passes are unchanged), drawn as heat-maps over the sampled frames per fused layer
and averaged, with the VTM match probability and the attention each caption token receives; optionally the
attention rollout of the dual video tower from its CLS token. Python::

    from egokit.explain import explain_clip, write_explanation
    ex = explain_clip(model, tokenizer, "clip.mp4", "I open the fridge")
    write_explanation(ex, "out", mp4=True)   # out/explain.png, explain.json, attention.npz, explain.mp4

Modules: ``capture`` (hooks), ``rollout``, ``api`` (:class:`Explanation`), ``panel`` (PNG, mp4).
"""

from __future__ import annotations

from egokit.explain.api import Explanation, explain_clip, explain_tensors
from egokit.explain.capture import CrossAttentionCapture, DividedAttentionCapture, DividedProbs
from egokit.explain.panel import render_panel, write_explanation, write_explanation_mp4
from egokit.explain.rollout import cls_rollout

__all__ = ["CrossAttentionCapture", "DividedAttentionCapture", "DividedProbs", "Explanation", "cls_rollout",
           "explain_clip", "explain_tensors", "render_panel", "write_explanation", "write_explanation_mp4"]
