"""The config being edited in the console: the file's text, pending edits, validation, diff and save.

Edits are applied to a tomlkit document parsed from the file's text, so saving keeps the file's
comments, key order and formatting. No Textual here: the config screen drives it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from ftmodel import config as config_mod
from ftmodel.errors import FtmodelError
from ftmodel.i18n import t
from ftmodel.rundir import atomic_write_text


class ConfigChangedOnDisk(FtmodelError):
    """The file changed since it was read: saving would overwrite someone else's edit."""


def file_fingerprint(path: Path) -> tuple[float, str] | None:
    """Return (mtime, sha256) of a file, or None when it cannot be read."""
    try:
        data = Path(path).read_bytes()
        return Path(path).stat().st_mtime, hashlib.sha256(data).hexdigest()
    except OSError:
        return None


def display_value(value: Any) -> str:
    """Render a field value as the form shows it (lists comma-separated)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


class ConfigDocument:
    """One TOML config being edited: the file's text, the user's pending edits and what they'd save.

    Edits are applied to a tomlkit document parsed from the file's text, so saving keeps the file's
    comments, key order and formatting; with no edits the file is never rewritten.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.pending: dict[tuple[str, str], Any] = {}
        self.invalid: dict[tuple[str, str], str] = {}
        self.reload()

    @property
    def packaged(self) -> bool:
        """Whether this is ftmodel's own packaged default (read-only: `ftmodel init` makes a copy to edit)."""
        from ftmodel.profiles import PACKAGE_DIR

        return self.path.resolve().parent == PACKAGE_DIR

    def reload(self) -> None:
        """Read the file again and drop every pending edit."""
        self.text = self.path.read_text(encoding="utf-8")
        self.fingerprint = file_fingerprint(self.path)
        self.data = tomllib.loads(self.text)
        self.pending.clear()
        self.invalid.clear()

    def file_value(self, section: str, key: str) -> Any:
        """The value the file gives (the schema default when the file omits it)."""
        values = self.data.get(section, {})
        if key in values:
            return values[key]
        for name, _, default, _ in config_mod.field_specs(section):
            if name == key:
                return default
        raise KeyError(f"{section}.{key}")

    def value(self, section: str, key: str) -> Any:
        """The value the form shows: the pending edit, else the file's."""
        return self.pending.get((section, key), self.file_value(section, key))

    def edit(self, section: str, key: str, raw: Any) -> Any:
        """Validate and record one edit (raises ConfigError with the reason; the field is then invalid)."""
        try:
            value = config_mod.validate_value(section, key, raw)
        except config_mod.ConfigError as e:
            self.invalid[(section, key)] = str(e)
            raise
        self.invalid.pop((section, key), None)
        if _same(value, self.file_value(section, key)):
            self.pending.pop((section, key), None)
        else:
            self.pending[(section, key)] = value
        return value

    @property
    def dirty(self) -> bool:
        return bool(self.pending)

    def rendered(self) -> str:
        """The text saving would write: the file's text with the pending edits applied by tomlkit."""
        if not self.pending:
            return self.text
        import tomlkit

        doc = tomlkit.parse(self.text)
        for (section, key), value in self.pending.items():
            if section not in doc:
                doc.add(section, tomlkit.table())
            doc[section][key] = value
        return tomlkit.dumps(doc)

    def diff(self) -> str:
        """A unified diff of the file against what saving would write."""
        return "".join(
            difflib.unified_diff(
                self.text.splitlines(True),
                self.rendered().splitlines(True),
                fromfile=f"{self.path} (on disk)",
                tofile=f"{self.path} (edited)",
            )
        )

    def config(self) -> config_mod.Config:
        """The whole edited config, validated (cross-field rules too); raises ConfigError."""
        if self.invalid:
            raise config_mod.ConfigError("; ".join(self.invalid.values()))
        text = self.rendered()
        if not self.pending:
            return config_mod.from_dict(tomllib.loads(text), source=str(self.path), text=text)
        # Line numbers of the edited text are not the file's: name the file as edited, cite no line.
        return config_mod.from_dict(tomllib.loads(text), source=f"{self.path} (with unsaved edits)")

    def changed_on_disk(self) -> bool:
        """Tell whether the file differs from the text this document was read from."""
        now = file_fingerprint(self.path)
        if now is None or self.fingerprint is None:
            return now != self.fingerprint
        return now[1] != self.fingerprint[1]

    def save(self) -> bool:
        """Write the edits (validated first); return False when there was nothing to write.

        Raises ConfigChangedOnDisk instead of overwriting a file changed by someone else.
        """
        if self.changed_on_disk():
            raise ConfigChangedOnDisk(t("{path} changed on disk since it was opened", path=self.path))
        if not self.pending:
            return False
        self.config()  # never write a config that fails to load
        text = self.rendered()
        atomic_write_text(self.path, text)
        self.reload()
        return True

    def overrides(self) -> list[str]:
        """The pending edits as `--set section.key=value` specs (for a one-off run's argv)."""
        out = []
        for (section, key), value in self.pending.items():
            out.append(f"{section}.{key}={json.dumps(value)}")
        return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b) and type(a) is not bool and type(b) is not bool
        except (TypeError, ValueError):
            return False
    return a == b and type(a) is type(b)


def snapshot_diff(run_config: Path, current: config_mod.Config) -> str:
    """Diff a run's config snapshot against the current config (both rendered as full snapshots)."""
    try:
        text = Path(run_config).read_text(encoding="utf-8")
        snap = config_mod.from_dict(tomllib.loads(text))
    except (OSError, ValueError, config_mod.ConfigError) as e:
        return f"(cannot read the snapshot: {e})"
    lines = []
    a, b = snap.to_dict(), current.to_dict()
    for section in a:
        for key in a[section]:
            if a[section][key] != b[section][key]:
                lines.append(f"{section}.{key}: run {a[section][key]!r} → now {b[section][key]!r}")
    return "\n".join(lines) or "same as the current config"
