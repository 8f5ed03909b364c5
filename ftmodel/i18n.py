"""Translate user-facing messages: `t("English text {x}", x=1)` in the chosen language.

Message ids are the English text itself (gettext style), so an untranslated message still reads
well. Catalogs are `ftmodel/locale/<lang>.po` files read by a tiny loader (msgid/msgstr pairs,
single or continued quoted lines); no Textual and no third-party imports, so the CLI can use it too.
The language is explicit, else FTMODEL_LANG, else LC_ALL/LC_MESSAGES/LANG starting with `zh`.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from string import Formatter

LANGUAGES = ("en", "zh")
LOCALE_DIR = Path(__file__).parent / "locale"
_catalogs: dict[str, dict[str, str]] = {}
_current = "en"


def detect_language(explicit: str | None = None, environ=None) -> str:
    """Pick the UI language: `explicit` if given (e.g. a config key), else the environment."""
    env = os.environ if environ is None else environ
    for value in (explicit, env.get("FTMODEL_LANG")):
        if value:
            lang = value.strip().lower().replace("-", "_").split("_")[0]
            if lang in LANGUAGES:
                return lang
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:  # the first one set decides, as in POSIX locale lookup
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def set_language(lang: str | None = None) -> str:
    """Make `lang` (or the detected language) current; return it."""
    global _current
    _current = detect_language(lang)
    return _current


def language() -> str:
    """The current UI language."""
    return _current


def parse_po(text: str, source: str = "<po>") -> dict[str, str]:
    """Read msgid/msgstr pairs from .po text (comments and empty translations are skipped)."""
    entries: dict[str, str] = {}
    msgid = msgstr = None
    target = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid "):
            if msgid and msgstr:
                entries[msgid] = msgstr
            msgid, msgstr, target = _unquote(line[6:], source, number), None, "id"
        elif line.startswith("msgstr "):
            msgstr, target = _unquote(line[7:], source, number), "str"
        elif line.startswith('"') and target == "id":
            msgid += _unquote(line, source, number)
        elif line.startswith('"') and target == "str":
            msgstr += _unquote(line, source, number)
        else:
            raise ValueError(f"{source}:{number}: cannot read {raw!r}")
    if msgid and msgstr:
        entries[msgid] = msgstr
    return entries


def _unquote(text: str, source: str, number: int) -> str:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"{source}:{number}: bad string {text!r}") from e
    if not isinstance(value, str):
        raise ValueError(f"{source}:{number}: not a string: {text!r}")
    return value


def catalog(lang: str) -> dict[str, str]:
    """The translations of one language (English: none; ids are English)."""
    if lang not in _catalogs:
        path = LOCALE_DIR / f"{lang}.po"
        _catalogs[lang] = parse_po(path.read_text(encoding="utf-8"), str(path)) if path.exists() else {}
    return _catalogs[lang]


def t(msgid: str, /, **fields) -> str:
    """Translate `msgid` into the current language and fill its `{placeholders}`."""
    text = catalog(_current).get(msgid, msgid) if _current != "en" else msgid
    return text.format(**fields) if fields else text


def placeholders(text: str) -> set[str]:
    """The `{names}` a message fills (to check that a translation keeps them)."""
    return {name for _, name, _, _ in Formatter().parse(text) if name is not None}
