"""Annotation CSVs read by column name, with errors that name the file and the missing columns.

Official loaders often index columns by position, which silently reads the wrong field from a reordered file;
reading by header name and checking the required columns up front turns that into an error before any work.
"""

from __future__ import annotations

import csv
from pathlib import Path

from egokit.errors import DataError

__all__ = ["read_csv_rows"]


def read_csv_rows(path: str | Path, required: tuple[str, ...] = (),
                  what: str = "CSV file") -> tuple[list[dict[str, str]], list[str]]:
    """``(rows, columns)`` of a CSV with a header row; a missing file, a missing required column or text that is
    not UTF-8 is a :class:`DataError` naming the file (``what`` says what it is, e.g. "EK-100 annotation file")."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            missing = [c for c in required if c not in columns]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing}; found {columns}")
            return list(reader), columns
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
