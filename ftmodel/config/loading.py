"""Reading a config: TOML text or `--set` overrides in, a validated Config out; every error names the
file, line and dotted key path. The schema itself is in `ftmodel.config.schema`."""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from ftmodel.config.schema import SECTIONS, Config, field_specs
from ftmodel.errors import ConfigError
from ftmodel.i18n import t
from ftmodel.words import ALERT_RULES, VARIANTS

# No setting needs a number beyond this; larger ones are typos (1e30) that would only fail mid-run.
_MAX_MAGNITUDE = 1e9

# Keys that would hold a secret: the schema only ever holds the NAME of an environment variable.
_SECRET_KEY = re.compile(r"(api_key|token|secret|password)$", re.IGNORECASE)


def _locate(text: str | None, section: str, key: str | None) -> int | None:
    """Find the 1-based line of `[section]` / `key =` in a TOML text (None when absent)."""
    if not text:
        return None
    current = None
    section_line = None
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        m = re.match(r"^\[\s*([A-Za-z0-9_.\-]+)\s*\]", line)
        if m:
            current = m.group(1)
            if current == section and key is None:
                return i
            if current == section:
                section_line = i
            continue
        if current == section and key is not None and re.match(rf"^{re.escape(key)}\s*=", line):
            return i
    return section_line


def _check_value(path: str, typ: type, value: Any, meta: dict) -> Any:
    """Validate one value against its field type and bounds; return it (ints widened for floats)."""
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif typ is str:
        ok = isinstance(value, str)
    elif typ is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:  # pragma: no cover - schema only uses the types above
        ok = isinstance(value, typ)
    if not ok:
        want = {
            bool: t("true or false"),
            int: t("an integer"),
            float: t("a number"),
            str: t("a string"),
            list: t("a list of strings"),
        }.get(typ, typ.__name__)
        raise ConfigError(t("{path}: expected {want}, got {value!r}", path=path, want=want, value=value))
    if typ in (int, float) and not (math.isfinite(value) and abs(value) <= _MAX_MAGNITUDE):
        # nan/inf and absurd magnitudes (TOML and --set both accept them) would reach the trainer.
        raise ConfigError(
            t(
                "{path}: {value!r} is not a usable number (finite, at most {most:.0e} in size)",
                path=path,
                value=value,
                most=_MAX_MAGNITUDE,
            )
        )
    if meta.get("choices") and value not in meta["choices"]:
        choices = ", ".join(map(repr, meta["choices"]))
        raise ConfigError(t("{path}: {value!r} is not one of {choices}", path=path, value=value, choices=choices))
    if meta.get("lo") is not None and value < meta["lo"]:
        raise ConfigError(t("{path}: {value!r} is below the minimum {lo}", path=path, value=value, lo=meta["lo"]))
    if meta.get("hi") is not None and value > meta["hi"]:
        raise ConfigError(t("{path}: {value!r} is above the maximum {hi}", path=path, value=value, hi=meta["hi"]))
    return value


def _unwrap(value: Any) -> Any:
    """Turn tomlkit wrapper values into plain Python values."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value


def from_dict(data: dict, *, source: str = "<config>", text: str | None = None) -> Config:
    """Build and validate a Config from nested dicts; errors name the source, line and key path."""

    def fail(section: str, key: str | None, msg: str) -> ConfigError:
        line = _locate(text, section, key)
        where = f"{source}:{line}" if line else source
        return ConfigError(f"{where}: {msg}")

    cfg = Config()
    for section, values in _unwrap(data).items():
        if section == "sweep":  # not a run setting: checked here, read by `load_sweep`
            try:
                sweep_from_dict(values)
            except ConfigError as e:
                raise fail(section, None, str(e)) from None
            continue
        if section not in SECTIONS:
            hint = difflib.get_close_matches(section, SECTIONS, n=1)
            raise fail(
                section,
                None,
                t("unknown section [{section}] (did you mean [{hint}]?)", section=section, hint=hint[0])
                if hint
                else t("unknown section [{section}]", section=section),
            )
        if not isinstance(values, dict):
            raise fail(
                section,
                None,
                t("{section}: expected a table [{section}], got {value!r}", section=section, value=values),
            )
        specs = {name: (typ, meta) for name, typ, _, meta in field_specs(section)}
        target = getattr(cfg, section)
        for key, value in values.items():
            if key not in specs and _SECRET_KEY.search(key):
                raise fail(
                    section,
                    key,
                    t(
                        "{key}: secrets never go in the config; put the key in an environment variable "
                        "and name that variable instead (e.g. judge.api_key_env)",
                        key=f"{section}.{key}",
                    ),
                )
            if key not in specs:
                hint = difflib.get_close_matches(key, specs, n=1)
                raise fail(
                    section,
                    key,
                    t("unknown key {key} (did you mean {hint}?)", key=f"{section}.{key}", hint=f"{section}.{hint[0]}")
                    if hint
                    else t("unknown key {key}", key=f"{section}.{key}"),
                )
            typ, meta = specs[key]
            try:
                setattr(target, key, _check_value(f"{section}.{key}", typ, _unwrap(value), meta))
            except ConfigError as e:
                raise fail(section, key, str(e)) from None
    _check_consistency(cfg, fail)
    return cfg


def _check_consistency(cfg: Config, fail) -> None:
    """Cross-field rules that must hold before any model loads."""
    g, ln = cfg.grpo, cfg.launch
    ranks = ln.num_processes * ln.num_machines if ln.launcher != "python" else 1
    if (g.batch_size * g.grad_accum * ranks) % g.num_generations:
        raise fail(
            "grpo",
            "num_generations",
            t(
                "grpo.num_generations ({n}) must divide grpo.batch_size × grpo.grad_accum × ranks "
                "({batch} × {accum} × {ranks}): each batch holds whole groups of completions",
                n=g.num_generations,
                batch=g.batch_size,
                accum=g.grad_accum,
                ranks=ranks,
            ),
        )
    if ln.machine_rank >= ln.num_machines:
        raise fail(
            "launch",
            "machine_rank",
            t(
                "launch.machine_rank ({rank}) must be below launch.num_machines ({machines})",
                rank=ln.machine_rank,
                machines=ln.num_machines,
            ),
        )
    if cfg.filter.min_chars > cfg.filter.max_chars:
        raise fail("filter", "min_chars", t("filter.min_chars is larger than filter.max_chars"))
    if cfg.answers.tolerances or cfg.answers.aliases:  # the answer normaliser is imported only to check some
        from ftmodel.answers import parse_alias_group, parse_tolerance

        for key, parse in (("tolerances", parse_tolerance), ("aliases", parse_alias_group)):
            for item in getattr(cfg.answers, key):
                try:
                    parse(item)
                except ValueError as e:
                    raise fail("answers", key, f"answers.{key}: {e}") from None
    for item in cfg.answers.regex_qtypes:
        if item in cfg.answers.exact_qtypes:
            raise fail(
                "answers", "regex_qtypes", t("answers: {item!r} is in both exact_qtypes and regex_qtypes", item=item)
            )
    for name in cfg.alerts.stop_on:
        rules = ("nonfinite", *ALERT_RULES)
        if name not in rules:
            raise fail(
                "alerts",
                "stop_on",
                t("alerts.stop_on: unknown rule {name!r} (rules: {rules})", name=name, rules=", ".join(rules)),
            )
    variants = VARIANTS
    for name in cfg.ablation.variants:
        if name not in variants:
            raise fail(
                "ablation",
                "variants",
                t(
                    "ablation.variants: unknown variant {name!r} (use {variants})",
                    name=name,
                    variants=", ".join(variants),
                ),
            )


def parse_override(spec: str) -> tuple[str, str, Any]:
    """Parse `section.key=value` (value in TOML syntax, bare words taken as strings)."""
    if "=" not in spec or "." not in spec.split("=", 1)[0]:
        raise ConfigError(t("--set {spec}: expected section.key=value, e.g. sft.learning_rate=2e-4", spec=spec))
    path, raw = spec.split("=", 1)
    section, key = path.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def load(path: str | Path, overrides: list[str] | tuple = ()) -> Config:
    """Read, validate and return the config at `path`, with `--set` overrides applied."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(t("{path}: config file not found", path=path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(t("{path}: cannot read config ({reason})", path=path, reason=e)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(t("{path}: invalid TOML: {reason}", path=path, reason=e)) from None
    from_dict(data, source=str(path), text=text)  # errors in the file itself are reported against the file
    for spec in overrides:
        section, key, value = parse_override(spec)
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(t("--set {spec}: [{section}] is not a table", spec=spec, section=section))
        try:  # the value alone; rules across fields are checked once all overrides are in
            data[section][key] = validate_value(section, key, value)
        except ConfigError as e:
            raise ConfigError(f"--set {spec}: {e}") from None
    try:
        return from_dict(data, source=str(path), text=text)
    except ConfigError as e:  # only a rule across fields can fail here, and an override took part
        raise ConfigError(t("{error} (with --set {overrides})", error=e, overrides=" ".join(overrides))) from None


def to_toml(cfg: Config) -> str:
    """Render a full config (every field) as TOML text for run snapshots."""
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment("Snapshot of the exact config this run used (secrets are never stored)."))
    for section, values in cfg.to_dict().items():
        doc[section] = values
    return tomlkit.dumps(doc)


def validate_value(section: str, key: str, raw: Any) -> Any:
    """Check one field's value (a typed value, or the text a user typed) and return it typed.

    Text is read by the field's type: `true`/`false` for bools, numbers for ints and floats, a
    TOML array or comma-separated words for lists; strings are taken as typed. Raises ConfigError
    with the reason (unknown key, wrong type, not an allowed value, out of range).
    """
    if section not in SECTIONS:
        raise ConfigError(t("unknown section [{section}]", section=section))
    specs = {name: (typ, meta) for name, typ, _, meta in field_specs(section)}
    if key not in specs:
        raise ConfigError(t("unknown key {key}", key=f"{section}.{key}"))
    typ, meta = specs[key]
    path = f"{section}.{key}"
    value = _unwrap(raw)
    if isinstance(value, str) and typ is not str:
        text = value.strip()
        if typ is bool:
            lowered = text.lower()
            value = True if lowered == "true" else False if lowered == "false" else text
        elif typ is int:
            try:
                value = int(text.replace("_", ""))
            except ValueError:
                value = text
        elif typ is float:
            try:
                value = float(text.replace("_", ""))
            except ValueError:
                value = text
            if isinstance(value, float) and value != value:
                raise ConfigError(t("{path}: NaN is not allowed", path=path))
        elif typ is list:
            if text.startswith("["):
                try:
                    value = tomllib.loads(f"v = {text}")["v"]
                except tomllib.TOMLDecodeError as e:
                    raise ConfigError(t("{path}: not a TOML array ({reason})", path=path, reason=e)) from None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
    return _check_value(path, typ, value, meta)


def sweep_from_dict(values: Any, grid_specs: list[str] | tuple = (), stages: list[str] | None = None):
    """Build a SweepSection from a `[sweep]` table and `--grid key=v1,v2` specs; every value is checked
    with `validate_value`, so an unknown key or a bad value names both."""
    from ftmodel.config.schema import SweepSection
    from ftmodel.rundir import STAGES

    values = _unwrap(values) if values is not None else {}
    if not isinstance(values, dict):
        raise ConfigError(t("sweep: expected a table [sweep], got {value!r}", value=values))
    sweep = SweepSection()
    grid: dict[str, list] = {}
    for key, raw in values.items():
        if key == "stages":
            sweep.stages = _check_value("sweep.stages", list, raw, {})
        elif "." in key:
            if not isinstance(raw, list) or not raw:
                raise ConfigError(
                    t('sweep."{key}": expected a non-empty list of values, got {value!r}', key=key, value=raw)
                )
            grid[key] = raw
        else:
            raise ConfigError(
                t('unknown key sweep.{key} (grid keys are "section.key" = [values], plus stages)', key=key)
            )
    for spec in grid_specs:
        if "=" not in spec:
            raise ConfigError(t("--grid {spec}: expected section.key=value1,value2", spec=spec))
        key, raw = spec.split("=", 1)
        grid[key.strip()] = [v.strip() for v in raw.split(",") if v.strip()]
        if not grid[key.strip()]:
            raise ConfigError(t("--grid {spec}: no values", spec=spec))
    if stages is not None:
        sweep.stages = stages
    for key, vals in grid.items():
        section, _, name = key.partition(".")
        if section == "sweep":
            raise ConfigError(t("sweep: {key} cannot itself be swept", key=key))
        typed = []
        for v in vals:
            try:
                typed.append(validate_value(section, name, v))
            except ConfigError as e:
                raise ConfigError(t("sweep grid {key} = {value!r}: {error}", key=key, value=v, error=e)) from None
        grid[key] = typed
    unknown = [s for s in sweep.stages if s not in STAGES]
    if unknown or not sweep.stages:
        raise ConfigError(
            t(
                "sweep.stages: unknown stage {unknown} (stages: {stages})",
                unknown=", ".join(unknown) or t("(none given)"),
                stages=", ".join(STAGES),
            )
        )
    sweep.grid = grid
    return sweep


def load_sweep(path: str | Path, grid_specs: list[str] | tuple = (), stages: list[str] | None = None):
    """Read the `[sweep]` table of a config file, with `--grid`/`--stages` from the command line added."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(t("{path}: cannot read the sweep ({reason})", path=path, reason=e)) from None
    return sweep_from_dict(data.get("sweep"), grid_specs, stages)
