"""Tests for strict/lenient answer parsing, normalisation and matching."""

import pytest

from ftmodel.answers import answers_match, extract_answer, normalize_answer, parse_strict, score_completion


@pytest.mark.parametrize("text, expected", [
    ("<think>r</think><answer>12.5</answer>", (True, "12.5")),
    ("  \n<think>r</think>\n <answer> B </answer>\n", (True, "B")),
    ("<think></think><answer>x</answer>", (True, "x")),
    ("<think>multi\nline</think><answer>True</answer>", (True, "True")),
])
def test_parse_strict_accepts_well_formed(text, expected):
    assert parse_strict(text) == expected


@pytest.mark.parametrize("text", [
    "",
    "<answer>1</answer>",
    "<think>r</think>",
    "<think>r</think><answer>1</answer> trailing",
    "leading <think>r</think><answer>1</answer>",
    "<think>r</think>text<answer>1</answer>",
    "<think>r</think><answer>   </answer>",
    "<think>r</think><answer></answer>",
    "<think>a<think>b</think></think><answer>1</answer>",
    "<think>r</think><answer><answer>1</answer></answer>",
    "<think>r</think><answer>1</answer><answer>2</answer>",
    "<think>r</think><think>s</think><answer>1</answer>",
    "<answer>1</answer><think>r</think>",
    "<think>r<answer>1</answer></think>",
    "<think>r</think><answer>1</think></answer>",
    "<think>r<answer>1</think></answer>",
])
def test_parse_strict_rejects_malformed(text):
    assert parse_strict(text) == (False, None)


def test_extract_answer_is_lenient_and_takes_last_block():
    assert extract_answer("blah <answer> 3 </answer> more <answer>4</answer> tail") == "4"
    assert extract_answer("<answer>\nfall\n</answer>") == "fall"
    assert extract_answer("no answer here") is None
    assert extract_answer("<answer>unterminated") is None


@pytest.mark.parametrize("raw, norm", [
    ("  Rise. ", "rise"),
    ("$1,234.50", "1234.50"),
    ("12.5%", "12.5"),
    ("(B)", "b"),
    ("b)", "b"),
    ("C.", "c"),
    ('"Alpha"', "alpha"),
    ("TRUE", "true"),
    ("False!", "false"),
    ("1,2", "1,2"),
])
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


@pytest.mark.parametrize("pred, gold", [
    ("10", "10.0"), ("10.00", "10.0"), ("10.004", "10.0"), ("-70", "-70.0"),
    ("4542.72", "4542.72"), ("$4,542.72", "4542.72"), ("1102.5", "1102.50"),
    ("100050", "100000"),  # relative tolerance for large amounts
    ("(b)", "B"), ("b.", "B"), ("true", "True"), ("Alpha", "alpha"), ("12.5%", "12.5"),
])
def test_answers_match_positive(pred, gold):
    assert answers_match(pred, gold)


@pytest.mark.parametrize("pred, gold", [
    (None, "1"), ("10.02", "10.0"), ("-10", "10"), ("A", "B"), ("rise", "fall"),
    ("100200", "100000"), ("Alphas", "Alpha"), ("", "0"), ("1e400", "1"),
])
def test_answers_match_negative(pred, gold):
    assert not answers_match(pred, gold)


def test_score_completion_separates_format_from_correctness():
    good = score_completion("<think>x</think><answer>fall</answer>", "fall")
    assert good == {"format_ok": True, "answer": "fall", "correct": True}
    sloppy = score_completion("I think <answer>fall</answer> ok", "fall")
    assert sloppy == {"format_ok": False, "answer": "fall", "correct": True}
    wrong = score_completion("<think>x</think><answer>rise</answer>", "fall")
    assert wrong == {"format_ok": True, "answer": "rise", "correct": False}
    none = score_completion("nothing", "fall")
    assert none == {"format_ok": False, "answer": None, "correct": False}
