"""Built-in finance question bank, generated deterministically from a seed.

Every question is defined by its template parameters, written as its ``key``. Train and eval are
held out by key: a fixed hash of the key (independent of the seed) puts each parameter
combination in exactly one split, so no eval question ever shares its parameters with a train
question, whatever seeds produced them.

(Over 400 lines: eight question types, each a template and its worked solution, plus the corpora the
tiny model is pre-trained on; they share one vocabulary and one split rule, and change together.)
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal

from ftmodel.answers import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    DEFAULT_RULES,
    THINK_CLOSE,
    THINK_OPEN,
    AnswerRules,
    answers_match,
)
from ftmodel.errors import DataError
from ftmodel.i18n import t

QTYPES: tuple[str, ...] = (
    "percent_change",
    "compound_interest",
    "multiple_choice",
    "true_false",
    "rule_direction",
    "compare_returns",
    "read_number",
    "gain_or_loss",
)

# Share of the key space reserved for eval; the salt keeps the partition fixed across seeds.
_EVAL_PERCENT = 20
_SPLIT_SALT = "ftmodel-bank-split-v1"
# Give up on a split that cannot be filled rather than loop forever on an exhausted key space.
_MAX_TRIES_PER_RECORD = 200

_COMPANIES = tuple(
    f"{stem} {suffix}"
    for stem in (
        "Acme",
        "Globex",
        "Initech",
        "Umbrella",
        "Stark",
        "Wayne",
        "Vandelay",
        "Hooli",
        "Soylent",
        "Tyrell",
        "Cyberdyne",
        "Wonka",
        "Gringotts",
        "Oscorp",
        "Massive",
        "Nakatomi",
        "Aperture",
        "Monarch",
        "Sterling",
        "Dunder",
    )
    for suffix in ("Corp", "Inc", "Holdings", "Group", "Ltd", "Industries")
)
_FUNDS = (
    "Alpha",
    "Beta",
    "Gamma",
    "Delta",
    "Epsilon",
    "Zeta",
    "Theta",
    "Iota",
    "Kappa",
    "Lambda",
    "Sigma",
    "Omega",
)

# (term, definition) pairs shared by multiple_choice, true_false and the pretraining sentences.
_CONCEPTS = (
    ("Dividend", "a payment a company makes to its shareholders out of profits"),
    ("Market capitalization", "the total market value of a company's outstanding shares"),
    ("Liquidity", "how easily an asset can be turned into cash without losing value"),
    ("Diversification", "spreading investments across assets to reduce risk"),
    ("Inflation", "a general rise in prices that lowers purchasing power"),
    ("Bond", "a loan to an issuer that pays fixed interest and returns the principal"),
    ("Equity", "ownership interest in a company"),
    ("Yield", "the income an investment returns as a percentage of its price"),
    ("Volatility", "how much an asset's price swings over time"),
    ("Leverage", "using borrowed money to increase the size of an investment"),
    ("Collateral", "an asset pledged to secure a loan"),
    ("Depreciation", "the spread of an asset's cost over its useful life"),
)

# (cause with {v} for the verb, effect, short cause name, short effect, effect moves the same way);
# {e} is the company and {p} its possessive.
_RULES = (
    ("interest rates {v}", "the price of a fixed-coupon bond issued by {e}", "rates", "bond price", False),
    ("demand for {p} products {v}s", "{p} revenue", "demand", "revenue", True),
    ("{p} costs {v} while its revenue stays the same", "{p} profit", "costs", "profit", False),
    ("{p} credit rating {v}s", "{p} borrowing cost", "rating", "borrowing cost", False),
    ("inflation expectations {v}", "the yield investors demand on {p} long-term bonds", "inflation", "yield", True),
    ("{p} earnings {v} and its P/E ratio stays the same", "{p} share price", "earnings", "share price", True),
)
# One phrasing, which names only the cause's direction ("Does X rise or fall?" would put both
# directions in every question and make the decisive word hard to find for a tiny model).
_RULE_PHRASINGS = ("If {cause}, what happens to {effect}?",)
_READ_FIELDS = ("revenue", "net income", "total assets")
_INVESTORS = ("An investor", "A trader", "A pension fund", "A hedge fund")

_GENERIC_SENTENCES = (
    "Bond prices move in the opposite direction to interest rates.",
    "A company's profit is its revenue minus its costs.",
    "Higher demand for a company's products usually increases its revenue.",
    "A better credit rating lets a company borrow more cheaply.",
    "Investors demand higher yields when they expect more inflation.",
    "If the price-to-earnings ratio is constant, the share price follows earnings.",
    "Selling an asset for more than its purchase price is a gain.",
    "Selling an asset for less than its purchase price is a loss.",
    "A fund's annual return is the percentage change in its value over the year.",
    "Compound interest earns interest on previously earned interest.",
    "Simple interest is earned only on the original principal.",
    "Diversification lowers risk without necessarily lowering expected return.",
    "Stocks are usually more volatile than government bonds.",
    "Revenue is reported before costs are subtracted; net income is what remains.",
    "Total assets are the sum of everything a company owns.",
    "A stock's percentage change compares the price move with the starting price.",
    "Interest rates and bond prices move in opposite directions.",
    "Demand and revenue move in the same direction.",
    "Costs and profit move in opposite directions.",
    "A credit rating and the borrowing cost move in opposite directions.",
    "Inflation and bond yields move in the same direction.",
    "Earnings and the share price move in the same direction.",
    "Selling higher than you bought is a gain; selling lower is a loss.",
    "The fund whose return is higher returned more.",
) + tuple(f"{term} is {definition}." for term, definition in _CONCEPTS)
_FORMULAS = (
    "percentage change = (new - old) / old * 100",
    "final amount = principal * (1 + rate) ^ years",
    "simple interest = principal * rate * years",
    "profit = revenue - costs",
    "return = (end value - start value) / start value",
    "gain = sale price - purchase price",
    "market capitalization = share price * shares outstanding",
    "yield = annual income / price * 100",
)


def _solution(reasoning: str, answer: str) -> str:
    """Format a worked solution in the exact think-then-answer layout."""
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def _round(value: Decimal, places: int) -> str:
    """Round half up to a fixed number of decimals (float rounding would be half-even and inexact)."""
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


# Each generator takes (rng, target class index) and returns (key, question, answer, reasoning).
# The target class lets the caller balance answers exactly within each split.
_Item = tuple[str, str, str, str]


def _percent_change(rng: random.Random, target: int) -> _Item:
    """A price move; target 0 is a rise, 1 a fall."""
    start = rng.randint(10, 200)
    end = rng.randint(start + 1, start + 100) if target == 0 else rng.randint(max(1, start // 3), start - 1)
    answer = _round(Decimal(end - start) * 100 / Decimal(start), 1)
    question = f"A stock moved from {start} to {end}. What is the percentage change?"
    return f"percent_change|{start}|{end}", question, answer, f"({end}-{start})/{start}*100={answer}"


def _compound_interest(rng: random.Random, target: int) -> _Item:
    """Annual compounding over target+1 years."""
    principal = rng.randrange(500, 10001, 100)
    rate = rng.randint(1, 12)
    years = target + 1
    answer = _round(Decimal(principal) * (1 + Decimal(rate) / 100) ** years, 2)
    unit = "year" if years == 1 else "years"
    question = (
        f"{principal} is invested at {rate}% per year, compounded annually, for {years} {unit}. "
        f"What is the final amount?"
    )
    reasoning = f"{principal}*(1+{rate / 100:g})^{years}={answer}"
    return f"compound_interest|{principal}|{rate}|{years}", question, answer, reasoning


def _multiple_choice(rng: random.Random, target: int) -> _Item:
    """A definition and four candidate terms; target is the position of the right one.

    The answer is the term itself (as in "Bond, Equity, Inflation or Dividend?"), which the solution
    names after recalling which term the definition belongs to.
    """
    right, *wrong = rng.sample(range(len(_CONCEPTS)), 4)
    order = wrong[:target] + [right] + wrong[target:]
    names = [_CONCEPTS[c][0] for c in order]
    term, definition = _CONCEPTS[right]
    question = f"Which term means {definition}: {', '.join(names[:3])} or {names[3]}?"
    return "multiple_choice|" + "|".join(names), question, term, f"that is {term}"


def _true_false(rng: random.Random, target: int) -> _Item:
    """A checkable finance claim, a definition or a relation; target 0 makes it true, 1 false.

    Both kinds are decided by what the bank teaches (which term a definition belongs to, whether
    two quantities move the same way or opposite ways); arithmetic is left to the arithmetic types.
    A relation claim names no direction ("rise"/"fall"), so it does not blur rule_direction, whose
    answer is found by its direction word.
    """
    truth = target == 0
    verdict = "True" if truth else "False"
    if rng.random() < 0.5:
        term_i = rng.randrange(len(_CONCEPTS))
        def_i = term_i if truth else rng.choice([i for i in range(len(_CONCEPTS)) if i != term_i])
        term, definition = _CONCEPTS[term_i][0], _CONCEPTS[def_i][1]
        statement = f"{term} means {definition}."
        key = f"true_false|def|{term}|{_CONCEPTS[def_i][0]}"
        # The solution names the term the definition belongs to, then compares it with the claim.
        reasoning = f"that is {_CONCEPTS[def_i][0]}, so {verdict}"
    else:
        rule_i = rng.randrange(len(_RULES))
        _cause_t, _effect_t, cause_short, effect_short, same = _RULES[rule_i]
        relation = "same" if same else "opposite"
        claimed = relation if truth else ("opposite" if same else "same")
        entity = rng.choice(_COMPANIES)
        moves = "in the same direction" if claimed == "same" else "in opposite directions"
        statement = f"For {entity}, {cause_short} and {effect_short} move {moves}."
        key = f"true_false|relation|{rule_i}|{entity}|{claimed}"
        reasoning = f"{cause_short} and {effect_short}: {relation}, claimed {claimed}, so {verdict}"
    return key, f"True or false: {statement}", verdict, reasoning


def _possessive(name: str) -> str:
    """Return the English possessive of a name ("Acme Corp's", "Globex Holdings'")."""
    return name + ("'" if name.endswith("s") else "'s")


def _rule_direction(rng: random.Random, target: int) -> _Item:
    """A cause-and-effect rule; target 0 makes the effect rise, 1 fall.

    The solution restates the cause in a fixed short form, names the rule's relation, and only
    then gives the direction: "rates rise, opposite, so fall".
    """
    rule_i = rng.randrange(len(_RULES))
    cause_t, effect_t, cause_short, _effect_short, same = _RULES[rule_i]
    effect_dir = ("rise", "fall")[target]
    # The cause moves the same way as the effect for same-direction rules, the other way otherwise.
    cause_dir = effect_dir if same else ("fall", "rise")[target]
    entity = rng.choice(_COMPANIES)
    phrasing = rng.randrange(len(_RULE_PHRASINGS))
    question = _RULE_PHRASINGS[phrasing].format(
        cause=cause_t.format(v=cause_dir, e=entity, p=_possessive(entity)),
        effect=effect_t.format(e=entity, p=_possessive(entity)),
    )
    question = question[0].upper() + question[1:]
    key = f"rule_direction|{rule_i}|{cause_dir}|{entity}|{phrasing}"
    relation = "same" if same else "opposite"
    return key, question, effect_dir, f"{cause_short} {cause_dir}, {relation}, so {effect_dir}"


def _leading_digits_differ(rng: random.Random, lo: int, hi: int) -> tuple[int, int]:
    """Two numbers in [lo, hi] (same digit count) whose leading digits differ, higher first."""
    while True:
        a, b = rng.sample(range(lo, hi + 1), 2)
        if str(a)[0] != str(b)[0]:
            return max(a, b), min(a, b)


def _compare_returns(rng: random.Random, target: int) -> _Item:
    """Two funds' returns; target 0 means the first-named fund returned more.

    Each return follows its fund's name ("Fund Beta 3.2%"), so the solution copies name and return
    pairs in order, says whether the second is up or down from the first (decided by the integer
    parts, which always differ), then names the winner.
    """
    first, second = rng.sample(_FUNDS, 2)
    high, low = _leading_digits_differ(rng, 1, 9)
    higher, lower = f"{high}.{rng.randrange(10)}", f"{low}.{rng.randrange(10)}"
    r1, r2 = (higher, lower) if target == 0 else (lower, higher)
    winner = first if target == 0 else second
    move = "down" if target == 0 else "up"
    question = f"Last year's returns: Fund {first} {r1}%, Fund {second} {r2}%. Which fund returned more?"
    return (
        f"compare_returns|{first}|{r1}|{second}|{r2}",
        question,
        winner,
        f"{first} {r1}, {second} {r2}, {move}, so {winner}",
    )


def _read_number(rng: random.Random, target: int) -> _Item:
    """Two reported figures; target 0 asks for the first one, 1 for the second.

    The solution repeats the asked field exactly as the question states it ("net income 312"), so
    the figure is a copy of what follows the field's name in the question.
    """
    entity = rng.choice(_COMPANIES)
    fields = rng.sample(_READ_FIELDS, 2)
    values = [str(rng.randint(10, 999)) for _ in fields]
    asked = fields[target]
    question = (
        f"{entity} reported {fields[0]} {values[0]} million and {fields[1]} {values[1]} million. "
        f"What was its {asked} in millions?"
    )
    key = f"read_number|{entity}|{fields[0]}|{values[0]}|{fields[1]}|{values[1]}|{asked}"
    return key, question, values[target], f"{asked} {values[target]}"


def _gain_or_loss(rng: random.Random, target: int) -> _Item:
    """A buy and a sell price; target 0 is a gain, 1 a loss.

    Prices have two digits with different leading digits, each after its own word ("at 45",
    "for 72"); the solution copies both prices, says whether the move from the purchase to the
    sale is up or down, then names the result.
    """
    high, low = _leading_digits_differ(rng, 10, 99)
    bought, sold = (low, high) if target == 0 else (high, low)
    who = rng.choice(_INVESTORS)
    entity = rng.choice(_COMPANIES)
    answer = ("gain", "loss")[target]
    move = ("up", "down")[target]
    question = f"{who} bought {entity} shares at {bought} and sold them for {sold}. Was this a gain or a loss?"
    return (
        f"gain_or_loss|{who}|{entity}|{bought}|{sold}",
        question,
        answer,
        f"bought at {bought}, sold for {sold}, {move}, so {answer}",
    )


# qtype -> (generator, number of answer classes to balance over).
_GENERATORS: dict[str, tuple[Callable[[random.Random, int], _Item], int]] = {
    "percent_change": (_percent_change, 2),
    "compound_interest": (_compound_interest, 3),
    "multiple_choice": (_multiple_choice, 4),
    "true_false": (_true_false, 2),
    "rule_direction": (_rule_direction, 2),
    "compare_returns": (_compare_returns, 2),
    "read_number": (_read_number, 2),
    "gain_or_loss": (_gain_or_loss, 2),
}


def _split_key(key: str) -> str:
    """The key that decides a record's split. A rule applied to a company is one fact whatever
    the direction asked about or the type asking, so rule_direction questions and true/false
    relation claims about the same rule and company all go to the same split."""
    parts = key.split("|")
    if parts[0] == "rule_direction":
        return f"rule|{parts[1]}|{parts[3]}"
    if parts[:2] == ["true_false", "relation"]:
        return f"rule|{parts[2]}|{parts[3]}"
    return key


def _is_eval_key(key: str) -> bool:
    """Decide from the key alone, independently of the seed, whether it belongs to eval."""
    digest = hashlib.sha1(f"{_SPLIT_SALT}|{_split_key(key)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < _EVAL_PERCENT


def _record(qtype: str, item: _Item, split: str) -> dict:
    """Build a schema record from a generated item."""
    key, question, answer, reasoning = item
    return {
        "id": f"{qtype}-{hashlib.sha1(key.encode()).hexdigest()[:10]}",
        "qtype": qtype,
        "question": question,
        "answer": answer,
        "solution": _solution(reasoning, answer),
        "split": split,
        "key": key,
    }


def _generate_type(qtype: str, seed: int, counts: dict[str, int]) -> dict[str, list[dict]]:
    """Generate class-balanced records of one qtype for each split, with unique keys."""
    generator, n_classes = _GENERATORS[qtype]
    # A per-type stream: selecting a subset of qtypes does not change the others' questions.
    rng = random.Random(f"{seed}|{qtype}")
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    for split, n in counts.items():
        targets = [i % n_classes for i in range(n)]
        rng.shuffle(targets)
        records = []
        for target in targets:
            for _ in range(_MAX_TRIES_PER_RECORD):
                item = generator(rng, target)
                key = item[0]
                if key not in seen and _is_eval_key(key) == (split == "eval"):
                    seen.add(key)
                    records.append(_record(qtype, item, split))
                    break
            else:
                raise DataError(
                    t(
                        "question bank: cannot generate {n} unique {split} questions of type {qtype!r}: "
                        "lower data.n_train / data.n_eval or add question types",
                        n=n,
                        split=split,
                        qtype=qtype,
                    )
                )
        out[split] = records
    return out


def _shares(n: int, k: int) -> list[int]:
    """Split n into k near-equal counts, the remainder going to the first ones."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _round_robin(groups: list[list[dict]]) -> list[dict]:
    """Interleave lists one element at a time."""
    out = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def generate_bank(
    seed: int = 0,
    n_train: int = 2000,
    n_eval: int = 200,
    qtypes: Sequence[str] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Generate (train, eval) finance questions, types interleaved round-robin, held out by key."""
    types = tuple(QTYPES if qtypes is None else qtypes)
    unknown = [q for q in types if q not in _GENERATORS]
    if unknown or not types:
        raise DataError(
            t("unknown question types {unknown}; choose from {types}", unknown=unknown, types=", ".join(QTYPES))
        )
    per_type = [
        _generate_type(q, seed, {"train": nt, "eval": ne})
        for q, nt, ne in zip(types, _shares(n_train, len(types)), _shares(n_eval, len(types)))
    ]
    return (_round_robin([p["train"] for p in per_type]), _round_robin([p["eval"] for p in per_type]))


def majority_baseline(train: list[dict], eval: list[dict], rules: AnswerRules | None = None) -> dict[str, float]:
    """Eval accuracy per qtype (and "overall") of always giving the most common train answer
    (answers counted as the matcher sees them: "盈利" and "盈利。" are one answer)."""
    rules = rules or DEFAULT_RULES
    by_type: dict[str, Counter] = {}
    for r in train:
        by_type.setdefault(r["qtype"], Counter())[rules.canonical(r["answer"])] += 1
    # Ties go to the alphabetically first answer so the baseline does not depend on record order.
    majority = {q: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for q, c in by_type.items()}
    totals: Counter = Counter()
    correct: Counter = Counter()
    for r in eval:
        totals[r["qtype"]] += 1
        guess = majority.get(r["qtype"])
        correct[r["qtype"]] += answers_match(guess, r["answer"], r["qtype"], rules)
    result = {q: correct[q] / totals[q] for q in totals}
    result["overall"] = sum(correct.values()) / len(eval) if eval else 0.0
    return result


_MOVE_LABELS = (("open", "close"), ("start", "end"), ("before", "after"), ("old", "new"), ("first", "second"))


def _move_line(rng: random.Random) -> str:
    """A plain fact saying whether a number moved up or down: "open 45, close 72, up".

    Two-digit numbers or one-digit decimals, as in the questions; the leading digits usually differ.
    """
    if rng.random() < 0.5:
        a, b = rng.sample(range(10, 100), 2)
        x, y = str(a), str(b)
    else:
        a, b = rng.sample(range(10, 100), 2)
        x, y = f"{a / 10:.1f}", f"{b / 10:.1f}"
    first, second = rng.choice(_MOVE_LABELS)
    return f"{first} {x}, {second} {y}, {'up' if b > a else 'down'}"


def _arithmetic_line(rng: random.Random) -> str:
    """A plain arithmetic fact of the kinds the solutions use."""
    a, b = rng.randint(1, 200), rng.randint(1, 200)
    op = rng.randrange(6)
    if op == 5:
        return _move_line(rng)
    if op == 0:
        return f"{a} + {b} = {a + b}"
    if op == 1:
        return f"{a} - {b} = {a - b}"
    if op == 2:
        return f"{a} * {b} = {a * b}"
    if op == 3:
        return f"{a} / {b} = {round(a / b, 3):g}"
    return f"{a} > {b}" if a > b else f"{a} < {b}" if a < b else f"{a} = {b}"


def _train_key_only(make: Callable[[], tuple[str, str]]) -> str:
    """Draw (key, text) from make until the key belongs to the train split; return the text.

    Pre-training texts are built from train-split parameters only, so the base model never reads
    the facts of an eval question.
    """
    while True:
        key, text = make()
        if not _is_eval_key(key):
            return text


def _report_line(rng: random.Random) -> str:
    """A company report that restates one of its figures: copying a figure, seen in pre-training."""

    def make() -> tuple[str, str]:
        entity = rng.choice(_COMPANIES)
        fields = rng.sample(_READ_FIELDS, 2)
        values = [str(rng.randint(10, 999)) for _ in fields]
        i = rng.randrange(2)
        key = f"read_number|{entity}|{fields[0]}|{values[0]}|{fields[1]}|{values[1]}|{fields[i]}"
        return key, (
            f"{entity} reported {fields[0]} {values[0]} million and {fields[1]} {values[1]} million. "
            f"{fields[i]} {values[i]} million was a record."
        )

    return _train_key_only(make)


def _fund_line(rng: random.Random) -> str:
    """Two funds' returns, then both restated with the move from the first to the second."""

    def make() -> tuple[str, str]:
        a, b = rng.sample(_FUNDS, 2)
        high, low = _leading_digits_differ(rng, 1, 9)
        r1, r2 = f"{high}.{rng.randrange(10)}", f"{low}.{rng.randrange(10)}"
        if rng.random() < 0.5:
            r1, r2 = r2, r1
        move = "up" if float(r2) > float(r1) else "down"
        return (
            f"compare_returns|{a}|{r1}|{b}|{r2}",
            f"Last year's returns: Fund {a} {r1}%, Fund {b} {r2}%. {a} {r1}, {b} {r2}, {move}.",
        )

    return _train_key_only(make)


def _trade_line(rng: random.Random) -> str:
    """A purchase and a sale, then both prices restated with the move between them."""

    def make() -> tuple[str, str]:
        who, entity = rng.choice(_INVESTORS), rng.choice(_COMPANIES)
        high, low = _leading_digits_differ(rng, 10, 99)
        bought, sold = (low, high) if rng.random() < 0.5 else (high, low)
        move = "up" if sold > bought else "down"
        return (
            f"gain_or_loss|{who}|{entity}|{bought}|{sold}",
            f"{who} bought {entity} shares at {bought} and sold them for {sold}. "
            f"bought at {bought}, sold for {sold}, {move}.",
        )

    return _train_key_only(make)


def pretrain_corpus(seed: int = 0, n: int = 8000) -> list[str]:
    """Texts for pre-training the tiny base LM: questions, finance facts, formulas, arithmetic.

    Only train-split question texts are used, and never a solution or an answer tag, so the base
    model knows the domain but not the answer format. Besides the questions: generic finance
    sentences and formulas, arithmetic lines, "open 45, close 72, up" move lines (the comparison the
    gain/loss and fund questions need), and reports, fund results and trades that restate their
    figures in a short form, so the base model learns to copy names and numbers from a text.
    """
    rng = random.Random(f"{seed}|pretrain")
    n_questions = n // 2
    train, _ = generate_bank(seed, n_train=n_questions, n_eval=0)
    texts = [r["question"] for r in train]
    n_facts, n_arith, n_moves = n // 10, n // 20, n // 10
    texts += [rng.choice(_GENERIC_SENTENCES + _FORMULAS) for _ in range(n_facts)]
    texts += [_arithmetic_line(rng) for _ in range(n_arith)]
    texts += [_move_line(rng) for _ in range(n_moves)]
    restating = (_report_line, _fund_line, _trade_line)
    texts += [restating[i % 3](rng) for i in range(n - len(texts))]
    rng.shuffle(texts)
    return texts


def tokenizer_corpus(seed: int = 0) -> list[str]:
    """Texts for training the BPE tokenizer: the pretraining corpus plus the solutions' inner text."""
    train, _ = generate_bank(seed)
    inner = []
    for r in train:
        reasoning, answer = r["solution"][len(THINK_OPEN) :].split(THINK_CLOSE + ANSWER_OPEN)
        inner += [reasoning, answer[: -len(ANSWER_CLOSE)]]
    return pretrain_corpus(seed) + inner
