"""Load user question data (JSONL, CSV or a saved Hugging Face dataset) into the record schema.

Records come out as ``{"id", "qtype", "question", "answer", "solution", "split", "key"}``.
``split`` is ``""`` (the caller assigns splits) except for a saved ``DatasetDict``: all of its splits
are concatenated, "train" first, and its records keep ``split="train"`` for the "train" split and
``split="eval"`` for any other split ("test", "validation", …).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

class DataError(ValueError):
    """A data file is missing or malformed; the message names the file, the line and the problem."""


def _as_text(value: Any, field: str, where: str, *, required: bool) -> str:
    """Convert a field value to a stripped string, rejecting missing required fields and non-scalars."""
    if value is None:
        if required:
            raise DataError(f"{where}: missing field {field!r}")
        return ""
    if isinstance(value, (int, float, bool)):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} must be a string or a number, got {type(value).__name__}")
    text = value.strip()
    if required and not text:
        raise DataError(f"{where}: empty field {field!r}")
    return text


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line number, object) for each non-blank line of a JSONL file."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON: {e.msg}") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def _iter_csv(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, row) for each CSV data row; the header is line 1."""
    # utf-8-sig: spreadsheet exports often start with a byte-order mark that would corrupt the header.
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return
        for row in reader:
            # A row of empty cells is a blank line to a spreadsheet user, not a record.
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            yield reader.line_num, row


def _iter_hf(path: Path) -> Iterator[tuple[str, dict, str]]:
    """Yield (location, row, split) for a directory saved with `save_to_disk`."""
    import datasets  # lazy: the ML stack must stay out of import time

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"{path}: not a saved Hugging Face dataset: {e}") from None
    if isinstance(loaded, datasets.DatasetDict):
        names = sorted(loaded, key=lambda name: (name != "train", name))
        parts = [(name, loaded[name], "train" if name == "train" else "eval") for name in names]
    else:
        parts = [(None, loaded, "")]
    for name, ds, split in parts:
        for index, row in enumerate(ds):
            location = f"row {index + 1}" if name is None else f"{name} row {index + 1}"
            yield location, row, split


def _rows(path: Path) -> Iterable[tuple[int | str, dict, str]]:
    """Yield (location, raw row, split) from a data file or dataset directory."""
    if path.is_dir():
        return _iter_hf(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return ((line, row, "") for line, row in _iter_jsonl(path))
    if suffix == ".csv":
        return ((line, row, "") for line, row in _iter_csv(path))
    raise DataError(f"{path}: unsupported data format {suffix or '(no extension)'!r}; use .jsonl, .csv or a dataset directory")


def load_records(
    path: str | Path,
    *,
    question_field: str = "question",
    answer_field: str = "answer",
    qtype_field: str = "qtype",
    id_field: str = "id",
    solution_field: str = "solution",
    default_qtype: str = "general",
) -> list[dict]:
    """Load and validate user questions from JSONL, CSV or a saved HF dataset, in the record schema."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    records: list[dict] = []
    first_seen: dict[str, str] = {}
    try:
        rows = list(_rows(path))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text: {e.reason}") from None
    for location, row, split in rows:
        where = f"{path}:{location}"
        question = _as_text(row.get(question_field), question_field, where, required=True)
        record_id = _as_text(row.get(id_field), id_field, where, required=False) or f"{path.stem}-{len(records)}"
        if record_id in first_seen:
            raise DataError(f"{where}: duplicate id {record_id!r} (first at {first_seen[record_id]})")
        first_seen[record_id] = where
        records.append({
            "id": record_id,
            "qtype": _as_text(row.get(qtype_field), qtype_field, where, required=False) or default_qtype,
            "question": question,
            "answer": _as_text(row.get(answer_field), answer_field, where, required=True),
            "solution": _as_text(row.get(solution_field), solution_field, where, required=False),
            "split": split,
            "key": question,
        })
    if not records:
        raise DataError(f"{path}: no records (empty file)")
    return records


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Write records as JSONL atomically: readers see the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_jsonl(path: str | Path) -> list[dict]:
    """Read every JSON object of a JSONL file, skipping blank lines."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    return [obj for _, obj in _iter_jsonl(path)]
