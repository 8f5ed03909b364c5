"""Token lengths of samples under the configured model's tokenizer, and what a length limit would cut.

Training silently truncates a sample longer than `model.max_seq_length`: with Chinese text and a
byte-level tokenizer (about three tokens a character) most samples lose their `</answer>`, and the
model learns to stop mid-sentence. `prepare`, `sft` and `ftmodel data check` measure first and say
so, with a value that would cut nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ftmodel.answers import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from ftmodel.prompts import prompt_messages


@dataclass(frozen=True)
class LengthStats:
    """Percentiles of token lengths, and how many exceed a limit."""

    count: int
    p50: int
    p90: int
    p99: int
    max: int
    limit: int
    over: int

    def as_dict(self) -> dict:
        return asdict(self)


def percentile(sorted_values: list[int], q: float) -> int:
    """The q-th percentile (nearest rank) of already sorted values; 0 for none."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def length_stats(lengths: list[int], limit: int) -> LengthStats:
    """Summarise token lengths against a limit."""
    s = sorted(lengths)
    return LengthStats(
        count=len(s),
        p50=percentile(s, 50),
        p90=percentile(s, 90),
        p99=percentile(s, 99),
        max=s[-1] if s else 0,
        limit=limit,
        over=sum(v > limit for v in s),
    )


def suggested_limit(stats: LengthStats, multiple: int = 32) -> int:
    """A limit that cuts none of the measured samples, rounded up to a multiple."""
    return max(multiple, math.ceil(stats.max / multiple) * multiple)


def target_text(sample: dict) -> str:
    """What training asks the model to write: the worked solution, or (none yet) the bare answer format."""
    return sample.get("solution") or f"{THINK_OPEN}{THINK_CLOSE}{ANSWER_OPEN}{sample['answer']}{ANSWER_CLOSE}"


def sample_lengths(tokenizer, samples: list[dict], system_prompt: str) -> tuple[list[int], list[int]]:
    """(prompt lengths, whole-sample lengths) in tokens, through the chat template as training sees them."""
    prompts, fulls = [], []
    for s in samples:
        messages = prompt_messages(s["question"], system_prompt)
        prompts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        fulls.append(
            tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": target_text(s)}], tokenize=False)
        )
    if not samples:
        return [], []
    enc_p = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    enc_f = tokenizer(fulls, add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in enc_p], [len(ids) for ids in enc_f]


def truncation_warning(stats: LengthStats, what: str, key: str = "model.max_seq_length") -> str | None:
    """A sentence saying how many samples a limit cuts and what to set instead, or None when none are cut."""
    if not stats.over:
        return None
    return (
        f"{stats.over} of {stats.count} {what} ({stats.over / stats.count:.0%}) are longer than {key} = "
        f"{stats.limit} tokens (p50 {stats.p50}, p90 {stats.p90}, max {stats.max}): training would cut their "
        f"ends, answers included. Set {key} = {suggested_limit(stats)} to keep every sample "
        f"(e.g. --set {key}={suggested_limit(stats)})."
    )
