"""The config schema: one typed source of truth that validates, documents and locates errors.

Every section is a dataclass whose fields carry their documentation, allowed values and bounds in
`metadata`. The console builds its form and help text from the same metadata. Sections are named
`…Section` so they are never mistaken for the TRL / peft classes they feed (`SFTConfig`,
`GRPOConfig`, `LoraConfig`). (Over 400 lines: one dataclass per `[section]`, every field with its
documentation and bounds — the single source of truth is easier to read whole than split.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from ftmodel.i18n import t


def F(default: Any, doc: str, *, choices: tuple | None = None, lo: float | None = None, hi: float | None = None) -> Any:
    """Declare a schema field with its documentation, allowed values and bounds."""
    meta = {"doc": doc, "choices": choices, "lo": lo, "hi": hi}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelSection:
    """The base model and how to load it."""

    name_or_path: str = F(
        "builtin:tiny",
        "Base model: a local model directory, a hub id (downloaded on your own "
        "server), or `builtin:tiny` for the embedded tiny model built locally.",
    )
    dtype: str = F(
        "float32", "Weights dtype for training and inference.", choices=("float32", "bfloat16", "float16", "auto")
    )
    device: str = F(
        "auto", "Where to run: `auto` picks CUDA when present, else the CPU.", choices=("auto", "cpu", "cuda")
    )
    trust_remote_code: bool = F(False, "Allow model code shipped with the checkpoint to run.")
    max_seq_length: int = F(256, "Longest prompt + completion, in tokens, used for SFT.", lo=16)
    tiny_hidden_size: int = F(128, "builtin:tiny only: hidden size.", lo=16)
    tiny_layers: int = F(2, "builtin:tiny only: transformer layers.", lo=1)
    tiny_pretrain_steps: int = F(
        150, "builtin:tiny only: steps of brief LM pre-training on question text (never the answer format).", lo=0
    )
    tiny_seed: int = F(0, "builtin:tiny only: seed for the tokenizer corpus and pre-training.")


@dataclass
class DataSection:
    """Where questions come from and how they are split and prompted."""

    source: str = F(
        "builtin",
        "`builtin` (the generated finance question bank) or a path to a JSONL / CSV file "
        "or a `datasets` directory saved with save_to_disk.",
    )
    seed: int = F(0, "Seed of the built-in generator and of the train/eval split.")
    n_train: int = F(2000, "builtin: number of training questions.", lo=1)
    n_eval: int = F(200, "builtin: number of held-out evaluation questions.", lo=1)
    qtypes: list = F([], "builtin: question types to generate (empty: all).")
    eval_fraction: float = F(0.1, "User data: fraction held out for evaluation.", lo=0.0, hi=0.9)
    question_field: str = F("question", "User data: column holding the question.")
    answer_field: str = F("answer", "User data: column holding the gold answer.")
    qtype_field: str = F("qtype", "User data: column holding the question type (optional).")
    id_field: str = F("id", "User data: column holding a unique id (optional; missing ids are numbered).")
    solution_field: str = F(
        "solution", "User data: column holding a worked solution, used by distill's `builtin` backend (optional)."
    )
    choices_field: str = F(
        "choices",
        "User data: column holding answer options (a list, or text), appended "
        "to the question as lettered lines (optional).",
    )
    metadata_fields: list = F(
        [],
        "User data: extra columns kept with each record under `metadata`; any other "
        "unknown column is reported by `ftmodel data check`.",
    )
    default_qtype: str = F("general", "User data: question type of rows with no qtype value.")
    system_prompt: str = F(
        "Reply as <think>reasoning</think><answer>answer</answer>.",
        "System message put before every question (empty: none).",
    )


@dataclass
class AnswersSection:
    """How a predicted answer is compared with the gold one, by the filter, the GRPO accuracy reward and
    evaluation alike. Matching is Unicode-aware by default (full-width forms, CJK punctuation and quotes,
    currency signs and units, thousands separators, percent forms, Unicode minus)."""

    numeric_abs_tol: float = F(0.01, "Two numeric answers match within this absolute difference …", lo=0.0)
    numeric_rel_tol: float = F(1e-3, "… or within this fraction of the gold value (large amounts).", lo=0.0, hi=1.0)
    exact_qtypes: list = F([], "Question types compared as exact text (only surrounding spaces ignored).")
    regex_qtypes: list = F(
        [],
        "Question types whose gold answer is a regular expression that the answer must "
        "match in full (case-insensitive), e.g. `盈利|获利`.",
    )
    tolerances: list = F([], "Per-type absolute numeric tolerance, as `qtype=tolerance` (e.g. `percent_change=0.1`).")
    aliases: list = F([], "Groups of answers that mean the same, as `a=b=c` (e.g. `盈利=获利=赚钱`).")


@dataclass
class ModelServiceSection:
    """How to reach a teacher or judge model: an OpenAI-compatible server or a local model directory."""

    backend: str = F(
        "openai",
        "`openai`: an OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama, a "
        "hosted API); `hf`: a local model directory loaded with transformers.",
        choices=("openai", "hf"),
    )
    base_url: str = F("http://127.0.0.1:8000/v1", "openai: base URL of the server (…/v1).")
    model: str = F("", "openai: the served model's name; hf: a local model directory.")
    api_key_env: str = F(
        "OPENAI_API_KEY",
        "NAME of the environment variable holding the API key (never the key "
        "itself); an unset variable means no key (fine for local servers).",
    )
    timeout_s: float = F(
        60.0,
        "Seconds of silence (no byte of a streamed reply) before the request is given up "
        "and retried; a long reply that keeps streaming is never cut.",
        lo=0.1,
    )
    max_retries: int = F(3, "Retries after a timeout, a refused connection, HTTP 429/5xx or a malformed reply.", lo=0)
    concurrency: int = F(8, "Requests in flight at once.", lo=1, hi=256)
    max_tokens: int = F(1024, "Longest reply, in tokens.", lo=1)
    temperature: float = F(0.0, "Sampling temperature of the replies.", lo=0.0, hi=10.0)


@dataclass
class DistillSection(ModelServiceSection):
    """The teacher that writes worked solutions."""

    backend: str = F(
        "builtin",
        "`builtin`: the bank's worked solutions (embedded default); `openai`: an "
        "OpenAI-compatible server; `hf`: a local model directory.",
        choices=("builtin", "openai", "hf"),
    )
    api_key_env: str = F("TEACHER_API_KEY", "NAME of the environment variable holding the teacher's API key.")
    temperature: float = F(0.7, "Sampling temperature of the teacher.", lo=0.0, hi=10.0)
    builtin_error_rate: float = F(
        0.05,
        "builtin: fraction of solutions the teacher gets wrong or malformed, so the filter has something to remove.",
        lo=0.0,
        hi=1.0,
    )
    max_samples: int = F(0, "Distil at most this many questions (0: all).", lo=0)


@dataclass
class FilterSection:
    """Which distilled samples are kept for SFT."""

    require_format: bool = F(True, "Keep only strictly formatted <think>…</think><answer>…</answer> samples.")
    require_correct: bool = F(True, "Keep only samples whose answer matches the gold answer.")
    dedup: bool = F(True, "Drop samples whose question was already kept.")
    min_chars: int = F(10, "Drop solutions shorter than this many characters.", lo=0)
    max_chars: int = F(600, "Drop solutions longer than this many characters.", lo=1)


@dataclass
class LoraSection:
    """The LoRA adapter trained by SFT and refined by GRPO."""

    r: int = F(16, "LoRA rank.", lo=1)
    alpha: int = F(32, "LoRA alpha (scale = alpha / r).", lo=1)
    dropout: float = F(0.0, "LoRA dropout.", lo=0.0, hi=0.9)
    target_modules: str = F("all-linear", "Modules to adapt: `all-linear` or a comma-separated list of names.")
    modules_to_save: list = F(
        [],
        "Modules trained in full beside the adapter (e.g. `embed_tokens`); their "
        "weight tying with the output layer is kept.",
    )


@dataclass
class SftSection:
    """Supervised fine-tuning with TRL's SFTTrainer."""

    learning_rate: float = F(2e-4, "Peak learning rate.", lo=0.0, hi=1.0)
    lr_scheduler: str = F(
        "cosine", "Learning-rate schedule.", choices=("cosine", "linear", "constant", "constant_with_warmup")
    )
    warmup_ratio: float = F(0.03, "Fraction of steps spent warming up.", lo=0.0, hi=0.5)
    epochs: float = F(1.0, "Epochs over the SFT data (ignored when max_steps > 0).", lo=0.0)
    max_steps: int = F(0, "Stop after this many optimizer steps (0: use epochs).", lo=0)
    batch_size: int = F(8, "Per-device batch size.", lo=1)
    grad_accum: int = F(1, "Gradient accumulation steps.", lo=1)
    save_steps: int = F(50, "Save a checkpoint every N steps (resume point).", lo=1)
    save_total_limit: int = F(2, "Checkpoints kept on disk.", lo=1)
    seed: int = F(0, "Training seed.")
    on_long_samples: str = F(
        "warn",
        "Samples longer than model.max_seq_length lose their end (the answer) in "
        "training: `warn` says how many and what to set, `drop` leaves them out, `error` "
        "refuses to start.",
        choices=("warn", "drop", "error"),
    )


@dataclass
class GrpoSection:
    """GRPO with TRL's GRPOTrainer, starting from the SFT adapter."""

    learning_rate: float = F(5e-6, "Peak learning rate.", lo=0.0, hi=1.0)
    max_steps: int = F(0, "Stop after this many optimizer steps (0: use epochs).", lo=0)
    epochs: float = F(1.0, "Epochs over the prompts (ignored when max_steps > 0).", lo=0.0)
    batch_size: int = F(8, "Completions per device per step; must be divisible by num_generations.", lo=1)
    grad_accum: int = F(1, "Gradient accumulation steps.", lo=1)
    num_generations: int = F(4, "Completions sampled per prompt (the group).", lo=2)
    max_completion_length: int = F(128, "Longest completion, in tokens.", lo=1)
    temperature: float = F(1.0, "Sampling temperature.", lo=0.0, hi=10.0)
    beta: float = F(0.04, "KL coefficient against the SFT policy (0 disables the reference and the KL metric).", lo=0.0)
    loss_type: str = F(
        "dapo",
        "TRL's GRPO loss: how token losses are averaged (`grpo` per sequence, `bnpo` per batch, `dapo` "
        "per token over the whole generation batch, `dr_grpo` by a constant; `cispo`/`sapo` clip differently).",
        choices=("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo"),
    )
    scale_rewards: str = F(
        "group",
        "Divide each advantage by the reward std of its `group`, of the whole `batch`, or `none` "
        "(Dr. GRPO: no scaling, so near-unanimous groups are not blown up).",
        choices=("group", "batch", "none"),
    )
    format_reward_weight: float = F(1.0, "Weight of the format reward.", lo=0.0)
    accuracy_reward_weight: float = F(1.0, "Weight of the accuracy reward.", lo=0.0)
    judge_reward_weight: float = F(0.5, "Weight of the LLM-judge reward (when the judge is on).", lo=0.0)
    use_judge: bool = F(False, "Add the LLM judge as a reward (`--no-judge` turns it off).")
    qtypes: list = F(
        [],
        "Train only on prompts of these question types (empty: all). Useful to keep GRPO "
        "off types whose answers the model can only guess: there it learns a bias, not a skill.",
    )
    save_steps: int = F(20, "Save a checkpoint every N steps (resume point).", lo=1)
    save_total_limit: int = F(2, "Checkpoints kept on disk.", lo=1)
    seed: int = F(0, "Training seed.")


@dataclass
class JudgeSection(ModelServiceSection):
    """The LLM judge that scores answers (optional and costly)."""

    enabled: bool = F(False, "Score answers with the judge in evaluation and ablation (`--no-judge` turns it off).")
    api_key_env: str = F("JUDGE_API_KEY", "NAME of the environment variable holding the judge's API key.")
    max_tokens: int = F(64, "Longest judge reply, in tokens (it only needs a score).", lo=1)


@dataclass
class EvalSection:
    """Generation and scoring on the held-out split."""

    batch_size: int = F(32, "Prompts generated together (left-padded).", lo=1)
    max_new_tokens: int = F(128, "Longest generated answer, in tokens.", lo=1)
    num_samples: int = F(0, "Evaluate at most this many questions (0: the whole eval split).", lo=0)


@dataclass
class ProbeSection:
    """A small probe of held-out questions scored at every checkpoint of SFT and GRPO, and the best
    checkpoint it finds kept on disk and named (`best.json`; `--checkpoint best`)."""

    enabled: bool = F(True, "Score the probe set at checkpoints and record the best one.")
    size: int = F(
        48,
        "Probe questions, drawn deterministically from the eval split (never a training question).",
        lo=1,
    )
    every: int = F(
        0,
        "Probe at each checkpoint save (0), or every N steps (each also saves a checkpoint, so the best "
        "step can be loaded).",
        lo=0,
    )
    max_new_tokens: int = F(0, "Longest generated answer, in tokens (0: eval.max_new_tokens).", lo=0)
    best_metric: str = F(
        "probe/answer_accuracy",
        "Metric that names the best checkpoint: any probe/… metric or one the trainer logs (e.g. `loss`); "
        "ties go to the later step.",
    )
    best_mode: str = F(
        "max", "Whether a higher (`max`) or lower (`min`) best_metric is better.", choices=("max", "min")
    )


@dataclass
class AblationSection:
    """Side-by-side evaluation of the pipeline's models."""

    variants: list = F(
        ["base", "sft_only", "sft_grpo"],
        "Models compared: `base`, `sft_only` (latest SFT adapter), `sft_grpo` (latest GRPO adapter), "
        "`sft_best` / `grpo_best` (the best checkpoint the probe recorded in that run, to compare best against last).",
    )


@dataclass
class WandbSection:
    """Weights & Biases mirror of every run (names and fields of the original project)."""

    project: str = F("FTModel-Training", "wandb project.")
    entity: str = F("", "wandb team (empty: your default).")
    enabled: bool = F(True, "Mirror runs to wandb (metrics.jsonl is always written).")
    mode: str = F(
        "offline",
        "`offline` keeps runs in the workspace for `ftmodel sync`; `WANDB_MODE=disabled` "
        "in the environment always wins.",
        choices=("online", "offline", "disabled"),
    )
    run_name_sft: str = F("sft-train", "Run-name prefix for SFT.")
    run_name_grpo: str = F("grpo-train", "Run-name prefix for GRPO.")
    run_name_eval: str = F("evaluation", "Run-name prefix for evaluation.")
    run_name_ablation: str = F("ablation-study", "Run-name prefix for ablation.")
    log_model: bool = F(False, "Upload adapters as artifacts (large).")
    log_interval: int = F(10, "Log training metrics every N optimizer steps.", lo=1)


@dataclass
class LaunchSection:
    """How stages are started: one process, or several through accelerate or torchrun."""

    launcher: str = F(
        "python",
        "`python`: one process. `accelerate` / `torchrun`: SFT and GRPO run as "
        "num_processes ranks per machine (the other stages always run as one process).",
        choices=("python", "accelerate", "torchrun"),
    )
    num_processes: int = F(1, "Processes (ranks) per machine, usually one per GPU.", lo=1)
    num_machines: int = F(1, "Machines taking part (start the same stage on each, with its machine_rank).", lo=1)
    machine_rank: int = F(0, "This machine's rank among num_machines (0 is the main one).", lo=0)
    main_process_ip: str = F("127.0.0.1", "Address of machine 0, reachable from every machine.")
    main_process_port: int = F(29500, "Port on machine 0 for the rendezvous.", lo=1, hi=65535)
    mixed_precision: str = F(
        "no",
        "accelerate: mixed precision (the model's dtype still comes from [model]).",
        choices=("no", "fp16", "bf16"),
    )
    accelerate_config: str = F("", "accelerate: a config file passed through (e.g. DeepSpeed or FSDP); empty: none.")
    workspace: str = F(
        "workspace",
        "Workspace directory (runs/, data/, models/), relative to the current directory; `--workspace` overrides it.",
    )
    backend: str = F(
        "local",
        "`local`: stages run as detached processes on this machine. `slurm`: stages and "
        "queued jobs are submitted with sbatch (same worker, same run directories).",
        choices=("local", "slurm"),
    )
    # Slurm settings are launch settings: flat keys keep one table, one form and `--set launch.slurm_…`.
    slurm_partition: str = F("", "slurm: partition (`--partition`; empty: the cluster's default).")
    slurm_gpus_per_job: int = F(0, "slurm: GPUs per job (`--gpus`; 0: none requested).", lo=0)
    slurm_time_limit: str = F("", "slurm: time limit (`--time`, e.g. `04:00:00`; empty: the partition's).")
    slurm_extra_args: list = F([], "slurm: extra sbatch arguments, one per item (e.g. `--qos=high`).")


@dataclass
class AlertsSection:
    """The run sentinel: rules that watch every run for a failure that would otherwise stay silent
    (a NaN, a stall, GRPO with no learning signal, …). Windows count logged rows (wandb.log_interval
    steps apart). Rule ids: see `ftmodel alerts --rules`."""

    enabled: bool = F(True, "Watch runs and record alerts (alerts.jsonl, wandb, the console, `ftmodel alerts`).")
    command: list = F(
        [],
        "Command run once per new alert, as an argument list, never through a shell (e.g. "
        '`["notify-send", "ftmodel"]`; write `["sh", "-c", "…"]` to use one on purpose). Its environment '
        "holds FTMODEL_ALERT_RUN, _STAGE, _RULE, _STEP, _MESSAGE, _HINT, _RUN_DIR and _JSON; its output "
        "goes to <run>/alerts_command.log. Empty: none.",
    )
    command_timeout_s: float = F(30.0, "Seconds the alert command may run before it is killed.", lo=1.0, hi=3600.0)
    stop_on: list = F(
        [],
        "Rule ids that stop the run when they fire, as a stop request does: the trainer saves a "
        'checkpoint and the run ends `cancelled` naming the alert (e.g. `["nonfinite_loss", '
        '"nonfinite_grad_norm"]`; `nonfinite` means all four non-finite rules).',
    )
    stall_floor_s: float = F(
        600.0,
        "stall: a running stage with no new step for max(this, stall_factor × its median time between "
        "logged steps) seconds raises an alert (checkpoint saves and evaluation fit under 10 minutes).",
        lo=1.0,
    )
    stall_factor: float = F(10.0, "stall: how many median step intervals without a step count as stalled.", lo=1.0)
    stall_startup_s: float = F(
        1800.0,
        "stall: seconds a stage may take before its first step or progress (loading a model, "
        "tokenising, a teacher slow to start).",
        lo=1.0,
    )
    zero_std_share: float = F(
        0.9,
        "GRPO: alert when at least this share of groups has identical rewards (no advantage to learn "
        "from) for zero_std_window logged rows in a row.",
        lo=0.0,
        hi=1.0,
    )
    zero_std_window: int = F(5, "GRPO: logged rows the zero-variance share must stay high.", lo=1)
    clipped_share: float = F(
        0.5,
        "GRPO: alert when at least this share of completions is cut at grpo.max_completion_length …",
        lo=0.0,
        hi=1.0,
    )
    clipped_window: int = F(2, "… for this many logged rows in a row.", lo=1)
    kl_max: float = F(1.0, "GRPO: alert when the KL exceeds this bound.", lo=0.0)
    kl_spike_factor: float = F(
        10.0, "GRPO: alert when the KL exceeds this multiple of its running median (after 5 logged rows) …", lo=1.0
    )
    kl_spike_min: float = F(
        0.1, "… and this value (a KL growing from 0 early in training is many times its median, and harmless).", lo=0.0
    )
    entropy_min: float = F(
        0.005,
        "GRPO: alert when the entropy stays below this value (nearly identical samples) for entropy_window rows.",
        lo=0.0,
    )
    entropy_collapse_ratio: float = F(
        0.1, "GRPO: alert when the entropy stays below this fraction of its early level …", lo=0.0, hi=1.0
    )
    entropy_window: int = F(3, "… for this many logged rows in a row.", lo=1)
    reward_flat_window: int = F(
        20, "GRPO: alert when the reward has not moved by more than reward_flat_delta for this many rows.", lo=2
    )
    reward_flat_delta: float = F(1e-3, "GRPO: the reward's range below which it counts as not moving.", lo=0.0)
    loss_patience_steps: int = F(
        100, "SFT: steps after warm-up by which the loss must have fallen by loss_min_drop of its first value.", lo=1
    )
    loss_min_drop: float = F(
        0.1, "SFT: the fraction of its first logged value the loss must have lost.", lo=0.0, hi=1.0
    )
    grad_spike_factor: float = F(
        10.0, "SFT: alert when the grad-norm exceeds this multiple of its running median (after 5 logged rows).", lo=1.0
    )


@dataclass
class ExportSection:
    """The merged model's check after export: it must answer as the adapter on its base does, and not as the base."""

    probe_prompts: int = F(
        8,
        "Held-out questions (the eval split's first) the merged model is checked on after the merge; "
        "0 skips the check.",
        lo=0,
    )
    probe_max_new_tokens: int = F(32, "Greedy tokens generated per probe question.", lo=1)
    logit_tolerance: float = F(
        0.5,
        "bfloat16/float16 only: the largest logit difference allowed between the merged model and the "
        "adapter on its base (float32 requires identical tokens).",
        lo=0.0,
    )


@dataclass
class UiSection:
    """The console's own settings."""

    language: str = F(
        "auto",
        "Language of the console and the CLI's messages: `zh` (中文), `en`, or `auto` "
        "(from FTMODEL_LANG, else LC_ALL / LANG).",
        choices=("auto", "en", "zh"),
    )


@dataclass
class Config:
    """The whole config: one section per pipeline part."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    distill: DistillSection = field(default_factory=DistillSection)
    filter: FilterSection = field(default_factory=FilterSection)
    lora: LoraSection = field(default_factory=LoraSection)
    sft: SftSection = field(default_factory=SftSection)
    grpo: GrpoSection = field(default_factory=GrpoSection)
    judge: JudgeSection = field(default_factory=JudgeSection)
    eval: EvalSection = field(default_factory=EvalSection)
    probe: ProbeSection = field(default_factory=ProbeSection)
    ablation: AblationSection = field(default_factory=AblationSection)
    export: ExportSection = field(default_factory=ExportSection)
    answers: AnswersSection = field(default_factory=AnswersSection)
    wandb: WandbSection = field(default_factory=WandbSection)
    launch: LaunchSection = field(default_factory=LaunchSection)
    alerts: AlertsSection = field(default_factory=AlertsSection)
    ui: UiSection = field(default_factory=UiSection)

    def to_dict(self) -> dict:
        """Return the config as plain nested dicts (what a snapshot writes)."""
        return dataclasses.asdict(self)


@dataclass
class SweepSection:
    """A grid of experiments (`[sweep]`): `"section.key" = [values…]` entries, and the stages each point runs.

    Not a part of Config: a run never reads it; `ftmodel sweep` does (see `loading.load_sweep`)."""

    stages: list = F(["sft", "grpo", "evaluate"], "Stages each grid point runs, in pipeline order.")
    grid: dict = field(default_factory=dict, metadata={"doc": '`"grpo.beta" = [0.0, 0.04]`: values per key.'})


_CONFIG_HINTS = get_type_hints(Config)
SECTIONS: dict[str, type] = {f.name: _CONFIG_HINTS[f.name] for f in dataclasses.fields(Config)}
_SPECS: dict[str, tuple] = {}  # section -> its (dataclass field, resolved type) pairs, resolved once


def field_doc(meta: dict) -> str:
    """A field's documentation in the user's language (its English text is the catalog's id)."""
    return t(meta["doc"]) if meta.get("doc") else ""


def all_field_docs() -> set[str]:
    """Every field's documentation, `[sweep]`'s too (the catalog must translate each)."""
    specs = [spec for section in SECTIONS for spec in field_specs(section)]
    return {spec[3]["doc"] for spec in specs} | {f.metadata["doc"] for f in dataclasses.fields(SweepSection)}


def field_specs(section: str) -> list[tuple[str, type, Any, dict]]:
    """List (name, type, default, metadata) for every field of a section, in declaration order (the
    defaults and metadata are the caller's own copies)."""
    specs = _SPECS.get(section)
    if specs is None:  # type hints are resolved once per section: config loading asks for every section
        cls = SECTIONS[section]
        hints = get_type_hints(cls)
        specs = _SPECS[section] = tuple((f, hints[f.name]) for f in dataclasses.fields(cls))
    return [
        (f.name, hint, f.default_factory() if f.default is dataclasses.MISSING else f.default, dict(f.metadata))
        for f, hint in specs
    ]
