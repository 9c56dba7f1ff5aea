"""Find moments in videos by typing what happened (``egokit index`` / ``egokit search``).

``index_videos`` embeds every window of a set of videos with the dual encoder (``egokit embed``'s machinery:
resumable, shardable) and packs the L2-normalised embeddings into one memory-mapped matrix; ``SearchIndex``
answers text queries by an exact, chunked matrix product; ``rerank_vtm`` re-orders the best candidates with the
fusion VTM head. Python::

    from egokit.search import search_texts
    results = search_texts("my_index", model, tokenizer, ["I cut the onion"], k=10)

Modules: ``index`` (building, format), ``query`` (search, re-ranking), ``output`` (JSON, contact sheets, HTML).
"""

from __future__ import annotations

from egokit.search.index import INDEX_FORMAT, IndexVideo, build_index, index_videos, read_index_meta
from egokit.search.output import hit_frames, write_search_results
from egokit.search.query import Hit, SearchIndex, encode_queries, rerank_vtm, search_texts

__all__ = ["INDEX_FORMAT", "Hit", "IndexVideo", "SearchIndex", "build_index", "encode_queries", "hit_frames",
           "index_videos", "read_index_meta", "rerank_vtm", "search_texts", "write_search_results"]
