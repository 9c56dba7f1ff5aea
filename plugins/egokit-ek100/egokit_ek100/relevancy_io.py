"""Load the official EK-100 relevancy matrix (``caption_relevancy_EPIC_100_retrieval_*.pkl``) without running code.

The official files are pickled numpy arrays. A generic ``pickle.load`` would execute whatever a tampered file
asks for, so egokit unpickles with a :class:`pickle.Unpickler` whose ``find_class`` allows only the few numpy
globals an array pickle needs (array reconstruction, ``ndarray``, ``dtype``); anything else is refused, as are
object arrays. ``.npy`` files (``np.save(path, matrix)``) are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from egokit.tasks.api import DataError

__all__ = ["load_relevancy"]

# (module, name) pairs a plain numpy array pickle refers to, for numpy 1.x ("numpy.core") and 2.x ("numpy._core").
_ALLOWED = {
    (module, name)
    for prefix in ("numpy.core", "numpy._core")
    for module, name in ((f"{prefix}.multiarray", "_reconstruct"), (f"{prefix}.numeric", "_frombuffer"))
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # protocol 2 stores bytes via encode


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return getattr(__import__(module, fromlist=[name]), name)


def load_relevancy(path: str | Path) -> np.ndarray:
    """The relevancy matrix (clips x sentences, float32) from an official ``.pkl`` or a ``.npy`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"EK-100 relevancy file not found: {path}")
    if path.suffix == ".npy":
        try:
            matrix = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{path}: not a plain numeric .npy array ({exc})") from None
    else:
        try:
            with path.open("rb") as f:
                matrix = _ArrayUnpickler(io.BufferedReader(f)).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as exc:
            raise DataError(
                f"{path}: refused or unreadable relevancy pickle ({exc}); egokit only loads pickles of a plain numpy "
                "array. Convert a trusted file once with numpy: "
                "np.save('relevancy.npy', pickle.load(open(path, 'rb'))) and pass relevancy=relevancy.npy"
            ) from None
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2 or matrix.dtype.kind not in "fiub":
        what = (f"{matrix.dtype} array of shape {matrix.shape}" if isinstance(matrix, np.ndarray)
                else type(matrix).__name__)
        raise DataError(f"{path}: expected a 2-D numeric (clips x sentences) relevancy matrix, got {what}")
    return matrix.astype(np.float32, copy=False)
