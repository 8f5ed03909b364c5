"""Answer-format checking and answer comparison for `<think>…</think><answer>…</answer>` outputs.

One matcher serves the filter, the GRPO accuracy reward and evaluation, so a rule fixed here is
fixed for all three. It is Unicode-aware: answers are NFKC-normalised (full-width digits, letters
and punctuation become ASCII), CJK punctuation and quotation marks are stripped like their ASCII
cousins, numbers may carry thousands separators in either script, a Unicode minus, a percent sign
or a currency sign or unit (¥ ￥ 元 $ 美元 …) and a CJK multiplier (万, 亿); a number with a unit
matches the same number with that unit or none, never with another unit. `[answers]` in the config
makes matching stricter or custom per question type (exact text, a regex gold, a numeric
tolerance, aliases).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field

from ftmodel.i18n import t

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

# Non-greedy so that each match is one block; the last match is the final answer.
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_LETTER_OPTION = re.compile(r"\(?([a-z])\)?")
# Quotation marks in any script (NFKC leaves the CJK and typographic ones alone).
_QUOTES = "\"'`“”‘’「」『』《》〈〉«»‹›【】"
# Sentence punctuation a reply may end with: ASCII and CJK (full-width forms are ASCII after NFKC).
_TRAILING_PUNCT = ".,;:!?。，、；：！？…·～~"
# "Answer:" / "答案：" / "答：" before the answer itself.
_ANSWER_PREFIX = re.compile(
    r"^(?:(?:the\s+)?(?:final\s+)?answer\s*(?:is\s*:?|:)|(?:最终)?答案\s*(?:(?:是|为)\s*:?|:)|答\s*:)\s*"
)
# Dashes that mean minus: U+2212 minus sign, U+2012-U+2015 dashes, U+FE63 small hyphen-minus.
_MINUS = dict.fromkeys(map(ord, "\u2212\u2012\u2013\u2014\u2015\ufe63"), "-")

_CURRENCY = {
    "CNY": ("¥", "元", "块", "块钱", "人民币", "人民币元", "rmb", "cny"),
    "USD": ("$", "us$", "美元", "美金", "usd"),
    "EUR": ("€", "欧元", "eur"),
    "GBP": ("£", "英镑", "gbp"),
    "HKD": ("hk$", "港元", "港币", "hkd"),
    "JPY": ("日元", "円", "jpy"),
}
_UNIT_CODE = {alias: code for code, aliases in _CURRENCY.items() for alias in aliases}
_UNIT_CODE["%"] = "%"
_MULTIPLIER = {"千": 1e3, "万": 1e4, "十万": 1e5, "百万": 1e6, "千万": 1e7, "亿": 1e8}
_BOOLEAN = {
    **dict.fromkeys(("true", "正确", "对", "是", "yes", "√", "✓", "✔"), "true"),
    **dict.fromkeys(("false", "错误", "错", "否", "不是", "no", "×", "✗", "✘"), "false"),
}


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_UNIT_RE = _alternation(_UNIT_CODE)
_QUANTITY = re.compile(
    rf"(?P<sign1>[-+]|负)?\s*(?P<pre>{_UNIT_RE})?\s*(?P<sign2>[-+])?\s*"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?: \d{3})+(?:\.\d+)?|\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+)"
    rf"\s*(?P<mult>{_alternation(_MULTIPLIER)})?\s*(?P<post>{_UNIT_RE})?"
)
_PERCENT_WORDS = re.compile(r"^百分之\s*(.+)$")


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
    if answer_start < think_end or s[think_end + len(THINK_CLOSE) : answer_start].strip():
        return False, None
    answer = s[answer_start + len(ANSWER_OPEN) : -len(ANSWER_CLOSE)].strip()
    if not answer:
        return False, None
    return True, answer


def extract_answer(text: str) -> str | None:
    """Return the stripped content of the last `<answer>…</answer>` block, or None."""
    blocks = _ANSWER_BLOCK.findall(text)
    return blocks[-1].strip() if blocks else None


def _is_cjk(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\u3000" <= ch <= "\u303f"


def _clean(s: str) -> str:
    """NFKC, lower case, one space between words, no quotes, answer prefix or trailing punctuation."""
    s = unicodedata.normalize("NFKC", s).translate(_MINUS).casefold()
    s = " ".join(s.split())
    # A space next to a CJK character carries no meaning ("盈 利" is "盈利").
    s = "".join(
        ch
        for i, ch in enumerate(s)
        if not (ch == " " and ((i and _is_cjk(s[i - 1])) or (i + 1 < len(s) and _is_cjk(s[i + 1]))))
    )
    previous = None
    while previous != s:
        previous = s
        s = _ANSWER_PREFIX.sub("", s).strip()
        s = s.strip(_QUOTES).strip().rstrip(_TRAILING_PUNCT).strip()
    return s


@dataclass(frozen=True)
class Quantity:
    """A number read from an answer, with its unit (a currency code, `%`, or None)."""

    value: float
    unit: str | None


def parse_quantity(s: str) -> Quantity | None:
    """Read an answer as one number with an optional sign, currency/percent unit and CJK multiplier."""
    s = _clean(s)
    percent_words = _PERCENT_WORDS.match(s)
    if percent_words:
        inner = parse_quantity(percent_words.group(1))
        return Quantity(inner.value, "%") if inner and inner.unit is None else None
    m = _QUANTITY.fullmatch(s)
    if not m or (m["sign1"] and m["sign2"]):
        return None
    pre, post = (_UNIT_CODE.get(m[g]) if m[g] else None for g in ("pre", "post"))
    if pre and post and pre != post:
        return None
    try:
        value = float(m["num"].replace(",", "").replace(" ", ""))
    except ValueError:
        return None
    value *= _MULTIPLIER.get(m["mult"] or "", 1.0)
    if (m["sign1"] or m["sign2"]) in ("-", "负"):
        value = -value
    if not math.isfinite(value):
        return None
    return Quantity(value, pre or post)


def normalize_answer(s: str) -> str:
    """The canonical text of an answer: cleaned, numbers without units or separators, options as letters,
    yes/no words as true/false."""
    cleaned = _clean(s)
    quantity = parse_quantity(cleaned)
    if quantity is not None:
        m = _QUANTITY.fullmatch(cleaned)
        if m and not m["mult"]:
            sign = "-" if quantity.value < 0 else ""
            return sign + m["num"].replace(",", "").replace(" ", "")
        return repr(quantity.value)
    letter = _LETTER_OPTION.fullmatch(cleaned)
    if letter:
        return letter.group(1)
    return _BOOLEAN.get(cleaned, cleaned)


@dataclass(frozen=True)
class AnswerRules:
    """How answers are compared, overall and per question type (built from `[answers]`)."""

    abs_tol: float = 0.01
    rel_tol: float = 1e-3
    exact_qtypes: frozenset = frozenset()
    regex_qtypes: frozenset = frozenset()
    tolerances: dict = field(default_factory=dict)  # qtype -> absolute tolerance
    aliases: dict = field(default_factory=dict)  # normalised answer -> canonical one

    @classmethod
    def from_config(cls, section) -> AnswerRules:
        """Build rules from the config's `[answers]` section (already validated)."""
        tolerances = dict(parse_tolerance(item) for item in section.tolerances)
        aliases: dict[str, str] = {}
        for group in section.aliases:
            names = parse_alias_group(group)
            for name in names:
                aliases[name] = names[0]
        return cls(
            abs_tol=section.numeric_abs_tol,
            rel_tol=section.numeric_rel_tol,
            exact_qtypes=frozenset(section.exact_qtypes),
            regex_qtypes=frozenset(section.regex_qtypes),
            tolerances=tolerances,
            aliases=aliases,
        )

    def canonical(self, s: str) -> str:
        """The normalised answer, mapped through the alias groups."""
        norm = normalize_answer(s)
        return self.aliases.get(norm, norm)


DEFAULT_RULES = AnswerRules()


def parse_tolerance(item: str) -> tuple[str, float]:
    """Read one `qtype=tolerance` item of `answers.tolerances` (ValueError says what is wrong)."""
    qtype, sep, value = item.partition("=")
    if not sep or not qtype.strip():
        raise ValueError(t("{item!r} is not qtype=tolerance (e.g. percent_change=0.1)", item=item))
    try:
        tol = float(value)
    except ValueError:
        raise ValueError(t("{item!r}: {value!r} is not a number", item=item, value=value.strip())) from None
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(t("{item!r}: the tolerance must be a finite number ≥ 0", item=item))
    return qtype.strip(), tol


def parse_alias_group(group: str) -> list[str]:
    """Read one `a=b=c` item of `answers.aliases` into its normalised answers (the first is canonical)."""
    names = [normalize_answer(part) for part in group.split("=")]
    if len(names) < 2 or not all(names):
        raise ValueError(t("{group!r} is not a group of equal answers like 盈利=获利=赚钱", group=group))
    return names


def answers_match(pred: str | None, gold: str, qtype: str | None = None, rules: AnswerRules | None = None) -> bool:
    """Compare a predicted answer with the gold one as a person would (see the module docstring)."""
    if pred is None:
        return False
    rules = rules or DEFAULT_RULES
    if qtype in rules.exact_qtypes:
        return pred.strip() == gold.strip()
    if qtype in rules.regex_qtypes:
        try:
            pattern = re.compile(gold, re.IGNORECASE)
        except re.error:
            return False  # `ftmodel data check` and prepare name the row whose pattern is broken
        return bool(pattern.fullmatch(_clean(pred)) or pattern.fullmatch(pred.strip()))
    pq, gq = parse_quantity(pred), parse_quantity(gold)
    if pq is not None and gq is not None:
        if pq.unit and gq.unit and pq.unit != gq.unit:
            return False
        tol = rules.tolerances.get(qtype)
        if tol is None:
            tol = max(rules.abs_tol, rules.rel_tol * abs(gq.value))
        return abs(pq.value - gq.value) <= tol + 1e-12
    if (pq is None) != (gq is None):
        return False
    p, g = rules.canonical(pred), rules.canonical(gold)
    return bool(p) and p == g


def score_completion(text: str, gold: str, qtype: str | None = None, rules: AnswerRules | None = None) -> dict:
    """Score one completion: strict format, leniently extracted answer, and correctness."""
    format_ok, _ = parse_strict(text)
    answer = extract_answer(text)
    return {"format_ok": format_ok, "answer": answer, "correct": answers_match(answer, gold, qtype, rules)}
