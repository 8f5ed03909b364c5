"""The sentinel's words: message and hint templates per rule, and how numbers are shown in them.

A message id is the English template (translated in `ftmodel/locale/zh.po`); an alert stores the
fields that fill it (`params`, already text), so it can be shown in any UI language later.
"""

from __future__ import annotations

import math
from typing import Any

from ftmodel.i18n import t

# Message and hint templates per rule and variant. The ids are the English text (translated in
# ftmodel/locale/zh.po); placeholders are filled from an alert's `params`.
MESSAGES: dict[str, dict[str, str]] = {
    "nonfinite_loss": {"": "loss is {value} at step {step}"},
    "nonfinite_grad_norm": {"": "grad-norm is {value} at step {step}"},
    "nonfinite_reward": {"": "{metric} is {value} at step {step}"},
    "nonfinite_kl": {"": "KL is {value} at step {step}"},
    "stall": {
        "": "no new step for {idle} (last step {step}; expected one about every {interval}, waited {window}); "
        "the process is {process}",
        "startup": "no first step or progress after {idle} (waited {window}); the process is {process}",
    },
    "zero_variance_groups": {
        "right": "{share} of groups had identical rewards over {rows} logged steps: most are all right "
        "(accuracy reward {accuracy})",
        "wrong": "{share} of groups had identical rewards over {rows} logged steps: most are all wrong "
        "(accuracy reward {accuracy})",
        "": "{share} of groups had identical rewards over {rows} logged steps: GRPO has no advantage to learn from",
    },
    "completions_clipped": {
        "": "{share} of completions were cut at grpo.max_completion_length ({limit} tokens) over {rows} "
        "logged steps (mean length {length})"
    },
    "kl_spike": {
        "": "KL jumped to {value} at step {step}, {ratio}× its running median {median}",
        "bound": "KL is {value} at step {step}, above alerts.kl_max = {bound}",
    },
    "entropy_collapse": {
        "": "entropy fell to {value} at step {step}, {ratio} of its early level {reference}, for {rows} logged steps",
        "floor": "entropy is {value} at step {step}, below alerts.entropy_min = {bound} for {rows} logged steps: "
        "the samples of a group are nearly identical",
    },
    "reward_flat": {
        "": "the reward stayed within {delta} of {value} for {rows} logged steps (steps {first} to {step})"
    },
    "loss_not_falling": {
        "": "the loss is {value} at step {step}, not below {threshold} ({drop} under its first value {first}) "
        "{patience} steps after warm-up",
        "rising": "the loss rose to {value} at step {step} from its first value {first}",
    },
    "grad_norm_spike": {"": "grad-norm {value} at step {step} is {ratio}× its running median {median}"},
    "resume_discontinuity": {"": "the resumed run did not continue where {run} stopped: {problem}"},
}
HINTS: dict[str, dict[str, str]] = {
    "nonfinite_loss": {
        "sft": "lower sft.learning_rate (now {learning_rate}) or raise sft.warmup_ratio (now {warmup_ratio}), "
        "then train again",
        "": "lower grpo.learning_rate (now {learning_rate}) or raise grpo.beta (now {beta}), then train again",
    },
    "nonfinite_reward": {
        "": "a reward function returned {value}: check the rewards (and the judge) on these completions"
    },
    "nonfinite_kl": {"": "lower grpo.learning_rate (now {learning_rate}) or raise grpo.beta (now {beta})"},
    "stall": {
        "stopped": "the process is stopped (SIGSTOP or Ctrl-Z): `kill -CONT {pid}` resumes it",
        "": "read the last log lines: a hung collective (NCCL), a stuck data loader or a teacher that never "
        "answers; `ftmodel stop {run}` stops it",
    },
    "zero_variance_groups": {
        "right": "these prompts are learned: harder prompts (grpo.qtypes) or stop here",
        "wrong": "SFT more, or easier prompts (grpo.qtypes)",
        "": "raise grpo.temperature (now {temperature}) or grpo.num_generations (now {num_generations}) so "
        "a group's answers differ",
    },
    "completions_clipped": {"": "raise grpo.max_completion_length (now {limit})"},
    "kl_spike": {"": "lower grpo.learning_rate (now {learning_rate}) or raise grpo.beta (now {beta})"},
    "entropy_collapse": {"": "raise grpo.temperature (now {temperature})"},
    "reward_flat": {
        "": "look at the completions and the reward functions; raise grpo.temperature (now {temperature}) "
        "or grpo.learning_rate (now {learning_rate})"
    },
    "loss_not_falling": {
        "": "raise sft.learning_rate (now {learning_rate}); check that data/sft.jsonl holds worked solutions",
        "rising": "lower sft.learning_rate (now {learning_rate}) or raise sft.warmup_ratio (now {warmup_ratio})",
    },
    "grad_norm_spike": {
        "": "lower sft.learning_rate (now {learning_rate}) or raise sft.warmup_ratio (now {warmup_ratio}); "
        "a spike often comes before a divergence"
    },
    "resume_discontinuity": {
        "": "check {checkpoint} (scheduler.pt, optimizer.pt, trainer_state.json) and the keys changed since; "
        "stop this run and resume again, or start a new run"
    },
}
HINTS["nonfinite_grad_norm"] = HINTS["nonfinite_loss"]
# Words put into messages as parameters, translated when shown.
PARAM_WORDS = ("stopped (SIGSTOP)", "alive", "sleeping", "running", "waiting on disk", "unknown")
# A note about the config, not a failure (never recorded as an alert).
NO_KL_NOTE = "no KL: grpo.beta is 0"
# How `describe` labels the hint and the evidence.
LABELS = ("try: {hint}", "evidence: {values}")


def message_ids() -> set[str]:
    """Every message id the sentinel may pass to t() (the catalog must translate each)."""
    ids = {text for table in (MESSAGES, HINTS) for variants in table.values() for text in variants.values()}
    return ids | set(PARAM_WORDS) | {NO_KL_NOTE, *LABELS}


class _Blank(dict):
    """Format fields that an alert from an older or foreign file lacks as `?`, never a KeyError."""

    def __missing__(self, key: str) -> str:
        return "?"


def fill(template: str, params: dict, translate: bool) -> str:
    """A template filled from an alert's params, in the UI language (`translate`) or in English."""
    text = t(template) if translate else template
    fields = {k: (t(v) if translate and v in PARAM_WORDS else v) for k, v in params.items()}
    try:
        return text.format_map(_Blank(fields))
    except (ValueError, IndexError):  # a translation or template with a broken field: show it as it is
        return text


def clean_text(text: str) -> str:
    """Replace control characters (escape sequences from an untrusted log or value) with `?`."""
    return "".join(c if c.isprintable() or c == "\t" else "?" for c in str(text))


def variant_text(table: dict, rule: str, variant: str) -> str:
    """The template of a rule's variant (its default variant when the variant is unknown)."""
    variants = table.get(rule) or {}
    return variants.get(variant) or variants.get("", "")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite(value: Any) -> float | None:
    """The value as a finite float, or None (missing, text, bool, NaN or ±inf)."""
    if not is_number(value):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt(value: Any) -> str:
    """A number as a message shows it: an int as it is, a float with 4 significant digits as the user
    would type it (`1.0`, `0.0002`, `5e-07`), NaN and inf spelled out."""
    if not is_number(value):
        return "?" if value is None else clean_text(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:.4g}"
    return text if any(c in text for c in ".en") else text + ".0"


def pct(share: float) -> str:
    """A share as a message shows it: `68%`."""
    return f"{share:.0%}"


def seconds(value: float) -> str:
    """A duration as a message shows it: `42 s`, `4 min 10 s`, `1.5 h`."""
    value = round(value)
    if value < 120:
        return f"{value} s"
    if value < 7200:
        minutes, rest = divmod(value, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{value / 3600:.1f} h"
