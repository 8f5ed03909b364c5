"""Sync receipts: what reached the server, written where runs were synced, carried back to the box.

The air-gapped box never talks to the server, so it cannot know which of its runs arrived. After a
sync, `write_receipt` records per offline run (by its workspace-relative key, the same on both
machines because bundles keep the layout): state, rows, artifacts, server and URL, and how many
bytes of the `.wandb` file were verified. `import_receipt` on the box validates such a file and
keeps it under `.wandb/receipts/`; `reached` tells `ftmodel sync --status` there what arrived,
and whether a run has grown since (then `ftmodel bundle --new` carries the rest).

Stdlib only (the console imports this).
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t
from ftmodel.rundir import atomic_write_text
from ftmodel.workspace import Workspace

FORMAT = "ftmodel-sync-receipt"
VERSION = 1
RECEIPT_DIR = "receipts"


class ReceiptError(FtmodelError):
    """A file that is not a receipt we can read (the message names the file)."""


@dataclass
class Receipt:
    """One receipt: where and when a sync ran and what each run reached."""

    path: Path
    receipt_id: str
    created: float
    host: str
    servers: list[str]
    runs: dict[str, dict] = field(default_factory=dict)  # offline run key -> entry


def receipts_dir(ws: Workspace | str | Path) -> Path:
    ws = ws if isinstance(ws, Workspace) else Workspace(Path(ws))
    return ws.wandb_home / RECEIPT_DIR


def write_receipt(
    ws: Workspace | str | Path, keys: Iterable[str], ledger: dict[str, dict], bundles: Iterable[str] = ()
) -> Path | None:
    """Write a receipt for the runs `keys` from their ledger entries (synced or partial ones only);
    return its path, or None when none of them reached the server."""
    runs = {}
    for key in keys:
        entry = ledger.get(key) or {}
        if entry.get("state") not in ("synced", "partial"):
            continue
        runs[key] = {
            k: entry.get(k)
            for k in (
                "state",
                "reason",
                "url",
                "server",
                "counts",
                "wandb_id",
                "wandb_size",
                "time",
                "entity",
                "project",
            )
        }
    if not runs:
        return None
    created = time.time()
    receipt_id = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(created))}-{socket.gethostname()}-{secrets.token_hex(2)}"
    data = {
        "format": FORMAT,
        "version": VERSION,
        "receipt_id": receipt_id,
        "created": created,
        "host": socket.gethostname(),
        "bundles": sorted(set(bundles)),
        "servers": sorted({r["server"] for r in runs.values() if r.get("server")}),
        "runs": runs,
    }
    folder = receipts_dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"receipt-{receipt_id}.json"
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    return path


def read_receipt(path: str | Path) -> Receipt:
    """Read and check one receipt file; ReceiptError names the file and what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ReceiptError(t("{path}: not a readable receipt ({reason})", path=path, reason=e)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReceiptError(t("{path}: not an ftmodel sync receipt", path=path))
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > VERSION or version < 1:
        raise ReceiptError(
            t(
                "{path}: receipt format version {version!r} is not one this ftmodel reads (up to {known})",
                path=path,
                version=version,
                known=VERSION,
            )
        )
    runs = data.get("runs")
    if not isinstance(runs, dict) or not all(isinstance(v, dict) for v in runs.values()):
        raise ReceiptError(t("{path}: `runs` is not a table of runs", path=path))
    return Receipt(
        path,
        str(data.get("receipt_id") or path.stem),
        float(data.get("created") or 0),
        str(data.get("host") or ""),
        [str(s) for s in data.get("servers") or []],
        runs,
    )


def import_receipt(ws: Workspace | str | Path, path: str | Path) -> Receipt:
    """Check a receipt carried back from the connected machine and keep it in the workspace."""
    receipt = read_receipt(path)
    folder = receipts_dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"receipt-{Path(receipt.receipt_id).name}.json"
    if target.resolve() != Path(path).resolve():
        atomic_write_text(target, Path(path).read_text(encoding="utf-8"))
    receipt.path = target
    return receipt


def list_receipts(ws: Workspace | str | Path) -> list[Receipt]:
    """Every readable receipt in the workspace, oldest first (unreadable ones are left out)."""
    out = []
    for path in sorted(receipts_dir(ws).glob("receipt-*.json")):
        try:
            out.append(read_receipt(path))
        except ReceiptError:
            continue
    return sorted(out, key=lambda r: r.created)


def reached(ws: Workspace | str | Path) -> dict[str, dict]:
    """{offline run key: its newest receipt entry, with `receipt_host` and `receipt_created`}."""
    out: dict[str, dict] = {}
    for receipt in list_receipts(ws):
        for key, entry in receipt.runs.items():
            out[key] = {
                **entry,
                "receipt_host": receipt.host,
                "receipt_created": receipt.created,
                "receipt_id": receipt.receipt_id,
            }
    return out
