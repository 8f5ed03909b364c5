"""Text the engine writes for people and for files: JSON with real characters (UTF-8, never
`\\uXXXX`), and plain-text tables whose columns line up in a terminal even with Chinese in them.

Widths are terminal cells as `rich.cells.cell_len` counts them — the function the console (Textual,
tui/cells.py) draws with, so a CLI table and a console table agree on every string: a CJK or
full-width character takes two cells, a combining mark none, an emoji two, a joined emoji
sequence (ZWJ, flags, skin tones) two for the whole cluster."""

from __future__ import annotations

import json
import math
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


# Never at the start of a line (Chinese line breaking): they stay with the character before them.
_NO_LINE_START = set("，。、；：！？）》」』】〉”’…%,.;:!?)]}")
_NO_LINE_END = set("（《「『【〈“‘([{")


def _wrap_tokens(line: str) -> list[str]:
    """Split one line into what may not be broken: a run of narrow characters (a word), one wide
    character (a line may break between two CJK characters), or a run of spaces; closing
    punctuation sticks to what it follows, opening punctuation to what follows it."""
    tokens: list[str] = []
    for ch in line:
        space, wide = ch.isspace(), cell_width(ch) > 1
        if tokens and ch in _NO_LINE_START and not tokens[-1][-1].isspace():
            tokens[-1] += ch
        elif tokens and not space and tokens[-1][-1] in _NO_LINE_END:
            tokens[-1] += ch
        elif tokens and not wide and not space and not tokens[-1][-1].isspace() and cell_width(tokens[-1][-1]) <= 1:
            tokens[-1] += ch  # a word goes on
        elif tokens and space and tokens[-1][-1].isspace():
            tokens[-1] += ch
        else:
            tokens.append(ch)
    return tokens


def wrap(text: str, width: int) -> list[str]:
    """Wrap `text` into lines of at most `width` terminal cells: breaks at spaces, and between two
    CJK characters (Chinese has no spaces), never before closing or after opening punctuation; runs
    of spaces become one; a word wider than a line is cut. Each newline in `text` starts a new line
    (textwrap counts characters, so Chinese lines came out twice as wide as asked)."""
    width = max(1, width)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line, gap = "", False
        for token in _wrap_tokens(paragraph.strip()):
            if token[0].isspace():
                gap = True
                continue
            joiner = " " if gap and line else ""
            gap = False
            if cell_width(line + joiner + token) <= width:
                line += joiner + token
                continue
            if line:
                lines.append(line)
            line = token
            while cell_width(line) > width:  # a word longer than a line: cut it
                cut = 0
                while cut < len(line) and cell_width(line[: cut + 1]) <= width:
                    cut += 1
                cut = max(cut, 1)
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def format_table(columns: list[str], rows: list[list], *, float_format: str = "{:.3f}") -> str:
    """Render rows as an aligned plain-text table: numbers (and None, shown as `-`) right-aligned, text
    left; floats to 3 decimals; widths in terminal cells, so CJK text keeps the columns straight."""
    columns = [printable(c) for c in columns]  # cells may be a run's or a dataset's text: never obeyed
    cells = [
        [_table_float(v, float_format) if isinstance(v, float) else ("-" if v is None else printable(v)) for v in r]
        for r in rows
    ]
    widths = [max([cell_width(c), *(cell_width(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        i > 0 and all(isinstance(r[i], (int, float)) or r[i] in (None, "") for r in rows) for i in range(len(columns))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(pad(v, w, right=numeric[i]) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _table_float(value: float, float_format: str) -> str:
    """A float as a table cell: `nan` and `inf` as such, an absurd magnitude (1e308) in a few cells."""
    if math.isfinite(value) and abs(value) < 1e15:
        return float_format.format(value)
    return f"{value:.4g}"


# ---------------------------------------------------------------- text we did not write: shown, never obeyed
# A run's log, a model's completion, a dataset's question, a run directory's name or a config value may
# hold terminal control sequences: ESC [2J clears the screen, ESC ]0;…BEL retitles the window, U+202E
# reverses what follows, a lone surrogate makes a UTF-8 terminal write fail. Every such text reaches a
# terminal through `printable` (the console's widgets and the CLI's tables call it), which shows each
# control character as a visible symbol (ESC as ␛, BEL as ␇) so a user sees what is there.

# Bidirectional overrides, embeddings and isolates, marks and the Unicode line separators.
_BIDI_AND_SEPARATORS = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)


def _visible_forms() -> dict[int, str]:
    forms = {c: chr(0x2400 + c) for c in range(0x20)}  # the Control Pictures block: ␀ … ␟, ESC is ␛
    forms[0x7F] = "\u2421"  # ␡
    forms.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})  # C1: no pictures exist, name the code
    forms.update({c: f"\\u{c:04x}" for c in _BIDI_AND_SEPARATORS})
    forms.update({c: "\ufffd" for c in range(0xD800, 0xE000)})  # lone surrogates cannot be encoded at all
    return forms


_FORMS = _visible_forms()
_FORMS_KEEPING: dict[str, dict[int, str]] = {}


def printable(text: object, keep: str = "") -> str:
    """Return text with every terminal control character shown as a visible symbol instead of obeyed.

    `keep` names layout characters to pass through as they are: "\\n" for a text shown on several
    lines, "\\r" for a terminal following a progress bar. Tabs become spaces. Text with nothing
    unprintable is returned as it is (`str.isprintable` is one pass in C: cheap for every log line).
    """
    if not isinstance(text, str):
        text = str(text)
    if text.isprintable():  # no control, format, separator or surrogate character: nothing to show
        return text
    if "\t" in text and "\t" not in keep:
        text = text.expandtabs(4)
    if "\n" in keep and "\r" not in keep:
        text = text.replace("\r\n", "\n")
    forms = _FORMS_KEEPING.get(keep)
    if forms is None:
        forms = _FORMS_KEEPING[keep] = {c: f for c, f in _FORMS.items() if chr(c) not in keep}
    return text.translate(forms)


class ShownText:
    """A text stream to a terminal through which every control character is shown, not obeyed
    (newlines, carriage returns and tabs pass: a followed progress bar still redraws its line)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(printable(text, keep="\n\r\t"))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def show_controls_on_terminals() -> None:
    """Route sys.stdout and sys.stderr through ShownText when they are terminals (the CLI calls it
    once): every line the CLI prints may quote a run's files. A pipe or a file gets the text as it
    is, except that a character no encoding can write (a lone surrogate from a file name that is not
    UTF-8) is written escaped instead of failing."""
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, ShownText):
            continue
        try:
            terminal = stream.isatty()
        except (AttributeError, ValueError):
            terminal = False
        if terminal:
            setattr(sys, name, ShownText(stream))
        elif hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def human_size(n: float) -> str:
    """A byte count for people: `512 B`, `1.5 KB`, `3.2 GB`."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
