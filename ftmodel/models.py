"""Resolve, load and save models: the base (a local dir, a hub id, or the built-in tiny model) and
LoRA adapters, which live in run directories with a note of the base they belong to."""

from __future__ import annotations

import json
from pathlib import Path

from ftmodel.config import Config
from ftmodel.context import StageContext, StageError
from ftmodel.i18n import t
from ftmodel.rundir import ADAPTER_DIR, Run, find_run, latest_run
from ftmodel.workspace import Workspace

BUILTIN_TINY = "builtin:tiny"
ADAPTER_META = "ftmodel_adapter.json"


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or Path(name).expanduser().exists()


def check_model_source(cfg: Config) -> None:
    """Fail early (before any model loads) when the configured base model cannot exist."""
    name = cfg.model.name_or_path
    if name.startswith("builtin:"):
        if name != BUILTIN_TINY:
            raise StageError(
                t("model.name_or_path: unknown built-in model {name!r} (use {tiny!r})", name=name, tiny=BUILTIN_TINY)
            )
        return
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise StageError(t("model.name_or_path: model directory {path} not found", path=path))
        if not (path / "config.json").exists():
            raise StageError(
                t("model.name_or_path: {path} has no config.json (not a transformers model directory)", path=path)
            )


def tiny_spec(cfg: Config):
    """The built-in tiny model's spec, from the [model] section."""
    from ftmodel.tinymodel import TinySpec

    m = cfg.model
    return TinySpec(
        hidden_size=m.tiny_hidden_size,
        num_layers=m.tiny_layers,
        intermediate_size=2 * m.tiny_hidden_size,
        pretrain_steps=m.tiny_pretrain_steps,
        seed=m.tiny_seed,
    )


def resolve_base(ctx: StageContext) -> str:
    """Return a loadable base-model reference, building the tiny model into the workspace if needed."""
    check_model_source(ctx.cfg)
    name = ctx.cfg.model.name_or_path
    if name != BUILTIN_TINY:
        return str(Path(name).expanduser()) if _looks_like_path(name) else name
    from ftmodel.data import bank
    from ftmodel.tinymodel import ensure_tiny_base

    seed = ctx.cfg.model.tiny_seed
    path = ensure_tiny_base(
        ctx.ws.models,
        lambda: bank.pretrain_corpus(seed),
        lambda: bank.tokenizer_corpus(seed),
        tiny_spec(ctx.cfg),
        log=ctx.log,
        check_stop=ctx.check_stop,
        progress=ctx.progress,
    )
    return str(path)


def device_for(cfg: Config) -> str:
    """Pick the device: `auto` means CUDA when present."""
    import torch

    if cfg.model.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.model.device == "cuda" and not torch.cuda.is_available():
        raise StageError(t('model.device = "cuda" but no CUDA device is available'))
    return cfg.model.device


def dtype_for(cfg: Config):
    """The torch dtype for model weights."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}[
        cfg.model.dtype
    ]


def trainer_precision(cfg: Config) -> dict:
    """bf16/fp16 flags for TRL configs (TRL defaults to bf16, which the CPU refuses)."""
    return {
        "bf16": cfg.model.dtype == "bfloat16",
        "fp16": cfg.model.dtype == "float16",
        "use_cpu": device_for(cfg) == "cpu",
    }


def load_tokenizer(path: str, cfg: Config, padding_side: str = "right"):
    """Load a tokenizer, with a pad token and the requested padding side."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_base_model(path: str, cfg: Config):
    """Load the base causal LM on the configured device and dtype."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype_for(cfg), trust_remote_code=cfg.model.trust_remote_code
    )
    return model.to(device_for(cfg))


def lora_config(cfg: Config):
    """The peft LoraConfig from [lora]; trained embeddings keep their tie to the output layer."""
    from peft import LoraConfig

    lc = cfg.lora
    targets = (
        lc.target_modules
        if lc.target_modules == "all-linear"
        else [t.strip() for t in lc.target_modules.split(",") if t.strip()]
    )
    return LoraConfig(
        r=lc.r,
        lora_alpha=lc.alpha,
        lora_dropout=lc.dropout,
        target_modules=targets,
        modules_to_save=list(lc.modules_to_save) or None,
        ensure_weight_tying=bool(lc.modules_to_save),
        task_type="CAUSAL_LM",
    )


def save_adapter(model, tokenizer, out_dir: Path, *, base: str, stage: str, run_id: str, parent: str | None) -> Path:
    """Save a LoRA adapter with its tokenizer and a note of its base model and origin."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    meta = {"base": base, "stage": stage, "run": run_id, "parent": parent}
    (out_dir / ADAPTER_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out_dir


def adapter_meta(adapter_dir: Path) -> dict:
    """Read an adapter's note (base model, stage, run)."""
    adapter_dir = Path(adapter_dir)
    note = adapter_dir / ADAPTER_META
    if not note.exists() and adapter_dir.parent.name == "checkpoints":  # a checkpoint saved before they had one
        note = adapter_dir.parent.parent / ADAPTER_DIR / ADAPTER_META
    try:
        return json.loads(note.read_text())
    except (OSError, ValueError):
        raise StageError(
            t("{path}: not an ftmodel adapter (no readable {meta})", path=adapter_dir, meta=ADAPTER_META)
        ) from None


def find_adapter(ws: Workspace, ref: str | None, stage: str, checkpoint: str | None = None) -> Path:
    """Resolve an adapter: a directory, a run id, or (ref None) the latest finished run of `stage`;
    `checkpoint` (best, last or a step, see ftmodel/checkpoints.py) picks one of that run's checkpoints."""
    from ftmodel.checkpoints import select_adapter

    if ref and Path(ref).is_dir():
        path = Path(ref)
        if (path / ADAPTER_DIR).is_dir():
            path = path / ADAPTER_DIR
        if checkpoint not in (None, "last"):
            if path.name != ADAPTER_DIR:
                raise StageError(f"--checkpoint {checkpoint}: {ref} is an adapter directory, not a run's")
            path = select_adapter(path.parent, checkpoint)
    elif ref:
        try:
            path = select_adapter(find_run(ws.root, ref).path, checkpoint)
        except LookupError as e:
            raise StageError(str(e.args[0])) from None
    else:
        run: Run | None = latest_run(ws.root, stage)
        if run is None:
            raise StageError(
                t("no finished {stage} run in {path}: run `ftmodel {stage}` first", stage=stage, path=ws.runs)
            )
        path = select_adapter(run.path, checkpoint)
    if not (path / "adapter_config.json").exists():
        raise StageError(t("{path}: no LoRA adapter there (adapter_config.json missing)", path=path))
    return path


def load_adapter_model(adapter_dir: Path, cfg: Config, *, trainable: bool = False):
    """Load base + adapter; return (model, tokenizer, base reference)."""
    from peft import PeftModel

    base = adapter_meta(adapter_dir)["base"]
    model = load_base_model(base, cfg)
    model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
    return model, load_tokenizer(str(adapter_dir), cfg), base


def tokenizer_for(cfg, ws):
    """The configured model's tokenizer, without loading the model (the tiny one is trained in memory
    when its base has not been built yet: it takes about half a second)."""
    check_model_source(cfg)
    name = cfg.model.name_or_path
    if name != BUILTIN_TINY:
        path = Path(name).expanduser()
        return load_tokenizer(str(path) if path.exists() else name, cfg)
    from ftmodel.data import bank
    from ftmodel.tinymodel import build_tokenizer, is_complete

    spec = tiny_spec(cfg)
    cached = ws.models / f"tiny-{spec.fingerprint()}"
    if is_complete(cached):
        return load_tokenizer(str(cached), cfg)
    return build_tokenizer(bank.tokenizer_corpus(cfg.model.tiny_seed), spec.vocab_size)
