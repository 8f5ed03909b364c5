"""The Chinese finance sample shipped with ftmodel (`data.source = "sample:finance_zh.csv"`): three of
the seed project's question types — 盈亏判断 (gain or loss), 百分比变化 (percentage change),
名词解释 (which term a definition names) — with worked solutions, in the column layout a Chinese
spreadsheet export has (编号,类型,问题,答案,解析). Answers inside the solutions come in the forms
people write (full-width ％, quotation marks, a trailing 。), so the shared answer matcher is what
keeps them. Regenerate the shipped file with `python -m ftmodel.data.sample_zh`.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

COLUMNS = ("编号", "类型", "问题", "答案", "解析")
COMPANIES = (
    "华夏科技",
    "东方电子",
    "长江能源",
    "南山医药",
    "北辰物流",
    "远航汽车",
    "青松食品",
    "金桥银行",
    "星河传媒",
    "蓝海化工",
    "天马地产",
    "鸿运纺织",
)
TERMS = (
    ("市盈率", "股票价格与每股收益的比率"),
    ("市净率", "股票价格与每股净资产的比率"),
    ("净资产收益率", "净利润与平均股东权益的比率"),
    ("毛利率", "毛利润占营业收入的比例"),
    ("资产负债率", "负债总额占资产总额的比例"),
    ("流动比率", "流动资产与流动负债的比率"),
    ("股息率", "每股股息与股票价格的比率"),
    ("通货膨胀", "物价总水平持续上涨、货币购买力下降的现象"),
    ("复利", "利息计入本金后再产生利息的计息方式"),
    ("债券", "发行人承诺按期支付利息并到期偿还本金的债务凭证"),
    ("分红", "公司把部分利润按持股比例分配给股东"),
    ("流动性", "资产在不损失价值的情况下变现的难易程度"),
    ("现金流", "一定时期内现金流入和流出的情况"),
    ("市值", "公司股票价格乘以总股本得到的价值"),
    ("杠杆", "借入资金以放大投资收益和风险的做法"),
    ("对冲", "用相反方向的交易降低风险的做法"),
)


def _gain_or_loss(rng: random.Random, i: int) -> list[str]:
    company = rng.choice(COMPANIES)
    buy = rng.randint(10, 90)
    sell = buy + rng.choice([-1, 1]) * rng.randint(1, 30)
    verdict = "盈利" if sell > buy else "亏损"
    relation = "高于" if sell > buy else "低于"
    question = f"某投资者以每股{buy}元买入{company}的股票，后以每股{sell}元卖出。这笔交易是盈利还是亏损？"
    shown = rng.choice([verdict, verdict + "。", f"“{verdict}”"])
    solution = (
        f"<think>买入价{buy}元，卖出价{sell}元，卖出价{relation}买入价，所以{verdict}。</think><answer>{shown}</answer>"
    )
    return [f"zh-{i:04d}", "盈亏判断", question, verdict, solution]


def _percent_change(rng: random.Random, i: int) -> list[str]:
    company = rng.choice(COMPANIES)
    old = rng.randint(20, 200) * 10
    new = old + rng.choice([-1, 1]) * rng.randint(1, 40) * 10
    pct = (new - old) / old * 100
    question = (
        f"{company}去年营业收入为{old:,}万元，今年为{new:,}万元。营业收入变化了百分之多少？"
        "（保留一位小数，下降记为负数）"
    )
    answer = f"{pct:.1f}%"
    shown = rng.choice([answer, answer.replace("%", "％"), answer.replace("-", "−")])
    solution = f"<think>变化率 = ({new} - {old}) ÷ {old} × 100% = {pct:.1f}%。</think><answer>{shown}</answer>"
    return [f"zh-{i:04d}", "百分比变化", question, answer, solution]


def _term(rng: random.Random, i: int) -> list[str]:
    term, definition = rng.choice(TERMS)
    company = rng.choice(COMPANIES)
    question = rng.choice(
        [
            f"哪个金融术语的含义是：{definition}？",
            f"“{definition}”指的是哪个金融术语？",
            f"{company}的分析报告提到：{definition}。这个概念叫什么？",
            f"在{company}的财报里，{definition}，用哪个术语表示？",
        ]
    )
    shown = rng.choice([term, f"“{term}”", f"「{term}」", term + "。"])
    solution = f"<think>{definition}，这是“{term}”的定义。</think><answer>{shown}</answer>"
    return [f"zh-{i:04d}", "名词解释", question, term, solution]


def generate(n: int = 600, seed: int = 0) -> list[list[str]]:
    """n rows (id, type, question, answer, solution), the three types in turn."""
    rng = random.Random(seed)
    makers = (_gain_or_loss, _percent_change, _term)
    return [makers[i % 3](rng, i) for i in range(n)]


def to_csv(rows: list[list[str]]) -> str:
    """The rows as CSV text with the Chinese header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


SHIPPED = Path(__file__).resolve().parent.parent / "profiles" / "samples" / "finance_zh.csv"

if __name__ == "__main__":
    SHIPPED.write_text(to_csv(generate()), encoding="utf-8")
    print(f"wrote {SHIPPED}")
