"""Configs to start from, shipped inside the package, and the one rule that finds the config a command
uses when none is named — the same for the CLI and the console, from any directory.

Order: `--config FILE`; else `./ftmodel.toml` (what `ftmodel init` writes); else
`./configs/default.toml` (a checkout of the repository); else the packaged embedded default.
`configs/default.toml` in the repository and `default.toml` here are the same file (a test keeps
them identical), so a pip-installed ftmodel behaves like a checkout.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t

PACKAGE_DIR = Path(__file__).resolve().parent
LOCAL_CONFIG = "ftmodel.toml"
CHECKOUT_CONFIG = Path("configs") / "default.toml"

SAMPLE_PREFIX = "sample:"

# name -> (config file here, what it is)
PROFILES = {
    "default": ("default.toml", "embedded default: tiny local model, built-in finance bank, CPU, wandb offline"),
    "smollm2-135m": ("smollm2-135m.toml", "SmolLM2-135M-Instruct (a real pretrained model) on CPU, built-in bank"),
    "smollm2-135m-zh": (
        "smollm2-135m-zh.toml",
        "SmolLM2-135M-Instruct on CPU, the shipped Chinese finance sample (盈亏判断, 百分比变化, 名词解释)",
    ),
}


class ProfileError(FtmodelError):
    """A profile or config location problem, phrased for the user."""


@dataclass(frozen=True)
class ConfigChoice:
    """The config file a command uses, and why that one."""

    path: Path
    reason: str  # "given", "local", "checkout" or "packaged"

    def describe(self) -> str:
        """One line for the user: which file, and why."""
        why = {
            "given": "",
            "local": f" (./{LOCAL_CONFIG})",
            "checkout": " (./configs/default.toml)",
            "packaged": " (" + t("packaged embedded default; `ftmodel init` writes ./ftmodel.toml to edit") + ")",
        }
        return t("config: {path}", path=self.path) + why[self.reason]


def resolve_config(given: str | Path | None, cwd: Path | None = None) -> ConfigChoice:
    """Pick the config file: the one given, else ./ftmodel.toml, ./configs/default.toml, the packaged default."""
    if given:
        return ConfigChoice(Path(given), "given")
    cwd = Path.cwd() if cwd is None else cwd
    if (cwd / LOCAL_CONFIG).is_file():
        return ConfigChoice(cwd / LOCAL_CONFIG, "local")
    if (cwd / CHECKOUT_CONFIG).is_file():
        return ConfigChoice(cwd / CHECKOUT_CONFIG, "checkout")
    return ConfigChoice(PACKAGE_DIR / PROFILES["default"][0], "packaged")


def sample_path(source: str) -> Path | None:
    """The packaged file a `sample:NAME` data source names (None for any other source)."""
    if not source.startswith(SAMPLE_PREFIX):
        return None
    name = source[len(SAMPLE_PREFIX) :]
    path = PACKAGE_DIR / "samples" / name
    if "/" in name or not path.is_file():
        shipped = ", ".join(sorted(p.name for p in (PACKAGE_DIR / "samples").glob("*.*")))
        raise ProfileError(
            t("data.source: no shipped sample {name!r} (samples: {shipped})", name=name, shipped=shipped)
        )
    return path


def data_source_path(source: str) -> Path:
    """The file or directory a user-data source names: a shipped `sample:NAME`, else the path itself
    (`~` expanded). Raises ProfileError for an unknown sample."""
    return sample_path(source) or Path(source).expanduser()


def init(directory: str | Path, profile: str = "default", *, force: bool = False) -> Path:
    """Write a commented config for a profile to directory/ftmodel.toml and return its path."""
    if profile not in PROFILES:
        raise ProfileError(
            t("unknown profile {profile!r} (profiles: {profiles})", profile=profile, profiles=", ".join(PROFILES))
        )
    directory = Path(directory)
    target = directory / LOCAL_CONFIG
    if target.exists() and not force:
        raise ProfileError(t("{path} already exists (pass --force to overwrite it)", path=target))
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PACKAGE_DIR / PROFILES[profile][0], target)
    return target
