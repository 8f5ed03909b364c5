"""The rules over a run's metric rows: each watches a condition and alerts when it starts (one
alert per episode; again only after the condition cleared). `Sentinel` feeds a stage's rules one row
at a time, with bounded windows, so it is cheap inside the training process.

(Over 400 lines: one small class per rule, each with its own window and message; splitting them would
scatter the shared `Facts` and episode logic that every rule follows.)"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from ftmodel.i18n import t
from ftmodel.sentinel.alerts import Alert, default_settings
from ftmodel.sentinel.messages import NO_KL_NOTE, finite, fmt, is_number, pct


@dataclass
class Facts:
    """The config values a hint names ("lower sft.learning_rate (now 1.0)") and the rules read."""

    learning_rate: float | None = None
    warmup_ratio: float | None = None
    max_steps: int | None = None
    temperature: float | None = None
    num_generations: int | None = None
    max_completion_length: int | None = None
    beta: float | None = None

    @classmethod
    def from_config(cls, cfg: Any, stage: str) -> Facts:
        """The facts of `stage` in a Config (any object with the same sections works)."""
        if stage == "sft":
            s = cfg.sft
            return cls(learning_rate=s.learning_rate, warmup_ratio=s.warmup_ratio, max_steps=s.max_steps or None)
        if stage == "grpo":
            g = cfg.grpo
            return cls(
                learning_rate=g.learning_rate,
                max_steps=g.max_steps or None,
                temperature=g.temperature,
                num_generations=g.num_generations,
                max_completion_length=g.max_completion_length,
                beta=g.beta,
            )
        return cls()

    def params(self) -> dict[str, str]:
        """The facts as message fields (`learning_rate` → `1.0`)."""
        return {k: fmt(v) for k, v in vars(self).items() if v is not None}


class _Rule:
    """A condition over rows; it alerts when the condition starts (an episode) and again only after it cleared."""

    rule = ""
    stages: tuple[str, ...] | None = None  # None: any stage whose rows hold the keys

    def __init__(self, settings, facts: Facts, stage: str):
        self.s, self.facts, self.stage = settings, facts, stage
        self.active = False

    def check(self, row: dict) -> tuple[bool, dict] | None:
        """(condition holds, what to say) for this row, or None when the row says nothing about it."""
        raise NotImplementedError

    def feed(self, row: dict) -> Alert | None:
        """The alert this row starts (None while the condition does not hold or is already alerted)."""
        result = self.check(row)
        if result is None:
            return None
        holds, info = result
        if not holds:
            self.active = False
            return None
        if self.active:
            return None
        self.active = True
        step = row.get("step") if isinstance(row.get("step"), int) else None
        values = info.pop("values", {})
        variant = info.pop("variant", "")
        hint_variant = info.pop("hint_variant", variant)
        params = {**self.facts.params(), "step": fmt(step), **info}
        return Alert(
            rule=self.rule,
            stage=self.stage,
            step=step,
            time=float(row["time"]) if is_number(row.get("time")) else time.time(),
            key=f"{self.rule}@{step}",
            values=values,
            params=params,
            variant=variant,
            hint_variant=hint_variant,
        )


class _NonFinite(_Rule):
    """A logged value that is NaN or ±inf (any stage whose rows hold the keys)."""

    keys: tuple[str, ...] = ()

    def _keys(self, row: dict) -> list[str]:
        return [k for k in self.keys if k in row]

    def check(self, row):
        present = [k for k in self._keys(row) if is_number(row[k])]
        if not present:
            return None
        bad = [k for k in present if not math.isfinite(float(row[k]))]
        if not bad:
            return False, {}
        return True, {
            "values": {k: row[k] for k in present},
            "metric": bad[0],
            "value": fmt(row[bad[0]]),
            "hint_variant": "sft" if self.stage == "sft" else "",
        }


class NonFiniteLoss(_NonFinite):
    rule, keys = "nonfinite_loss", ("loss",)


class NonFiniteGradNorm(_NonFinite):
    rule, keys = "nonfinite_grad_norm", ("grad_norm",)


class NonFiniteReward(_NonFinite):
    rule = "nonfinite_reward"

    def _keys(self, row):
        return [k for k in row if k in ("reward", "reward_std") or (k.startswith("rewards/") and k.endswith("/mean"))]


class NonFiniteKL(_NonFinite):
    rule, keys = "nonfinite_kl", ("kl", "kl_divergence")


class _Window(_Rule):
    """A rule over the last `n` rows that hold its key."""

    key = ""

    def __init__(self, settings, facts, stage):
        super().__init__(settings, facts, stage)
        self.recent: deque = deque(maxlen=self.size())

    def size(self) -> int:
        return 1

    def check(self, row):
        value = finite(row.get(self.key))
        if value is None:
            return None
        self.recent.append((value, row))
        return self.judge()

    def judge(self):
        raise NotImplementedError


class ZeroVarianceGroups(_Window):
    """GRPO: most groups had identical rewards for N rows (no advantage): all right, all wrong, or alike."""

    rule, stages, key = "zero_variance_groups", ("grpo",), "frac_reward_zero_std"

    def size(self):
        return self.s.zero_std_window

    def judge(self):
        shares = [v for v, _ in self.recent]
        if len(shares) < self.recent.maxlen or min(shares) < self.s.zero_std_share:
            return False, {}
        accuracy = [finite(r.get("accuracy_reward")) for _, r in self.recent]
        accuracy = [a for a in accuracy if a is not None]
        mean_acc = sum(accuracy) / len(accuracy) if accuracy else None
        variant = "" if mean_acc is None else "right" if mean_acc >= 0.9 else "wrong" if mean_acc <= 0.1 else ""
        share = sum(shares) / len(shares)
        return True, {
            "values": {"frac_reward_zero_std": share, "accuracy_reward": mean_acc, "rows": len(shares)},
            "share": pct(share),
            "rows": str(len(shares)),
            "accuracy": fmt(mean_acc),
            "variant": variant,
        }


class CompletionsClipped(_Window):
    """GRPO: most completions were cut at grpo.max_completion_length for N rows."""

    rule, stages, key = "completions_clipped", ("grpo",), "completions/clipped_ratio"

    def size(self):
        return self.s.clipped_window

    def judge(self):
        shares = [v for v, _ in self.recent]
        if len(shares) < self.recent.maxlen or min(shares) < self.s.clipped_share:
            return False, {}
        lengths = [finite(r.get("completions/mean_length")) for _, r in self.recent]
        lengths = [v for v in lengths if v is not None]
        share = sum(shares) / len(shares)
        length = sum(lengths) / len(lengths) if lengths else None
        return True, {
            "values": {"completions/clipped_ratio": share, "completions/mean_length": length, "rows": len(shares)},
            "share": pct(share),
            "rows": str(len(shares)),
            "limit": fmt(self.facts.max_completion_length),
            "length": fmt(length),
        }


class _SpikeOverMedian(_Rule):
    """A value far above the median of the values before it (or above a fixed bound)."""

    key = ""
    history = 50  # rows the running median is taken over
    warmup_rows = 5

    def __init__(self, settings, facts, stage):
        super().__init__(settings, facts, stage)
        self.before: deque = deque(maxlen=self.history)

    def factor(self) -> float:
        raise NotImplementedError

    def bound(self) -> float | None:
        return None

    def floor(self) -> float:
        """Values at or below this are never a spike."""
        return 0.0

    def check(self, row):
        value = None
        for key in self.keys():
            value = finite(row.get(key))
            if value is not None:
                break
        if value is None:
            return None
        median = statistics.median(self.before) if len(self.before) >= self.warmup_rows else None
        self.before.append(value)
        bound = self.bound()
        if bound is not None and value > bound:
            return True, {
                "values": {self.key: value, "bound": bound},
                "value": fmt(value),
                "bound": fmt(bound),
                "variant": "bound",
            }
        if median is not None and median > 0 and value > max(self.factor() * median, self.floor()):
            return True, {
                "values": {self.key: value, "median": median},
                "value": fmt(value),
                "median": fmt(median),
                "ratio": fmt(round(value / median, 1)),
            }
        return False, {}

    def keys(self) -> tuple[str, ...]:
        return (self.key,)


class KLSpike(_SpikeOverMedian):
    """GRPO: the KL above a bound, or far above its running median."""

    rule, stages, key = "kl_spike", ("grpo",), "kl"

    def keys(self):
        return ("kl", "kl_divergence")

    def factor(self):
        return self.s.kl_spike_factor

    def bound(self):
        return self.s.kl_max

    def floor(self):
        return self.s.kl_spike_min


class GradNormSpike(_SpikeOverMedian):
    """SFT: the grad-norm far above its running median."""

    rule, stages, key = "grad_norm_spike", ("sft",), "grad_norm"
    warmup_rows = 3  # a divergence takes few rows from spike to NaN: catch it early

    def factor(self):
        return self.s.grad_spike_factor


class EntropyCollapse(_Window):
    """GRPO: the entropy below a floor, or far below its early level, for N rows."""

    rule, stages, key = "entropy_collapse", ("grpo",), "entropy"
    early_rows = 3

    def __init__(self, settings, facts, stage):
        super().__init__(settings, facts, stage)
        self.early: list[float] = []

    def size(self):
        return self.s.entropy_window

    def judge(self):
        value = self.recent[-1][0]
        if len(self.early) < self.early_rows:
            self.early.append(value)
        values = [v for v, _ in self.recent]
        if len(values) < self.recent.maxlen:
            return False, {}
        if max(values) < self.s.entropy_min:
            return True, {
                "values": {"entropy": value, "bound": self.s.entropy_min},
                "value": fmt(value),
                "bound": fmt(self.s.entropy_min),
                "rows": str(len(values)),
                "variant": "floor",
            }
        reference = statistics.median(self.early)
        if (
            len(self.early) >= self.early_rows
            and reference > 0
            and max(values) < self.s.entropy_collapse_ratio * reference
        ):
            return True, {
                "values": {"entropy": value, "early": reference},
                "value": fmt(value),
                "reference": fmt(reference),
                "ratio": pct(value / reference),
                "rows": str(len(values)),
            }
        return False, {}


class RewardFlat(_Window):
    """GRPO: the reward did not move over N rows."""

    rule, stages, key = "reward_flat", ("grpo",), "reward"

    def size(self):
        return self.s.reward_flat_window

    def judge(self):
        values = [v for v, _ in self.recent]
        if len(values) < self.recent.maxlen or max(values) - min(values) > self.s.reward_flat_delta:
            return False, {}
        first = self.recent[0][1].get("step")
        return True, {
            "values": {"reward": values[-1], "range": max(values) - min(values), "rows": len(values)},
            "value": fmt(values[-1]),
            "delta": fmt(self.s.reward_flat_delta),
            "rows": str(len(values)),
            "first": fmt(first),
        }


class LossNotFalling(_Rule):
    """SFT: some steps after warm-up the loss has not fallen by a share of its first value (or it rose)."""

    rule, stages = "loss_not_falling", ("sft",)

    def __init__(self, settings, facts, stage):
        super().__init__(settings, facts, stage)
        self.first: float | None = None
        self.recent: deque = deque(maxlen=3)

    def warmup_steps(self) -> int:
        if self.facts.max_steps and self.facts.warmup_ratio:
            return int(math.ceil(self.facts.max_steps * self.facts.warmup_ratio))
        return 0

    def check(self, row):
        loss, step = finite(row.get("loss")), row.get("step")
        if loss is None or not isinstance(step, int):
            return None
        if self.first is None:
            self.first = loss
        self.recent.append(loss)
        if step < self.warmup_steps() + self.s.loss_patience_steps or len(self.recent) < self.recent.maxlen:
            return False, {}
        now = statistics.median(self.recent)
        threshold = (1 - self.s.loss_min_drop) * self.first
        if now < threshold:
            return False, {}
        rising = now > (1 + self.s.loss_min_drop) * self.first
        return True, {
            "values": {"loss": now, "first": self.first, "threshold": threshold},
            "value": fmt(now),
            "first": fmt(self.first),
            "threshold": fmt(threshold),
            "drop": pct(self.s.loss_min_drop),
            "patience": str(self.s.loss_patience_steps),
            "variant": "rising" if rising else "",
        }


ROW_RULES: tuple[type[_Rule], ...] = (
    NonFiniteLoss,
    NonFiniteGradNorm,
    NonFiniteReward,
    NonFiniteKL,
    ZeroVarianceGroups,
    CompletionsClipped,
    KLSpike,
    EntropyCollapse,
    RewardFlat,
    LossNotFalling,
    GradNormSpike,
)


class Sentinel:
    """The row rules of one stage run, fed one metrics row at a time (cheap: bounded windows)."""

    def __init__(self, stage: str, settings=None, facts: Facts | None = None):
        self.stage = stage
        self.settings = settings if settings is not None else default_settings()
        self.facts = facts or Facts()
        self.rules = [r(self.settings, self.facts, stage) for r in ROW_RULES if r.stages is None or stage in r.stages]

    def feed(self, row: dict) -> list[Alert]:
        """Alerts whose episode starts with this row (a row is untrusted: odd values are skipped)."""
        if not isinstance(row, dict):
            return []
        fired = []
        for rule in self.rules:
            alert = rule.feed(row)
            if alert is not None:
                fired.append(alert)
        return fired

    def feed_all(self, rows: list[dict]) -> list[Alert]:
        """Every alert a whole series of rows raises, in order (for a run recorded without a sentinel)."""
        return [alert for row in rows for alert in self.feed(row)]


def config_notes(stage: str, facts: Facts) -> list[str]:
    """Notes about the config that are no failure (the UI language): GRPO without a KL."""
    return [t(NO_KL_NOTE)] if stage == "grpo" and facts.beta == 0 else []
