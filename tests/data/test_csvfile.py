"""Annotation CSVs are read by column name; bad files are errors naming the file."""

from __future__ import annotations

import pytest

from egokit.data.csvfile import read_csv_rows
from egokit.errors import DataError


def test_rows_by_column_name(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("b,a\n2,1\n4,3\n")
    rows, columns = read_csv_rows(path, ("a",))
    assert columns == ["b", "a"] and [r["a"] for r in rows] == ["1", "3"]


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="EK-100 annotation file not found: .*x.csv"):
        read_csv_rows(tmp_path / "x.csv", what="EK-100 annotation file")
    (tmp_path / "a.csv").write_text("b\n1\n")
    with pytest.raises(DataError, match=r"a.csv: missing column\(s\) \['a'\]; found \['b'\]"):
        read_csv_rows(tmp_path / "a.csv", ("a",))
    (tmp_path / "l.csv").write_bytes(b"a\n\xff\xfe\n")
    with pytest.raises(DataError, match="l.csv: not UTF-8 text"):
        read_csv_rows(tmp_path / "l.csv", ("a",))
