"""``egokit prepare``: turn raw videos into what egokit reads fastest, in one decode + re-encode pass per video.

Output: ``DST/<uid>/<k>.mp4`` chunks (the official Ego4D layout read by :class:`egokit.data.video.ChunkedVideo`),
short side 256, a key frame about every second, constant frame rate, plus ``DST/manifest.json`` with each video's
frame rate, length, size and chunk boundaries (:func:`load_manifest`).

Modules: :mod:`~egokit.prepare.discover` (input layouts), :mod:`~egokit.prepare.encode` (the single-pass
re-encode and chunking), :mod:`~egokit.prepare.verify` (checks each written chunk), :mod:`~egokit.prepare.manifest`
(the JSON record), :mod:`~egokit.prepare.runner` (resume, process pool, failure report).
"""

from egokit.prepare.discover import LAYOUTS, VideoJob, detect_layout, discover
from egokit.prepare.manifest import PreparedVideo, load_manifest, read_manifest
from egokit.prepare.runner import PrepareReport, VideoResult, prepare
from egokit.prepare.settings import PrepareSettings, choose_codec

__all__ = [
    "LAYOUTS",
    "PrepareReport",
    "PrepareSettings",
    "PreparedVideo",
    "VideoJob",
    "VideoResult",
    "choose_codec",
    "detect_layout",
    "discover",
    "load_manifest",
    "prepare",
    "read_manifest",
]
