"""Index-coded test videos: the helpers ship in :mod:`egokit.testing.videos` (plugin tests use them too)."""

from egokit.testing.videos import (GRID, NUM_BITS, decode_all, index_image, make_chunked_video,  # noqa: F401
                                   make_index_video, read_index)
