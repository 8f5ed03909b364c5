"""Fingerprints and lineage of stage runs: what determines a stage's output, and which runs it consumed.

A fingerprint is a digest over (1) the config keys the stage reads, (2) its input files' content
hashes, (3) the base model's identity, (4) the stage flags that change its output, and (5) the
project version. What a stage reads, consumes and writes is its `StageContract`
(`ftmodel/contracts.py`), declared in its own module and handed in by the launcher: nothing here
knows a stage by name. A started stage whose fingerprint matches a FINISHED, WHOLE run reuses that
run: a partial run (items that failed, scores the judge never gave: `rundir.partial_note`) is run
again, which fetches only what it lacks. Anything that cannot be hashed (an input missing, an
unreadable file) means "run", never "reuse". Stages that write shared workspace files (data/raw,
data/*.jsonl) also record the hashes of what they wrote; they are reused only while the workspace
still holds exactly that. Stdlib only: the CLI computes fingerprints before any model loads.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel.contracts import StageContract
from ftmodel.i18n import t
from ftmodel.rundir import ADAPTER_DIR, Run, find_run, latest_run, list_runs, partial_note, partial_retry

FINGERPRINT_VERSION = 1
# Files larger than this are identified by (size, mtime) rather than read in full: weights of a
# multi-GB base model would cost minutes per start. Adapters and data files are far below it.
CONTENT_HASH_LIMIT = 256 * 2**20

# Stage flags that change the output (workspace, resume and queue bookkeeping do not).
OUTPUT_ARGS = ("no_judge", "sft_run", "eval_sft", "model", "adapter", "adapter_run", "checkpoint")


@dataclass
class Fingerprint:
    """A stage's fingerprint: `digest` is None when it could not be computed (`missing` says why)."""

    stage: str
    digest: str | None
    parts: dict = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    missing: str | None = None
    # False where reuse never applies (export/ablation, a resumed run): nothing unexpected to tell.
    applicable: bool = True

    def as_state(self) -> dict:
        """What state.json records under `fingerprint`."""
        return {"version": FINGERPRINT_VERSION, "digest": self.digest, "parts": self.parts, "missing": self.missing}


def project_version() -> str:
    """The installed ftmodel version (part of every fingerprint: a new version reruns stages)."""
    try:
        from importlib.metadata import version

        return version("ftmodel")
    except Exception:  # an uninstalled checkout
        return "0+unknown"


def hash_path(path: Path) -> str:
    """Content hash of a file or a directory tree (names and contents; huge files by size and mtime).

    Raises OSError (FileNotFoundError when absent) so the caller can say "cannot fingerprint".
    """
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        for p in files:
            h.update(str(p.relative_to(path)).encode("utf-8") + b"\0" + _file_digest(p).encode() + b"\n")
        return h.hexdigest()
    return _file_digest(path)


def _file_digest(path: Path) -> str:
    st = path.stat()
    if st.st_size > CONTENT_HASH_LIMIT:
        return f"size:{st.st_size}:mtime:{st.st_mtime_ns}"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_identity(cfg) -> str:
    """Identify the base model: builtin:tiny by its spec (in [model]), a local dir by its files, a hub id by name."""
    name = cfg.model.name_or_path
    if name.startswith("builtin:"):
        m = cfg.model
        return f"{name}:h{m.tiny_hidden_size}:l{m.tiny_layers}:p{m.tiny_pretrain_steps}:s{m.tiny_seed}"
    path = Path(name).expanduser()
    if path.is_dir():
        return f"dir:{hash_path(path)}"
    if name.startswith(("/", ".", "~")):
        raise FileNotFoundError(t("model directory {path} not found", path=path))
    return f"hub:{name}"  # no revision is known before it loads; the name is the identity we have


def config_values(cfg, reads: tuple[str, ...]) -> dict:
    """The values of the config keys a stage reads, as a flat `{section.key: value}` dict."""
    data = cfg.to_dict()
    out = {}
    for item in reads:
        section, _, key = item.partition(".")
        if key:
            out[item] = data[section][key]
        else:
            out.update({f"{section}.{k}": v for k, v in data[section].items()})
    return dict(sorted(out.items()))


def pin_inputs(contract: StageContract, ws_root: Path, args: dict) -> dict:
    """Name the run a stage will consume (GRPO's SFT run, evaluate's adapter run) in its args.

    The worker then loads exactly the run that was fingerprinted, not whichever is latest when it
    starts. An input that cannot be found is left unpinned (the stage's preflight says why).
    """
    args = dict(args)
    consumed = contract.consumed(args)
    if consumed is not None and not consumed.ref(args):
        run = latest_run(ws_root, consumed.stage)
        if run:
            args[consumed.pin_key] = run.id
    return args


def _input_run(ws_root: Path, ref: str, checkpoint: str | None = None) -> tuple[str, Path]:
    """(run id or path, adapter dir) for an adapter reference (a run id or a directory), and the
    checkpoint `--checkpoint` picks in it (ValueError when there is no such checkpoint)."""
    from ftmodel.checkpoints import select_adapter
    from ftmodel.context import StageError

    p = Path(ref)
    if p.is_dir():
        run_ref, run_dir = str(p.resolve()), p
        if not (p / ADAPTER_DIR).is_dir():
            return run_ref, p
    else:
        run = find_run(ws_root, ref)
        run_ref, run_dir = run.id, run.path
    try:
        return run_ref, select_adapter(run_dir, checkpoint)
    except StageError as e:
        raise ValueError(str(e)) from None


def compute(contract: StageContract, cfg, ws_root: Path, args: dict) -> Fingerprint:
    """Compute a stage's fingerprint and lineage from its contract, config, pinned args and workspace inputs."""
    ws_root = Path(ws_root)
    stage = contract.stage
    if not contract.reusable:
        return Fingerprint(stage, None, missing=f"{stage} runs are never reused", applicable=False)
    if args.get("resume"):
        return Fingerprint(stage, None, missing="a resumed run continues its own checkpoint", applicable=False)
    parts: dict = {
        "stage": stage,
        "version": project_version(),
        "fingerprint_version": FINGERPRINT_VERSION,
        "config": config_values(cfg, contract.config_reads(cfg, args)),
        "args": {k: args[k] for k in OUTPUT_ARGS if args.get(k) not in (None, False)},
    }
    lineage: dict = {}
    try:
        parts["model"] = model_identity(cfg)
        inputs = {rel: hash_path(ws_root / rel) for rel in contract.inputs}
        for name, path in (contract.source_inputs(cfg) if contract.source_inputs else {}).items():
            inputs[name] = hash_path(path)
        consumed = contract.consumed(args)
        if consumed is not None:
            ref = consumed.ref(args)
            if not ref:
                return Fingerprint(stage, None, parts, lineage, missing="no adapter run to start from")
            run_ref, adapter = _input_run(ws_root, ref, args.get("checkpoint"))
            inputs["adapter"] = hash_path(adapter)
            lineage["adapter"] = run_ref
        parts["inputs"] = inputs
    except (OSError, LookupError, ValueError) as e:
        why = e.args[0] if isinstance(e, LookupError) and e.args else (getattr(e, "strerror", None) or str(e))
        return Fingerprint(
            stage,
            None,
            parts,
            lineage,
            missing=f"input unavailable: {why}" + (f" ({e.filename})" if getattr(e, "filename", None) else ""),
        )
    for rel in contract.inputs:
        producer = producer_of(ws_root, rel, parts["inputs"][rel])
        if producer:
            lineage[rel] = producer
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return Fingerprint(stage, hashlib.sha256(text.encode("utf-8")).hexdigest(), parts, lineage)


def producer_of(ws_root: Path, rel: str, digest: str) -> str | None:
    """The newest finished run whose recorded output `rel` (a file it wrote, or one inside a folder it
    wrote) has this content hash (lineage of a data file)."""
    for run in reversed(list_runs(ws_root)):
        st = run.read_state()
        outs = (st.get("fingerprint") or {}).get("outputs") if isinstance(st.get("fingerprint"), dict) else None
        if st.get("state") != "finished" or not isinstance(outs, dict):
            continue
        if rel in outs:
            if outs[rel] == digest:
                return run.id
        elif any(rel.startswith(f"{top}/") for top in outs) and (outs.get("files") or {}).get(rel) == digest:
            return run.id
    return None


def output_hashes(contract: StageContract, ws_root: Path) -> dict:
    """Content hashes of the shared workspace files a stage wrote (recorded when it finishes)."""
    out: dict = {}
    for rel in contract.shared_outputs:
        path = Path(ws_root) / rel
        try:
            out[rel] = hash_path(path)
            if path.is_dir():
                out["files"] = {f"{rel}/{p.name}": hash_path(p) for p in sorted(path.iterdir()) if p.is_file()}
        except OSError:
            out[rel] = None
    return out


NO_MATCH = "no finished run with the same inputs"


@dataclass(frozen=True)
class Plan:
    """What starting a stage comes to: the finished run it reuses (or None), its fingerprint and pinned
    args, why that run (or why none), and `refused`: the run with the same inputs that was not reused."""

    reused: Run | None
    fingerprint: Fingerprint
    args: dict
    why: str
    refused: str | None = None


def find_reusable(contract: StageContract, fp: Fingerprint, ws_root: Path) -> tuple[Run | None, str, str | None]:
    """The newest finished, whole run with this fingerprint whose outputs are intact: (run, why, None),
    or (None, why not, the newest run with the same inputs that could not be reused, if any)."""
    if fp.digest is None:
        return None, fp.missing or "no fingerprint", None
    why, refused = NO_MATCH, None
    current: dict | None = None  # the workspace's shared outputs, hashed once and only when needed

    def refuse(run: Run, reason: str) -> None:
        nonlocal why, refused
        if refused is None:  # the newest refusal is the one to tell
            why, refused = reason, run.id

    for run in reversed(list_runs(ws_root, contract.stage)):
        st = run.read_state()
        rec = st.get("fingerprint") if isinstance(st.get("fingerprint"), dict) else {}
        if st.get("state") != "finished" or rec.get("digest") != fp.digest:
            continue
        note = partial_note(st)
        if note:  # it ended with less than it was asked for: run again, which fetches only what is missing
            refuse(run, f"{run.id} is partial ({note}): running again to {partial_retry(st)}")
            continue
        outs = rec.get("outputs") if isinstance(rec.get("outputs"), dict) else {}
        if contract.shared_outputs and current is None:
            current = output_hashes(contract, ws_root)
        stale = [rel for rel in contract.shared_outputs if outs.get(rel) is None or current.get(rel) != outs.get(rel)]
        if stale:  # the workspace no longer holds what that run wrote: run again to make it so
            refuse(run, f"{run.id} had the same inputs but {', '.join(stale)} changed since")
            continue
        gone = [rel for rel in contract.run_outputs if not (run.path / rel).exists()]
        if gone:
            refuse(run, f"{run.id} had the same inputs but its {', '.join(gone)} is gone")
            continue
        return run, f"same inputs as {run.id}", None
    return None, why, refused


def plan_stage(contract: StageContract, cfg, ws_root: Path, args: dict, *, reuse: bool) -> Plan:
    """Pin a stage's input runs into its args, fingerprint it and, with `reuse`, find the run to reuse."""
    args = pin_inputs(contract, Path(ws_root), args)
    fp = compute(contract, cfg, Path(ws_root), args)
    if not reuse:
        return Plan(None, fp, args, "--force" if fp.applicable else (fp.missing or ""))
    found, why, refused = find_reusable(contract, fp, Path(ws_root))
    return Plan(found, fp, args, why, refused)


def record_reuse(run: Run, *, by: str) -> None:
    """Note in a finished run's state that a later start reused it (counted by `lineage` and sweeps)."""
    try:
        uses = run.read_state().get("reused_by")
        uses = uses if isinstance(uses, list) else []
        run.update_state(reused_by=[*uses, {"at": time.time(), "by": by}][-50:])
    except OSError:
        pass  # a read-only finished run is still reusable; only the count is lost


def lineage_lines(ws_root: Path, run: Run) -> list[str]:
    """The run and, indented under it, every run and data file it consumed (`←`), depth first."""
    lines: list[str] = []
    seen: set[str] = set()

    def visit(current: Run, indent: str) -> None:
        st = current.read_state()
        rec = st.get("fingerprint") if isinstance(st.get("fingerprint"), dict) else {}
        head = f"{indent}{'← ' if indent else ''}{st.get('stage', '?')} {current.id} [{current.status()}]"
        if current.id in seen:
            lines.append(head + " (above)")
            return
        seen.add(current.id)
        reused = st.get("reused_by") or []
        note = partial_note(st)
        lines.append(
            head
            + (f" fingerprint {rec['digest'][:12]}" if rec.get("digest") else "")
            + (f", reused {len(reused)}x" if reused else "")
            + ("; " + t("partial: {reason}", reason=note) if note else "")
        )
        lineage = st.get("lineage") if isinstance(st.get("lineage"), dict) else {}
        inputs = (rec.get("parts") or {}).get("inputs") or {}
        for key in sorted(set(lineage) | set(inputs), key=lambda k: (k != "adapter", k)):
            ref = lineage.get(key)
            try:
                parent = find_run(ws_root, ref) if ref and "/" not in ref else None
            except LookupError:
                parent = None
            if parent is not None:
                visit(parent, indent + "  ")
            elif key in inputs:
                lines.append(f"{indent}  ← {key} sha256:{str(inputs[key])[:12]}" + (f" ({ref})" if ref else ""))

    visit(run, "")
    return lines
