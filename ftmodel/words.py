"""The engine's vocabulary in one place: stage names, run states and ablation variant names.

Plain tuples with no imports, so the CLI, the run directory code and the console (which must stay
light) all spell these words the same way.
"""

STAGES = ("prepare", "distill", "filter", "sft", "grpo", "evaluate", "export", "ablation")
PIPELINE = "pipeline"  # the driver that runs stages in order; a run of its own, never a stage
JOBS = (*STAGES, PIPELINE)  # everything `ftmodel <job>` can start as a run

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("finished", "failed", "cancelled")
LOST = "lost"  # an active state whose process is gone (computed, never written)
STATES = (*ACTIVE_STATES, *FINAL_STATES, LOST)

# The ablation's model variants, in report order; `*_best` load the run's best checkpoint (best.json), the
# others its final adapter, so best can be compared against last in one table.
VARIANTS = ("base", "sft_only", "sft_grpo", "sft_best", "grpo_best")
VARIANT_PREFIX = {  # metric prefix and eval_<prefix>.json
    "base": "base_model",
    "sft_only": "sft_only",
    "sft_grpo": "sft_grpo",
    "sft_best": "sft_best",
    "grpo_best": "sft_grpo_best",
}

# The run sentinel's rules (ftmodel/sentinel.py), as alerts.jsonl and `[alerts] stop_on` name them.
ALERT_RULES = (
    "nonfinite_loss",
    "nonfinite_grad_norm",
    "nonfinite_reward",
    "nonfinite_kl",
    "stall",
    "zero_variance_groups",
    "completions_clipped",
    "kl_spike",
    "entropy_collapse",
    "reward_flat",
    "loss_not_falling",
    "grad_norm_spike",
    "resume_discontinuity",  # a resumed run's first step did not continue its checkpoint (ftmodel/resume.py)
)
NONFINITE_RULES = ALERT_RULES[:4]  # `stop_on = ["nonfinite"]` names these four
