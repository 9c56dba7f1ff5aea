"""Query-focused video summarisation with an EgoVLPv2 model (``egokit summarize``).

Shots are fixed-length windows; each is scored against a text query in fusion mode (QFVS head when the checkpoint
has one, VTM match probability otherwise); the best shots under a shot or seconds budget form the summary, written
as JSON, a contact-sheet PNG and optionally an mp4.
"""

from __future__ import annotations

from egokit.summarize.api import Summary, load_shot_clips, summarize_video, write_summary
from egokit.summarize.head import SummaryHead, SummaryHeadConfig, find_head, load_head, save_head
from egokit.summarize.select import select_shots
from egokit.summarize.shots import Shot, fixed_shots

__all__ = ["Shot", "Summary", "SummaryHead", "SummaryHeadConfig", "find_head", "fixed_shots", "load_head",
           "load_shot_clips", "save_head", "select_shots", "summarize_video", "write_summary"]
