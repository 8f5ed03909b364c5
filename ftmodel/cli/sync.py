"""Weights & Biases sync and bundles: `ftmodel sync`, `ftmodel bundle` (carrying runs off an
air-gapped box and syncing them whole elsewhere)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ftmodel.cli.common import add_workspace, workspace_of
from ftmodel.i18n import t
from ftmodel.textio import pad, printable


def add_parsers(sub) -> None:
    """Register `sync` and `bundle`."""
    p = sub.add_parser("sync", help="upload offline wandb runs to WANDB_BASE_URL and verify them on the server")
    p.add_argument(
        "runs",
        nargs="*",
        metavar="RUN|BUNDLE",
        help="run id (or unique prefix), wandb run id, or a bundle file (verified and imported first)",
    )
    p.add_argument("--all", action="store_true", help="every offline run not yet synced and verified")
    p.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    p.add_argument("--status", action="store_true", help="list every offline run with its sync state")
    p.add_argument(
        "--receipt",
        action="append",
        default=[],
        metavar="FILE",
        help="on the box: import a sync receipt carried back from the connected machine, then show --status",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop one run's `wandb sync` after this long (default 600)",
    )
    add_workspace(p)
    p = sub.add_parser(
        "bundle",
        help="pack runs into a verified bundle to carry off an air-gapped box "
        "(`bundle import FILE` / `bundle verify FILE` on the other side)",
    )
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or unique prefixes) to pack")
    p.add_argument("--all", action="store_true", help="every run of the workspace")
    p.add_argument(
        "--new",
        action="store_true",
        help="only what no earlier bundle carried (rows a running run appended since included)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="bundle file to write (.tar, or .tar.gz to compress)")
    p.add_argument("--with-models", action="store_true", help="also carry checkpoints, adapters and merged models")
    p.add_argument("--dry-run", action="store_true", help="list what would be packed, with sizes; write nothing")
    add_workspace(p)


def _print_sync_status(sync, runs) -> int:
    labels = {sync.NEVER: t("never synced"), sync.SYNCED: t("synced, verified"), sync.FAILED: t("failed")}
    print(" ".join([pad(t("run"), 34), pad(t("wandb id"), 10), pad(t("size"), 9, right=True), "", t("state")]))
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
        size = sync.human_size(r.size)
        line = f"{r.run_id:34} {r.wandb_id:10} {size:>9}  {label}" + (f": {detail}" if detail else "")
        print(printable(line))  # run ids, reasons and receipt fields are files' text: never obeyed
    return 1 if any(r.state == sync.FAILED for r in runs) else 0


def cmd_sync(ns: argparse.Namespace, argv: list[str]) -> int:
    """`ftmodel sync`: exit 0 when every chosen run reached the server and was verified (runs that
    are not whole are said so), 1 when any failed or another sync holds it, 130 when interrupted."""
    from ftmodel import bundle, receipts, sync

    ns.workspace = str(workspace_of(ns))
    for path in ns.receipt:
        try:
            rec = receipts.import_receipt(ns.workspace, path)
        except receipts.ReceiptError as e:
            print(t("error: {message}", message=e), file=sys.stderr)
            return 1
        print(f"receipt {rec.receipt_id}: {len(rec.runs)} run(s) reached {', '.join(rec.servers) or 'the server'}")
    if ns.status or ns.receipt:
        runs = sync.status(ns.workspace)
        if not runs:
            print(t("no offline wandb runs in {path}", path=Path(ns.workspace) / "runs"))
            return 0
        return _print_sync_status(sync, runs)
    files = [r for r in ns.runs if bundle.is_bundle(r)]
    names = [r for r in ns.runs if r not in files]
    if not names and not files and not ns.all:
        print(
            t("error: {message}", message=t("name the runs to sync, or pass --all (see `ftmodel sync --status`)")),
            file=sys.stderr,
        )
        return 2
    carried: set[str] = set()
    for path in files:
        try:
            res = bundle.import_bundle(path, ns.workspace)
        except bundle.BundleError as e:
            print(t("error: {message}", message=e), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"\ninterrupted: nothing of {path} was imported", file=sys.stderr)
            return 130
        carried.update(res.runs)
        print(
            f"imported {path} (from {res.source_host}): {len(res.runs)} run(s), {res.written} file(s) written "
            f"({bundle.human_size(res.bytes)}), {res.unchanged} already here, in {res.seconds:.2f}s",
            flush=True,
        )
    runs = sync.select_runs(ns.workspace, [] if ns.all else names) if (names or ns.all) else []
    runs += [r for r in sync.list_offline_runs(ns.workspace) if r.run_id in carried and r not in runs]
    if not runs:
        print(t("no offline wandb runs in {path}", path=Path(ns.workspace) / "runs"))
        return 0
    results = sync.sync_runs(
        ns.workspace,
        runs,
        dry_run=ns.dry_run,
        timeout=ns.timeout or sync.DEFAULT_TIMEOUT,
        progress_cb=lambda key, msg: print(f"  {key}: {msg}", flush=True),
    )
    for res in results:
        if res.state == "dry-run":
            print(f"{res.key}: would send {res.would_send}" + (f" ({res.reason})" if res.reason else ""))
        else:
            where = f" {res.url}" if res.url and res.state in ("synced", "skipped", sync.PARTIAL) else ""
            shown = f"synced ({res.reason})" if res.state == sync.PARTIAL else res.state
            why = f" - {res.reason}" if res.state in ("failed", "busy", "interrupted") else ""
            print(f"{res.key}: {shown}{where}{why}")
    if ns.dry_run:
        return 0
    count = {s: sum(r.state == s for r in results) for s in ("failed", "busy", "interrupted", sync.PARTIAL)}
    verified = len(results) - sum(count.values())
    print(
        t("{ok} of {total} run(s) synced and verified", ok=verified, total=len(results))
        + (f", {count[sync.PARTIAL]} synced but not whole" if count[sync.PARTIAL] else "")
        + (f", {count['failed']} failed" if count["failed"] else "")
        + (f", {count['busy']} being synced elsewhere" if count["busy"] else "")
        + (f", interrupted after {len(results)}" if count["interrupted"] else "")
    )
    receipt = receipts.write_receipt(ns.workspace, [r.key for r in results], sync.read_ledger(ns.workspace))
    if receipt:
        print(f"receipt: {receipt} (carry it back; on the box: `ftmodel sync --receipt FILE` shows what arrived)")
    if count["interrupted"]:
        return 130
    return 1 if count["failed"] or count["busy"] else 0


def cmd_bundle(ns: argparse.Namespace, argv: list[str]) -> int:
    """`ftmodel bundle`: pack runs (exit 0), or `bundle import|verify FILE…` (exit 1 when refused)."""
    from ftmodel import bundle

    ns.workspace = str(workspace_of(ns))
    if ns.runs and ns.runs[0] in ("import", "verify"):
        action, files = ns.runs[0], ns.runs[1:]
        if not files:
            print(t("error: `ftmodel bundle {action} FILE…` needs a bundle file", action=action), file=sys.stderr)
            return 2
        for path in files:
            try:
                if action == "verify":
                    header = bundle.verify_bundle(path, ns.workspace)
                    print(
                        f"{path}: ok (format {header['version']}, {len(header.get('runs') or {})} run(s) "
                        f"from {header.get('host')})"
                    )
                    continue
                res = bundle.import_bundle(path, ns.workspace)
            except bundle.BundleError as e:
                print(t("error: {message}", message=e), file=sys.stderr)
                return 1
            print(
                f"imported {path} (from {res.source_host}) into {ns.workspace}: {len(res.runs)} run(s), "
                f"{res.written} file(s) written ({bundle.human_size(res.bytes)}), {res.unchanged} already here, "
                f"in {res.seconds:.2f}s"
            )
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
        print(
            f"{c.run_id:34} {c.stage:9} {c.state:10} {c.files:>6} {bundle.human_size(c.bytes):>10} "
            f"{bundle.human_size(c.model_bytes) if c.model_bytes else '-':>10}"
        )
    models = bundle.human_size(plan.model_bytes)
    if plan.model_bytes:
        print(
            f"model files (checkpoints, adapters, merged): {models} "
            + ("included" if plan.with_models else "left out; pass --with-models to carry them")
        )
    print(f"to carry: {len(plan.entries)} file(s), {bundle.human_size(plan.bytes)}")
    if ns.dry_run:
        return 0
    try:
        info = bundle.make_bundle(ns.workspace, ns.output, plan=plan, new_only=ns.new)
    except bundle.BundleError as e:
        print(t("error: {message}", message=e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: no bundle written to {ns.output}", file=sys.stderr)
        return 130
    rate = info.bytes_in / info.seconds / 2**20 if info.seconds else 0
    print(
        f"wrote {info.path}: {len(info.runs)} run(s), {info.files} file(s), {bundle.human_size(info.bytes_in)} -> "
        f"{bundle.human_size(info.bytes_out)} in {info.seconds:.2f}s ({rate:.1f} MB/s)"
    )
    print(f"on the connected machine: `ftmodel sync {info.path.name} --workspace W` (verifies, imports, syncs)")
    return 0
