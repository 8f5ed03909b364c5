"""Reward functions for TRL's GRPOTrainer, as plain callables over completions.

TRL logs each reward as ``rewards/<__name__>/mean``, so the function names are the metric names.
"""

from __future__ import annotations

from typing import Any

from ftmodel.answers import answers_match, extract_answer, parse_strict


def completion_text(completion: Any) -> str:
    """Return the text of a completion given as a string or as a list of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    # Conversational datasets give [{"role": "assistant", "content": ...}]; the reply is the last message.
    if isinstance(completion, (list, tuple)) and completion:
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            # Multimodal-style content parts: keep only the text parts.
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return content if isinstance(content, str) else ""
    return ""


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """Reward 1.0 for a strictly well-formed think-then-answer completion, else 0.0."""
    return [1.0 if parse_strict(completion_text(c))[0] else 0.0 for c in completions]


def accuracy_reward(completions: list, answer: list[str], **kwargs: Any) -> list[float]:
    """Reward 1.0 when the (leniently extracted) answer matches the gold answer, else 0.0."""
    return [
        1.0 if answers_match(extract_answer(completion_text(c)), str(gold)) else 0.0
        for c, gold in zip(completions, answer, strict=True)
    ]

