"""Load user question data (JSONL, CSV, Parquet or a saved Hugging Face dataset) into the record schema.

Records come out as ``{"id", "qtype", "question", "answer", "solution", "split", "key"}`` (plus
``metadata`` when `data.metadata_fields` names columns to keep); any column can feed any field.
``split`` is ``""`` (the caller assigns splits) except for a saved ``DatasetDict``: all of its splits
are concatenated, "train" first, and its records keep ``split="train"`` for the "train" split and
``split="eval"`` for any other split ("test", "validation", …).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftmodel.errors import DataError
from ftmodel.i18n import t

__all__ = ["ColumnMap", "DataError", "LoadedData", "load_data", "load_records", "read_jsonl", "write_jsonl"]


def _as_text(value: Any, field: str, where: str, *, required: bool) -> str:
    """Convert a field value to a stripped string, rejecting missing required fields and non-scalars."""
    if value is None:
        if required:
            raise DataError(t("{where}: missing field {field!r}", where=where, field=field))
        return ""
    if isinstance(value, (int, float, bool)):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(
            t(
                "{where}: field {field!r} must be a string or a number, got {kind}",
                where=where,
                field=field,
                kind=type(value).__name__,
            )
        )
    text = value.strip()
    if required and not text:
        raise DataError(t("{where}: empty field {field!r}", where=where, field=field))
    return text


def _decode(path: Path) -> str:
    """Read a text file as UTF-8 (a leading byte-order mark is dropped); a bad byte names its line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            t(
                "{path}:{line}: not UTF-8 text (byte 0x{byte:02x} at column {column}); save the file as UTF-8",
                path=path,
                line=line,
                byte=data[e.start],
                column=column,
            )
        ) from None


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line number, object) for each non-blank line of a JSONL file."""
    # split("\n"), not splitlines(): JSON text may hold U+2028 and other characters splitlines breaks on.
    for lineno, line in enumerate(_decode(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(t("{path}:{line}: invalid JSON: {reason}", path=path, line=lineno, reason=e.msg)) from None
        if not isinstance(obj, dict):
            raise DataError(
                t("{path}:{line}: expected a JSON object, got {kind}", path=path, line=lineno, kind=type(obj).__name__)
            )
        yield lineno, obj


def _next_row(reader, path: Path, line: int, what: str) -> list[str] | None:
    """The next CSV row (None at the end); a malformed one names the line it starts on."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as e:
        raise DataError(
            t("{path}:{line}: malformed CSV {what}: {reason}", path=path, line=line, what=what, reason=e)
        ) from None


def _iter_csv(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number where the row starts, row) for each CSV data row; the header is line 1."""
    reader = csv.reader(io.StringIO(_decode(path), newline=""))
    header = _next_row(reader, path, 1, t("header"))
    if header is None:
        return
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1 and h})
    if dupes:
        raise DataError(t("{path}:1: column {column!r} appears twice in the header", path=path, column=dupes[0]))
    start = reader.line_num + 1
    while (values := _next_row(reader, path, start, t("row"))) is not None:
        # A row of empty cells is a blank line to a spreadsheet user, not a record.
        if any(v.strip() for v in values):
            if len(values) != len(header):
                spans = reader.line_num > start and any("\n" in v for v in values)
                message = t(
                    "{path}:{line}: {n} values but the header has {columns} columns",
                    path=path,
                    line=start,
                    n=len(values),
                    columns=len(header),
                )
                if spans:
                    message += t(
                        " (a quoted field opens on this line and is not closed before line {end}: "
                        "an unterminated quote?)",
                        end=reader.line_num,
                    )
                raise DataError(message)
            yield start, dict(zip(header, values))
        start = reader.line_num + 1


def _iter_parquet(path: Path) -> Iterator[tuple[str, dict]]:
    """Yield (location, row) for each row of a Parquet file."""
    try:
        import pyarrow.parquet as pq  # lazy: a heavy import only a Parquet user pays for
    except ImportError:
        raise DataError(t("{path}: reading Parquet needs pyarrow (pip install pyarrow)", path=path)) from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises its own error types for every kind of damage
        raise DataError(t("{path}: not a readable Parquet file: {reason}", path=path, reason=e)) from None
    for index, row in enumerate(table.to_pylist()):
        yield f"row {index + 1}", row


def _iter_hf(path: Path) -> Iterator[tuple[str, dict, str]]:
    """Yield (location, row, split) for a directory saved with `save_to_disk`."""
    import datasets  # lazy: the ML stack must stay out of import time

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(t("{path}: not a saved Hugging Face dataset: {reason}", path=path, reason=e)) from None
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
    if suffix == ".parquet":
        return ((where, row, "") for where, row in _iter_parquet(path))
    raise DataError(
        t(
            "{path}: unsupported data format {suffix}; use .jsonl, .csv, .parquet or a dataset directory",
            path=path,
            suffix=repr(suffix) if suffix else t("(no extension)"),
        )
    )


@dataclass(frozen=True)
class ColumnMap:
    """Which column of the user's data holds each field of the record schema (`[data]` *_field keys)."""

    question: str = "question"
    answer: str = "answer"
    qtype: str = "qtype"
    id: str = "id"
    solution: str = "solution"
    choices: str = "choices"
    metadata: tuple = ()
    default_qtype: str = "general"

    @classmethod
    def from_config(cls, data) -> ColumnMap:
        """The mapping configured in a `[data]` section."""
        return cls(
            question=data.question_field,
            answer=data.answer_field,
            qtype=data.qtype_field,
            id=data.id_field,
            solution=data.solution_field,
            choices=data.choices_field,
            metadata=tuple(data.metadata_fields),
            default_qtype=data.default_qtype,
        )

    def mapped(self) -> dict[str, str]:
        """Schema field -> column, for the fields that read a column."""
        return {
            "id": self.id,
            "qtype": self.qtype,
            "question": self.question,
            "answer": self.answer,
            "solution": self.solution,
            "choices": self.choices,
        }


@dataclass
class LoadedData:
    """Records read from a user's file, with what was seen of its columns."""

    records: list[dict]
    columns: list[str]  # every column seen, in first-seen order
    found: dict[str, str]  # schema field -> the column that fed it
    unmapped: list[str] = field(default_factory=list)  # columns no field or metadata reads


def _choices_text(value: Any, where: str, column: str) -> str:
    """Options as lettered lines ("A. …"): from a list, or from text used as it is."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                return text
        else:
            return text
    if isinstance(value, (list, tuple)):
        if len(value) > 26:
            raise DataError(
                t("{where}: field {field!r} has {n} options (at most 26)", where=where, field=column, n=len(value))
            )
        return "\n".join(f"{chr(65 + i)}. {_as_text(v, column, where, required=True)}" for i, v in enumerate(value))
    raise DataError(
        t(
            "{where}: field {field!r} must be a list of options or text, got {kind}",
            where=where,
            field=column,
            kind=type(value).__name__,
        )
    )


def load_data(path: str | Path, columns: ColumnMap | None = None) -> LoadedData:
    """Load and validate user questions from JSONL, CSV, Parquet or a saved HF dataset into the record
    schema, reporting the columns seen, which column fed each field, and which columns nothing read."""
    columns = columns or ColumnMap()
    path = Path(path)
    if not path.exists():
        raise DataError(t("{path}: file not found", path=path))
    records: list[dict] = []
    seen_columns: dict[str, None] = {}
    first_seen: dict[str, str] = {}
    for location, row, split in _rows(path):
        where = f"{path}:{location}"
        seen_columns.update(dict.fromkeys(str(k) for k in row))
        question = _as_text(row.get(columns.question), columns.question, where, required=True)
        choices = _choices_text(row.get(columns.choices), where, columns.choices)
        if choices:
            question = f"{question}\n{choices}"
        record_id = _as_text(row.get(columns.id), columns.id, where, required=False) or f"{path.stem}-{len(records)}"
        if record_id in first_seen:
            raise DataError(
                t(
                    "{where}: duplicate id {id!r} (first at {first})",
                    where=where,
                    id=record_id,
                    first=first_seen[record_id],
                )
            )
        first_seen[record_id] = where
        record = {
            "id": record_id,
            "qtype": _as_text(row.get(columns.qtype), columns.qtype, where, required=False) or columns.default_qtype,
            "question": question,
            "answer": _as_text(row.get(columns.answer), columns.answer, where, required=True),
            "solution": _as_text(row.get(columns.solution), columns.solution, where, required=False),
            "split": split,
            "key": question,
        }
        metadata = {name: row[name] for name in columns.metadata if row.get(name) not in (None, "")}
        if metadata:
            record["metadata"] = metadata
        records.append(record)
    if not records:
        raise DataError(t("{path}: no records (empty file)", path=path))
    missing = [c for c in columns.metadata if c not in seen_columns]
    if missing:
        raise DataError(
            t(
                "{path}: data.metadata_fields names column {column!r}, which the file does not have "
                "(columns: {columns})",
                path=path,
                column=missing[0],
                columns=", ".join(seen_columns),
            )
        )
    found = {name: col for name, col in columns.mapped().items() if col in seen_columns}
    read = set(found.values()) | set(columns.metadata)
    return LoadedData(records, list(seen_columns), found, [c for c in seen_columns if c not in read])


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
    """Load user questions with the given column names (see load_data for the full report)."""
    return load_data(
        path,
        ColumnMap(
            question=question_field,
            answer=answer_field,
            qtype=qtype_field,
            id=id_field,
            solution=solution_field,
            default_qtype=default_qtype,
        ),
    ).records


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
        raise DataError(t("{path}: file not found", path=path))
    return [obj for _, obj in _iter_jsonl(path)]
