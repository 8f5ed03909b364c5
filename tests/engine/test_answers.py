"""Tests for strict/lenient answer parsing, normalisation and matching."""

import pytest

from ftmodel.answers import answers_match, extract_answer, normalize_answer, parse_strict, score_completion


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>r</think><answer>12.5</answer>", (True, "12.5")),
        ("  \n<think>r</think>\n <answer> B </answer>\n", (True, "B")),
        ("<think></think><answer>x</answer>", (True, "x")),
        ("<think>multi\nline</think><answer>True</answer>", (True, "True")),
    ],
)
def test_parse_strict_accepts_well_formed(text, expected):
    assert parse_strict(text) == expected


@pytest.mark.parametrize(
    "text",
    [
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
    ],
)
def test_parse_strict_rejects_malformed(text):
    assert parse_strict(text) == (False, None)


def test_extract_answer_is_lenient_and_takes_last_block():
    assert extract_answer("blah <answer> 3 </answer> more <answer>4</answer> tail") == "4"
    assert extract_answer("<answer>\nfall\n</answer>") == "fall"
    assert extract_answer("no answer here") is None
    assert extract_answer("<answer>unterminated") is None


@pytest.mark.parametrize(
    "raw, norm",
    [
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
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("10", "10.0"),
        ("10.00", "10.0"),
        ("10.004", "10.0"),
        ("-70", "-70.0"),
        ("4542.72", "4542.72"),
        ("$4,542.72", "4542.72"),
        ("1102.5", "1102.50"),
        ("100050", "100000"),  # relative tolerance for large amounts
        ("(b)", "B"),
        ("b.", "B"),
        ("true", "True"),
        ("Alpha", "alpha"),
        ("12.5%", "12.5"),
    ],
)
def test_answers_match_positive(pred, gold):
    assert answers_match(pred, gold)


@pytest.mark.parametrize(
    "pred, gold",
    [
        (None, "1"),
        ("10.02", "10.0"),
        ("-10", "10"),
        ("A", "B"),
        ("rise", "fall"),
        ("100200", "100000"),
        ("Alphas", "Alpha"),
        ("", "0"),
        ("1e400", "1"),
    ],
)
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


# What a person would call the same answer, in Chinese and mixed scripts (the filter, the GRPO
# accuracy reward and evaluation all use this one matcher).
@pytest.mark.parametrize(
    "pred, gold",
    [
        ("盈利。", "盈利"),  # trailing ideographic full stop
        ("盈利！", "盈利"),  # full-width exclamation mark
        ("“盈利”", "盈利"),  # Chinese quotation marks
        ("「亏损」", "亏损"),
        ("『亏损』。", "亏损"),
        ("答案：盈利", "盈利"),  # "answer:" prefix, full-width colon
        ("答案是：盈利。", "盈利"),
        ("最终答案为 亏损", "亏损"),
        ("The final answer is: 12.5%", "12.5"),
        ("盈 利", "盈利"),  # a space between CJK characters means nothing
        ("12.5％", "12.5%"),  # full-width percent sign
        ("１２．５%", "12.5"),  # full-width digits and point
        ("百分之12.5", "12.5%"),
        ("¥1,200", "1200"),  # yen/yuan sign with a thousands separator
        ("￥1，200", "1200元"),  # full-width yen sign and comma, unit 元 on the gold
        ("1200元。", "¥1,200.00"),
        ("1.2万元", "12000元"),  # CJK multiplier
        ("3亿", "300000000"),
        ("−5.5", "-5.5"),  # U+2212 minus sign
        ("－5.5%", "-5.5%"),  # full-width hyphen-minus
        ("负5.5", "-5.5"),
        ("-¥1,200", "-1200"),
        ("4,542.72 元", "4542.72"),
        ("100美元", "$100"),
        ("1 234 567", "1234567"),  # space-grouped thousands
        ("（B）", "B"),  # full-width parentheses around an option letter
        ("B、", "b"),
        ("正确", "True"),
        ("错误", "false"),
        ("对", "正确"),
        ("ＡＢＣ", "abc"),
        ("净现值", "净现值。"),
    ],
)
def test_chinese_and_mixed_script_answers_match(pred, gold):
    assert answers_match(pred, gold), (pred, gold)


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("盈利", "亏损"),  # gain is not loss
        ("亏损。", "盈利"),
        ("12.5%", "1.25%"),  # a misplaced decimal point
        ("12.5%", "125%"),
        ("100美元", "100元"),  # same number, another currency
        ("50%", "50元"),  # percent is not money
        ("1.2万元", "1200元"),
        ("-5", "5"),
        ("负5", "5"),
        ("−5", "5"),
        ("1,2", "12"),  # not a thousands separator
        ("正确", "错误"),
        ("对", "False"),
        ("盈利", ""),
        ("", "盈利"),
        ("净现值", "现值"),
        ("B", "C"),
    ],
)
def test_chinese_and_mixed_script_answers_do_not_match(pred, gold):
    assert not answers_match(pred, gold), (pred, gold)


def test_rules_from_config_exact_regex_tolerance_and_aliases():
    from ftmodel.answers import AnswerRules
    from ftmodel.config import AnswersSection

    rules = AnswerRules.from_config(
        AnswersSection(
            exact_qtypes=["code"],
            regex_qtypes=["verdict"],
            tolerances=["percent_change=0.5"],
            aliases=["盈利=获利=赚钱"],
        )
    )
    assert answers_match("盈利", "盈利") and answers_match("获利。", "盈利", "gain_or_loss", rules)
    assert answers_match("赚钱", "获利", None, rules) and not answers_match("亏损", "获利", None, rules)
    assert not answers_match("获利", "盈利")  # aliases only when configured
    assert answers_match("12.4%", "12.8%", "percent_change", rules)
    assert not answers_match("12.4%", "12.8%", "other", rules)
    assert not answers_match("12.4%", "13.5%", "percent_change", rules)
    assert answers_match(" AbC ", "AbC", "code", rules) and not answers_match("abc", "AbC", "code", rules)
    assert answers_match("亏损。", "盈利|亏损", "verdict", rules) and not answers_match(
        "持平", "盈利|亏损", "verdict", rules
    )
    assert not answers_match("x", "(", "verdict", rules)  # a broken pattern matches nothing


def test_answers_rules_are_validated_with_the_key():
    from ftmodel.config import ConfigError, from_dict

    for section, message in (
        ({"tolerances": ["percent_change"]}, "answers.tolerances"),
        ({"tolerances": ["x=abc"]}, "answers.tolerances"),
        ({"aliases": ["盈利"]}, "answers.aliases"),
    ):
        with pytest.raises(ConfigError, match=message):
            from_dict({"answers": section})


def test_score_completion_uses_qtype_rules():
    from ftmodel.answers import AnswerRules

    rules = AnswerRules(tolerances={"pct": 1.0})
    assert score_completion("<think>x</think><answer>10.5％</answer>", "11", "pct", rules)["correct"]
    assert not score_completion("<think>x</think><answer>10.5％</answer>", "11", "other", rules)["correct"]
