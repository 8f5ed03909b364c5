"""Tests for the built-in finance question bank."""

import re
from collections import Counter

import pytest

from ftmodel.answers import TAGS, answers_match, parse_strict
from ftmodel.data.bank import QTYPES, generate_bank, majority_baseline, pretrain_corpus, tokenizer_corpus

FIELDS = {"id", "qtype", "question", "answer", "solution", "split", "key"}
BINARY = ("percent_change", "true_false", "rule_direction", "compare_returns", "read_number", "gain_or_loss")


@pytest.fixture(scope="module")
def bank():
    return generate_bank(seed=0)


def test_shape_schema_and_round_robin(bank):
    train, eval_ = bank
    assert len(train) == 2000 and len(eval_) == 200
    assert len(QTYPES) == 8
    for split, records in (("train", train), ("eval", eval_)):
        for r in records:
            assert set(r) == FIELDS
            assert r["split"] == split
            assert all(isinstance(r[f], str) and r[f] for f in FIELDS)
            assert r["id"].startswith(r["qtype"] + "-")
        assert [r["qtype"] for r in records[:16]] == list(QTYPES) * 2
        counts = Counter(r["qtype"] for r in records)
        assert set(counts) == set(QTYPES) and max(counts.values()) - min(counts.values()) <= 1


def test_every_solution_is_strict_and_correct(bank):
    for r in bank[0] + bank[1]:
        ok, answer = parse_strict(r["solution"])
        assert ok, r["solution"]
        assert answers_match(answer, r["answer"]), r
        assert r["solution"] == r["solution"].strip() and "\n" not in r["solution"]
        assert len(r["solution"]) <= 150, r["solution"]


def test_no_eval_key_in_train_and_unique_within_splits(bank):
    train, eval_ = bank
    train_keys = [r["key"] for r in train]
    eval_keys = [r["key"] for r in eval_]
    assert len(set(train_keys)) == len(train_keys)
    assert len(set(eval_keys)) == len(eval_keys)
    assert not set(train_keys) & set(eval_keys)
    assert len({r["id"] for r in train + eval_}) == len(train) + len(eval_)
    assert not {r["question"] for r in train} & {r["question"] for r in eval_}


def test_a_rule_applied_to_a_company_is_in_one_split_only_across_types():
    """rule_direction questions (either direction) and true/false relation claims about the same rule
    and company share a split: no eval question restates a fact a training question taught."""
    facts = {}
    for seed in (0, 1):
        for r in sum(generate_bank(seed=seed), []):
            parts = r["key"].split("|")
            if r["qtype"] == "rule_direction":
                fact = (parts[1], parts[3])
            elif parts[:2] == ["true_false", "relation"]:
                fact = (parts[2], parts[3])
            else:
                continue
            facts.setdefault(fact, set()).add(r["split"])
    assert len(facts) > 300 and all(len(splits) == 1 for splits in facts.values())


def test_held_out_partition_is_seed_independent():
    train0, _ = generate_bank(seed=0)
    _, eval1 = generate_bank(seed=1)
    assert not {r["key"] for r in train0} & {r["key"] for r in eval1}


def test_same_seed_same_bank_different_seed_differs(bank):
    assert generate_bank(seed=0) == bank
    other = generate_bank(seed=1)
    assert [r["question"] for r in other[0]] != [r["question"] for r in bank[0]]
    assert [r["question"] for r in other[1]] != [r["question"] for r in bank[1]]


def test_qtypes_subset_and_unknown_type(bank):
    train, eval_ = generate_bank(seed=0, n_train=40, n_eval=10, qtypes=["gain_or_loss", "read_number"])
    assert {r["qtype"] for r in train + eval_} == {"gain_or_loss", "read_number"}
    assert len(train) == 40 and len(eval_) == 10
    with pytest.raises(ValueError, match="unknown"):
        generate_bank(qtypes=["nope"])


@pytest.mark.parametrize("qtype", BINARY)
def test_binary_class_balance(bank, qtype):
    for records in bank:
        sub = [r for r in records if r["qtype"] == qtype]
        if qtype == "read_number":
            # Balanced over which of the two stated figures is asked for.
            labels = [r["question"].index(r["answer"] + " million") < r["question"].index(" and ") for r in sub]
        elif qtype == "compare_returns":  # balanced over which of the two funds returned more
            labels = [r["question"].index(f"Fund {r['answer']} ") == r["question"].index("Fund ") for r in sub]
        elif qtype == "percent_change":
            labels = [r["answer"].startswith("-") for r in sub]
        else:
            labels = [r["answer"] for r in sub]
        top = Counter(labels).most_common(1)[0][1]
        assert 0.35 <= top / len(sub) <= 0.65, (qtype, Counter(labels))


def test_multiple_choice_answer_is_one_of_four_named_terms_in_balanced_positions(bank):
    positions = Counter()
    for r in bank[0]:
        if r["qtype"] == "multiple_choice":
            names = r["key"].split("|")[1:]
            assert len(set(names)) == 4 and r["answer"] in names and ", ".join(names[:3]) in r["question"]
            positions[names.index(r["answer"])] += 1
    assert set(positions) == {0, 1, 2, 3} and max(positions.values()) - min(positions.values()) <= 1


def test_entity_types_vary_entities(bank):
    train, _ = bank
    company = re.compile(r"[A-Z]\w+ (?:Corp|Inc|Holdings|Group|Ltd|Industries)")
    for qtype in ("rule_direction", "read_number", "gain_or_loss"):
        names = {company.search(r["question"]).group() for r in train if r["qtype"] == qtype}
        assert len(names) > 50, qtype
    funds = {r["answer"] for r in train if r["qtype"] == "compare_returns"}
    assert len(funds) >= 10


def test_majority_baseline_handcrafted():
    train = [
        {"qtype": "tf", "answer": "False"},
        {"qtype": "tf", "answer": "False"},
        {"qtype": "tf", "answer": "True"},
        {"qtype": "num", "answer": "10"},
        {"qtype": "num", "answer": "10.0"},
        {"qtype": "num", "answer": "7"},
    ]
    eval_ = [
        {"qtype": "tf", "answer": "False"},
        {"qtype": "tf", "answer": "True"},
        {"qtype": "tf", "answer": "False"},
        {"qtype": "tf", "answer": "False"},
        {"qtype": "num", "answer": "7"},
        {"qtype": "new", "answer": "x"},
    ]
    result = majority_baseline(train, eval_)
    # "10" and "10.0" are distinct strings; the tie with "7" goes to the alphabetically first, "10".
    assert result == {"tf": 0.75, "num": 0.0, "new": 0.0, "overall": 0.5}


def test_majority_baseline_on_bank_is_about_half_for_binary(bank):
    result = majority_baseline(*bank)
    for qtype in ("true_false", "rule_direction", "gain_or_loss"):
        assert 0.3 <= result[qtype] <= 0.7
    assert 0.0 <= result["overall"] <= 1.0


def test_pretrain_corpus_has_no_format_and_no_eval_questions(bank):
    corpus = pretrain_corpus(seed=0, n=1000)
    assert len(corpus) == 1000 and all(isinstance(t, str) and t for t in corpus)
    for text in corpus:
        assert not any(tag in text for tag in TAGS), text
    eval_questions = {r["question"] for r in bank[1]}
    assert not eval_questions & set(corpus)
    assert any(" = " in t for t in corpus)
    assert pretrain_corpus(seed=0, n=1000) == corpus


def test_tokenizer_corpus_covers_solution_text_without_tags(bank):
    corpus = tokenizer_corpus(seed=0)
    assert not any(tag in t for t in corpus for tag in TAGS)
    texts = set(corpus)
    sample = bank[0][0]
    reasoning = sample["solution"].split("<think>")[1].split("</think>")[0]
    assert reasoning in texts and sample["answer"] in texts


def _think(r):
    return r["solution"].split("<think>")[1].split("</think>")[0]


def test_learnable_types_restate_the_decisive_facts(bank):
    """The worked solutions of the learnable types end in the answer and restate what decides it."""
    for r in bank[0] + bank[1]:
        think = _think(r)
        if r["qtype"] in ("rule_direction", "compare_returns", "gain_or_loss", "true_false"):
            assert think.endswith(f"so {r['answer']}"), r
        if r["qtype"] == "rule_direction":
            name, cause_dir, relation = re.fullmatch(r"(\w+) (rise|fall), (same|opposite), so \w+", think).groups()
            assert (cause_dir == r["answer"]) == (relation == "same"), r
        elif r["qtype"] == "read_number":
            # A verbatim copy of "<field> <value>" from the question.
            assert think in r["question"] and think.endswith(f" {r['answer']}"), r
        elif r["qtype"] == "gain_or_loss":
            bought, sold, move = re.fullmatch(r"bought at (\d+), sold for (\d+), (up|down), so \w+", think).groups()
            assert len(bought) == len(sold) == 2 and bought[0] != sold[0]
            assert f"at {bought} and sold them for {sold}." in r["question"]
            assert (move == "up") == (int(sold) > int(bought)) == (r["answer"] == "gain")
        elif r["qtype"] == "compare_returns":
            first, r1, second, r2, move = re.fullmatch(
                r"(\w+) ([\d.]+), (\w+) ([\d.]+), (up|down), so \w+", think
            ).groups()
            assert f"Fund {first} {r1}%, Fund {second} {r2}%." in r["question"]
            assert r1[0] != r2[0] and (move == "down") == (r["answer"] == first)
        elif r["qtype"] == "multiple_choice":
            assert think == f"that is {r['answer']}" and r["answer"] in r["question"]
        elif r["qtype"] == "true_false" and "|relation|" in r["key"]:
            relation, claimed = re.fullmatch(
                r"[\w ]+ and [\w ]+: (same|opposite), claimed (same|opposite), so \w+", think
            ).groups()
            assert ("same direction" in r["question"]) == (claimed == "same")
            assert (relation == claimed) == (r["answer"] == "True")
            assert "rise" not in r["question"] and "fall" not in r["question"]


def test_rule_direction_names_only_the_cause_direction(bank):
    for r in bank[0]:
        if r["qtype"] == "rule_direction":
            assert "rise or fall" not in r["question"]


def test_pretrain_restatements_use_train_keys_only(bank):
    """Pre-training lines that restate a question's figures are drawn from train-split keys only."""
    eval_questions = [r["question"] for r in bank[1]]
    for text in pretrain_corpus(seed=0):
        if text.endswith(("up.", "down.", "was a record.")) and ". " in text:
            stem = text.split(". ")[0]
            assert not any(q.startswith(stem) for q in eval_questions), text
