"""Carry runs off an air-gapped box: pack chosen run dirs into a verified bundle, import it elsewhere.

A bundle is a tar file (gzip-compressed when its name ends in .gz/.tgz) holding, in order:
- `ftmodel-bundle/header.json`: format name and version, when and where it was made, the runs;
- the files, at their paths relative to the workspace: `runs/<id>/...` (state.json, config.toml,
  metrics.jsonl, stage.log, reports, the offline wandb run) and the staged artifact files under
  `.wandb/data/...` that the offline runs point at (sync resolves them there, wherever the
  workspace now lives: see ftmodel.wandb_log.resolve_staged);
- `ftmodel-bundle/manifest.json` LAST: every file's size and SHA-256. It comes last so a run that
  is still writing is packed in one pass: each file is read once from one open descriptor, up to the
  size it had when opened, and hashed as it is written.

A file is carried `whole`, or, in a `--new` bundle, as an `append` piece: the bytes a file grew by
since the last bundle (metrics.jsonl rows, .wandb records, log lines of a running run), with the
hash of the prefix it continues. The box keeps a bundle ledger (`.wandb/bundle_ledger.json`) of
what each bundle carried; the receiving side appends a piece only onto exactly that prefix, so rows
arrive once however often a bundle is imported.

Import verifies everything before anything becomes visible: each member is extracted into a temp
dir inside the workspace and hashed; names must stay under `runs/` or `.wandb/data/` (no `..`, no
absolute paths, no links or devices); only when the manifest matches are files renamed into
place. Stdlib only (the console imports this).
"""

from ftmodel.bundle.pack import (
    FORMAT,
    HEADER_NAME,
    MANIFEST_NAME,
    MODEL_DIRS,
    VERSION,
    BundleError,
    BundleInfo,
    BundlePlan,
    FileEntry,
    ImportResult,
    RunCandidate,
    human_size,
    ledger_path,
    list_candidates,
    make_bundle,
    plan_bundle,
    read_ledger,
)
from ftmodel.bundle.unpack import import_bundle, import_marks, is_bundle, verify_bundle

__all__ = [
    "FORMAT",
    "HEADER_NAME",
    "MANIFEST_NAME",
    "MODEL_DIRS",
    "VERSION",
    "BundleError",
    "BundleInfo",
    "BundlePlan",
    "FileEntry",
    "ImportResult",
    "RunCandidate",
    "human_size",
    "import_bundle",
    "import_marks",
    "is_bundle",
    "ledger_path",
    "list_candidates",
    "make_bundle",
    "plan_bundle",
    "read_ledger",
    "verify_bundle",
]
