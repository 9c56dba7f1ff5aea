"""Video and text features over sliding windows (``egokit embed``), with the official EgoNLQ/EgoMQ settings as
named recipes.

A notebook user gets features in a few lines::

    import egokit
    from egokit.embed import get_recipe

    model = egokit.load_model("EgoVLPv2.pth", num_frames=16)
    out = egokit.embed_video(model, "video.mp4", get_recipe("egovlpv2-mq"))
    out.features  # (n_windows, 4096); out.starts / out.ends: window times in seconds

Modules: ``windows`` (window arithmetic), ``recipes`` (:class:`FeatureRecipe`, named recipes), ``items`` (what to
embed), ``extract`` (decoding, batching, model forward), ``writer`` (files + metadata), ``run`` (a whole run).
"""

from __future__ import annotations

from egokit.embed.extract import EmbedResult, EmbedStats, embed_items, embed_texts, embed_video, plan_windows
from egokit.embed.items import EmbedItem, Query, collect_items, items_from_annotations
from egokit.embed.recipes import MODES, FeatureRecipe, get_recipe, list_recipes
from egokit.embed.run import embed_to_folder, run_record
from egokit.embed.windows import WindowPlan, ego4d_windows, sliding_windows
from egokit.embed.writer import META_NAME, FeatureWriter, load_features

__all__ = [
    "META_NAME", "MODES", "EmbedItem", "EmbedResult", "EmbedStats", "FeatureRecipe", "FeatureWriter", "Query",
    "WindowPlan", "collect_items", "ego4d_windows", "embed_items", "embed_texts", "embed_to_folder", "embed_video",
    "get_recipe", "items_from_annotations", "list_recipes", "load_features", "plan_windows", "run_record",
    "sliding_windows",
]
