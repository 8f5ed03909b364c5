"""The config: its schema (`schema`: one dataclass per `[section]`, each field documented and
bounded) and its loading (`loading`: TOML and `--set` in, a validated Config out, errors that name
file, line and key). Importers use this package's names: `config.load`, `config.Config`, …"""

from ftmodel.config.loading import from_dict, load, load_sweep, parse_override, sweep_from_dict, to_toml, validate_value
from ftmodel.config.schema import (
    SECTIONS,
    AblationSection,
    AlertsSection,
    AnswersSection,
    Config,
    DataSection,
    DistillSection,
    EvalSection,
    F,
    FilterSection,
    GrpoSection,
    JudgeSection,
    LaunchSection,
    LoraSection,
    ModelSection,
    ModelServiceSection,
    SftSection,
    UiSection,
    WandbSection,
    field_specs,
)
from ftmodel.errors import ConfigError

__all__ = [
    "SECTIONS",
    "load_sweep",
    "sweep_from_dict",
    "AblationSection",
    "AlertsSection",
    "AnswersSection",
    "Config",
    "ConfigError",
    "DataSection",
    "DistillSection",
    "EvalSection",
    "F",
    "FilterSection",
    "GrpoSection",
    "JudgeSection",
    "LaunchSection",
    "LoraSection",
    "ModelSection",
    "ModelServiceSection",
    "SftSection",
    "UiSection",
    "WandbSection",
    "field_specs",
    "from_dict",
    "load",
    "parse_override",
    "to_toml",
    "validate_value",
]
