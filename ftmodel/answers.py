"""Answer-format checking and answer comparison for `<think>…</think><answer>…</answer>` outputs."""

from __future__ import annotations

import math
import re

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

# Non-greedy so that each match is one block; the last match is the final answer.
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
_LETTER_OPTION = re.compile(r"\(?([a-z])\)?")
_QUOTES = "\"'`"
_TRAILING_PUNCT = ".,;:!?"


def parse_strict(text: str) -> tuple[bool, str | None]:
    """Check that text is exactly one think block then one answer block; return (ok, answer)."""
    s = text.strip()
    # Each tag exactly once rules out nested and repeated blocks in one check.
    if any(s.count(tag) != 1 for tag in TAGS):
        return False, None
    if not (s.startswith(THINK_OPEN) and s.endswith(ANSWER_CLOSE)):
        return False, None
    think_end = s.index(THINK_CLOSE)
    answer_start = s.index(ANSWER_OPEN)
    if answer_start < think_end or s[think_end + len(THINK_CLOSE):answer_start].strip():
        return False, None
    answer = s[answer_start + len(ANSWER_OPEN):-len(ANSWER_CLOSE)].strip()
    if not answer:
        return False, None
    return True, answer


def extract_answer(text: str) -> str | None:
    """Return the stripped content of the last `<answer>…</answer>` block, or None."""
    blocks = _ANSWER_BLOCK.findall(text)
    return blocks[-1].strip() if blocks else None


def normalize_answer(s: str) -> str:
    """Normalise an answer for comparison: case, quotes, currency/percent signs, option letters."""
    s = s.strip().lower()
    s = s.strip(_QUOTES).strip()
    s = s.replace("$", "").replace("%", "").strip()
    s = s.rstrip(_TRAILING_PUNCT).strip()
    s = s.strip(_QUOTES).strip()
    if _GROUPED_NUMBER.fullmatch(s):
        s = s.replace(",", "")
    letter = _LETTER_OPTION.fullmatch(s)
    if letter:
        return letter.group(1)
    return s


def _as_number(s: str) -> float | None:
    """Parse a normalised answer as a finite number, or return None."""
    if not _NUMBER.fullmatch(s):
        return None
    value = float(s)
    return value if math.isfinite(value) else None


def answers_match(pred: str | None, gold: str) -> bool:
    """Compare a predicted answer with the gold one: numerically with tolerance, else as text."""
    if pred is None:
        return False
    p, g = normalize_answer(pred), normalize_answer(gold)
    pn, gn = _as_number(p), _as_number(g)
    if pn is not None and gn is not None:
        # Absolute 0.01 covers rounding to 2 decimals; relative 1e-3 covers large amounts.
        return abs(pn - gn) <= max(0.01, 1e-3 * abs(gn)) + 1e-12
    return p == g


def score_completion(text: str, gold: str) -> dict:
    """Score one completion: strict format, leniently extracted answer, and correctness."""
    format_ok, _ = parse_strict(text)
    answer = extract_answer(text)
    return {"format_ok": format_ok, "answer": answer, "correct": answers_match(answer, gold)}
