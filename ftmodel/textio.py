"""Text the engine writes for people and for files: JSON with real characters (UTF-8, never
`\\uXXXX`), and plain-text tables whose columns line up in a terminal even with Chinese in them.

Widths are terminal cells as `rich.cells.cell_len` counts them — the function the console (Textual,
tui/cells.py) draws with, so a CLI table and a console table agree on every string: a CJK or
full-width character takes two cells, a combining mark none, an emoji two, a joined emoji
sequence (ZWJ, flags, skin tones) two for the whole cluster."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.cells import cell_len


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """JSON text with real characters (what every report and data file stores)."""
    return json.dumps(obj, indent=indent, ensure_ascii=False)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write obj as indented UTF-8 JSON atomically (readers see the old file or the whole new one)."""
    path = Path(path)
    write_text_atomic(path, dumps(obj) + "\n")
    return path


def write_jsonl_lines(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write rows as UTF-8 JSONL atomically, one compact object per line."""
    path = Path(path)
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text to a temp file beside path, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cell_width(text: str) -> int:
    """Columns `text` takes in a terminal (rich's count, the console's own; see the module's docstring)."""
    return cell_len(text)


def pad(text: str, width: int, *, right: bool = False) -> str:
    """Pad text with spaces to `width` terminal cells (left-aligned unless right=True)."""
    fill = " " * max(0, width - cell_width(text))
    return fill + text if right else text + fill


def format_table(columns: list[str], rows: list[list], *, float_format: str = "{:.3f}") -> str:
    """Render rows as an aligned plain-text table: numbers (and None, shown as `-`) right-aligned, text
    left; floats to 3 decimals; widths in terminal cells, so CJK text keeps the columns straight."""
    cells = [
        [float_format.format(v) if isinstance(v, float) else ("-" if v is None else str(v)) for v in r] for r in rows
    ]
    widths = [max([cell_width(c), *(cell_width(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        i > 0 and all(isinstance(r[i], (int, float)) or r[i] in (None, "") for r in rows) for i in range(len(columns))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(pad(v, w, right=numeric[i]) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def human_size(n: float) -> str:
    """A byte count for people: `512 B`, `1.5 KB`, `3.2 GB`."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
