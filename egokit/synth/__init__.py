"""Synthetic egocentric video-language data (``egokit synth``): learnable, non-trivial and deterministic by seed."""

from __future__ import annotations

from egokit.synth.generator import SynthConfig, SynthSummary, generate

__all__ = ["SynthConfig", "SynthSummary", "generate"]
