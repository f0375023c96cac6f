"""Pairs read from files: every row is validated when the data is built (file, line and problem named)."""

from __future__ import annotations

import json

import pytest

from symlit.tasks import FileTask

GOOD = [f"x {i} y,{i} z" for i in range(20)]


def build(path, **kwargs):
    return FileTask(train=str(path), valid_fraction=0, test_fraction=0, **kwargs).build()["train"]


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("x 5 y", "no 'target' field"),  # the row lost its comma and target
        ("x 5 y,", "empty 'target'"),
        (",5 z", "empty 'source'"),
        ("x 5 y,5 z,extra", "3 fields where the header has 2"),
    ],
)
def test_a_bad_csv_row_is_an_error_naming_file_line_and_problem(tmp_path, bad_row, problem):
    path = tmp_path / "pairs.csv"
    rows = list(GOOD)
    rows[5] = bad_row
    path.write_text("source,target\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=rf"pairs.csv, line 7: {problem}; fix or remove the row"):
        build(path)
    kept = build(path, skip_bad_rows=True)  # or skipped and counted, when asked for
    assert len(kept["source"]) == len(GOOD) - 1 and "x 5 y" not in kept["source"]


def test_a_null_jsonl_target_names_its_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"source": f"x {i}", "target": f"{i}"} for i in range(5)]
    rows[3]["target"] = None
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ValueError, match=r"pairs.jsonl, line 4: no 'target' field"):
        build(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"data.task.train=.*pairs.csv is empty; it needs a header"),
        ("source,target\n", r"data.task.train=.*pairs.csv has no data rows; add"),
        ("source,target\nx 1,\n", r"has no data rows left after skipping bad rows"),
    ],
)
def test_empty_or_header_only_files_name_the_key_and_the_fix(tmp_path, text, message):
    path = tmp_path / "pairs.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        build(path, skip_bad_rows=True)
