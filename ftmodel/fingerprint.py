"""Fingerprints and lineage of stage runs: what determines a stage's output, and which runs it consumed.

A fingerprint is a digest over (1) the config keys the stage reads (one table, `STAGE_READS`), (2)
its input files' content hashes, (3) the base model's identity, (4) the stage flags that change
its output, and (5) the project version. A started stage whose fingerprint matches a FINISHED run
reuses that run. Anything that cannot be hashed (an input missing, an unreadable file) means "run",
never "reuse". Stages that write shared workspace files (data/raw, data/*.jsonl) also record the
hashes of what they wrote; they are reused only while the workspace still holds exactly that.
Stdlib only: the CLI computes fingerprints before any model loads.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ftmodel.rundir import Run, find_run, latest_run, list_runs

FINGERPRINT_VERSION = 1
# Files larger than this are identified by (size, mtime) rather than read in full: weights of a
# multi-GB base model would cost minutes per start. Adapters and data files are far below it.
CONTENT_HASH_LIMIT = 256 * 2**20

# What each stage reads: whole sections ("lora") or single keys ("data.system_prompt"). Sections a
# stage reads only when a feature is on are added by `_reads` (the judge). None: never reused.
STAGE_READS: dict[str, tuple[str, ...] | None] = {
    "prepare": ("data", "model", "answers"),
    "distill": (
        "distill.backend",
        "distill.base_url",
        "distill.model",
        "distill.temperature",
        "distill.max_tokens",
        "distill.builtin_error_rate",
        "distill.max_samples",
        "data.system_prompt",
    ),
    "filter": ("filter", "answers"),
    "sft": (
        "model",
        "lora",
        "sft",
        "data.system_prompt",
        "launch.launcher",
        "launch.num_processes",
        "launch.num_machines",
    ),  # ranks change the effective batch
    "grpo": (
        "model",
        "lora",
        "grpo",
        "answers",
        "data.system_prompt",
        "launch.launcher",
        "launch.num_processes",
        "launch.num_machines",
    ),
    "evaluate": ("model", "eval", "answers", "data.system_prompt"),
    "export": None,  # writes a merged model wherever asked: cheap to redo relative to its risk
    "ablation": None,  # compares whatever is latest: its inputs are not pinned
    "pipeline": None,  # the driver; its stages are fingerprinted one by one
}
# Workspace files (relative to the workspace) each stage reads, and the shared ones it writes.
STAGE_INPUT_FILES = {
    "prepare": (),
    "distill": ("data/raw/train.jsonl",),
    "filter": ("data/distilled.jsonl",),
    "sft": ("data/sft.jsonl",),
    "grpo": ("data/raw/train.jsonl",),
    "evaluate": ("data/raw/eval.jsonl",),
}
STAGE_SHARED_OUTPUTS = {"prepare": ("data/raw",), "distill": ("data/distilled.jsonl",), "filter": ("data/sft.jsonl",)}
# Stage flags that change the output (workspace, resume and queue bookkeeping do not).
OUTPUT_ARGS = ("no_judge", "sft_run", "eval_sft", "model", "adapter", "adapter_run")


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
        raise FileNotFoundError(f"model directory {path} not found")
    return f"hub:{name}"  # no revision is known before it loads; the name is the identity we have


def _reads(stage: str, cfg, args: dict) -> tuple[str, ...]:
    reads = tuple(STAGE_READS.get(stage) or ())
    judged = (stage == "grpo" and cfg.grpo.use_judge) or (stage == "evaluate" and cfg.judge.enabled)
    if judged and not args.get("no_judge"):
        reads += ("judge.backend", "judge.base_url", "judge.model", "judge.temperature", "judge.max_tokens")
    return reads


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


def pin_inputs(stage: str, ws_root: Path, args: dict) -> dict:
    """Name the runs a stage will consume (GRPO's SFT run, evaluate's adapter run) in its args.

    The worker then loads exactly the run that was fingerprinted, not whichever is latest when it
    starts. An input that cannot be found is left unpinned (the stage's preflight says why).
    """
    args = dict(args)
    if stage == "grpo" and not args.get("sft_run"):
        run = latest_run(ws_root, "sft")
        if run:
            args["sft_run"] = run.id
    if stage == "evaluate" and not args.get("adapter") and not args.get("adapter_run"):
        which = args.get("model") or ("sft" if args.get("eval_sft") else "grpo")
        if which != "base":
            run = latest_run(ws_root, which)
            if run:
                args["adapter_run"] = run.id
    return args


def _input_run(ws_root: Path, ref: str) -> tuple[str, Path]:
    """(run id or path, adapter dir) for an adapter reference (a run id or a directory)."""
    p = Path(ref)
    if p.is_dir():
        return str(p.resolve()), (p / "adapter" if (p / "adapter").is_dir() else p)
    run = find_run(ws_root, ref)
    return run.id, run.path / "adapter"


def compute(stage: str, cfg, ws_root: Path, args: dict) -> Fingerprint:
    """Compute a stage's fingerprint and lineage from its config, pinned args and workspace inputs."""
    ws_root = Path(ws_root)
    if STAGE_READS.get(stage) is None:
        return Fingerprint(stage, None, missing=f"{stage} runs are never reused", applicable=False)
    if args.get("resume"):
        return Fingerprint(stage, None, missing="a resumed run continues its own checkpoint", applicable=False)
    parts: dict = {
        "stage": stage,
        "version": project_version(),
        "fingerprint_version": FINGERPRINT_VERSION,
        "config": config_values(cfg, _reads(stage, cfg, args)),
        "args": {k: args[k] for k in OUTPUT_ARGS if args.get(k) not in (None, False)},
    }
    lineage: dict = {}
    try:
        parts["model"] = model_identity(cfg)
        inputs = {}
        for rel in STAGE_INPUT_FILES.get(stage, ()):
            inputs[rel] = hash_path(ws_root / rel)
        if stage == "prepare" and cfg.data.source != "builtin":
            from ftmodel.stages.prepare import source_path

            inputs["data.source"] = hash_path(source_path(cfg.data.source))
        ref = args.get("sft_run") if stage == "grpo" else (args.get("adapter") or args.get("adapter_run"))
        if stage in ("grpo", "evaluate") and (stage == "grpo" or ref or args.get("model") != "base"):
            if not ref:
                return Fingerprint(stage, None, parts, lineage, missing="no adapter run to start from")
            run_ref, adapter = _input_run(ws_root, ref)
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
    for rel in STAGE_INPUT_FILES.get(stage, ()):
        producer = producer_of(ws_root, rel, parts["inputs"][rel])
        if producer:
            lineage[rel] = producer
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return Fingerprint(stage, hashlib.sha256(text.encode("utf-8")).hexdigest(), parts, lineage)


def producer_of(ws_root: Path, rel: str, digest: str) -> str | None:
    """The newest finished run whose recorded output `rel` has this content hash (lineage of a data file)."""
    top = rel if rel in ("data/distilled.jsonl", "data/sft.jsonl") else "data/raw"
    for run in reversed(list_runs(ws_root)):
        st = run.read_state()
        outs = (st.get("fingerprint") or {}).get("outputs") if isinstance(st.get("fingerprint"), dict) else None
        if st.get("state") == "finished" and isinstance(outs, dict) and top in outs:
            if top == rel and outs[top] == digest:
                return run.id
            if top != rel and (outs.get("files") or {}).get(rel) == digest:
                return run.id
    return None


def output_hashes(stage: str, ws_root: Path) -> dict:
    """Content hashes of the shared workspace files a stage wrote (recorded when it finishes)."""
    out: dict = {}
    for rel in STAGE_SHARED_OUTPUTS.get(stage, ()):
        path = Path(ws_root) / rel
        try:
            out[rel] = hash_path(path)
            if path.is_dir():
                out["files"] = {f"{rel}/{p.name}": hash_path(p) for p in sorted(path.iterdir()) if p.is_file()}
        except OSError:
            out[rel] = None
    return out


def find_reusable(stage: str, fp: Fingerprint, ws_root: Path) -> tuple[Run | None, str]:
    """The newest finished run with this fingerprint whose outputs are intact, or (None, why not)."""
    if fp.digest is None:
        return None, fp.missing or "no fingerprint"
    why = "no finished run with the same inputs"
    for run in reversed(list_runs(ws_root, stage)):
        st = run.read_state()
        rec = st.get("fingerprint") if isinstance(st.get("fingerprint"), dict) else {}
        if st.get("state") != "finished" or rec.get("digest") != fp.digest:
            continue
        outs = rec.get("outputs") or {}
        stale = [
            rel
            for rel in STAGE_SHARED_OUTPUTS.get(stage, ())
            if outs.get(rel) is None or output_hashes(stage, ws_root).get(rel) != outs.get(rel)
        ]
        if stale:  # the workspace no longer holds what that run wrote: run again to make it so
            why = f"{run.id} had the same inputs but {', '.join(stale)} changed since"
            continue
        if stage in ("sft", "grpo") and not (run.path / "adapter" / "adapter_config.json").exists():
            why = f"{run.id} had the same inputs but its adapter is gone"
            continue
        return run, f"same inputs as {run.id}"
    return None, why


def plan_stage(stage: str, cfg, ws_root: Path, args: dict, *, reuse: bool):
    """Pin a stage's input runs into its args and fingerprint it: (reusable run or None, fingerprint, args)."""
    args = pin_inputs(stage, Path(ws_root), args)
    fp = compute(stage, cfg, Path(ws_root), args)
    found = find_reusable(stage, fp, Path(ws_root))[0] if reuse else None
    return found, fp, args


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
        lines.append(
            head
            + (f" fingerprint {rec['digest'][:12]}" if rec.get("digest") else "")
            + (f", reused {len(reused)}x" if reused else "")
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
