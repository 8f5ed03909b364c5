"""Tests for loading user data files and for JSONL reading/writing."""

import json

import pytest

from ftmodel.data.loaders import DataError, load_records, read_jsonl, write_jsonl

FIELDS = {"id", "qtype", "question", "answer", "solution", "split", "key"}


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_good_jsonl(tmp_path):
    p = _write(
        tmp_path / "q.jsonl",
        "\n".join(
            [
                json.dumps({"id": "a1", "question": " What is 2+2? ", "answer": 4, "qtype": "math"}),
                "",
                json.dumps(
                    {
                        "question": "Is cash liquid?",
                        "answer": "True",
                        "solution": "<think>x</think><answer>True</answer>",
                    }
                ),
            ]
        )
        + "\n",
    )
    records = load_records(p)
    assert records == [
        {
            "id": "a1",
            "qtype": "math",
            "question": "What is 2+2?",
            "answer": "4",
            "solution": "",
            "split": "",
            "key": "What is 2+2?",
        },
        {
            "id": "q-1",
            "qtype": "general",
            "question": "Is cash liquid?",
            "answer": "True",
            "solution": "<think>x</think><answer>True</answer>",
            "split": "",
            "key": "Is cash liquid?",
        },
    ]


def test_jsonl_custom_field_names(tmp_path):
    p = _write(tmp_path / "c.jsonl", json.dumps({"prompt": "Q?", "target": 1.5, "kind": "k"}) + "\n")
    [r] = load_records(p, question_field="prompt", answer_field="target", qtype_field="kind", default_qtype="unused")
    assert (r["question"], r["answer"], r["qtype"]) == ("Q?", "1.5", "k")


def test_good_csv_with_bom_and_line_numbers(tmp_path):
    p = _write(tmp_path / "q.csv", '\ufeffquestion,answer,qtype\nWhat is 1+1?,2,math\n"Multi, comma?",yes,\n')
    records = load_records(p)
    assert [r["question"] for r in records] == ["What is 1+1?", "Multi, comma?"]
    assert [r["qtype"] for r in records] == ["math", "general"]
    assert [r["id"] for r in records] == ["q-0", "q-1"]
    bad = _write(tmp_path / "bad.csv", "question,answer\nok?,1\nno answer?,\n")
    with pytest.raises(DataError, match=r"bad\.csv:3: empty field 'answer'"):
        load_records(bad)


def test_hf_dataset_dir_and_datasetdict(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"question": ["A?", "B?"], "answer": [1, 2]})
    ds.save_to_disk(str(tmp_path / "plain"))
    records = load_records(tmp_path / "plain")
    assert [(r["question"], r["answer"], r["split"]) for r in records] == [("A?", "1", ""), ("B?", "2", "")]
    dd = datasets.DatasetDict(
        {
            "test": datasets.Dataset.from_dict({"question": ["T?"], "answer": ["t"], "id": ["t1"]}),
            "train": datasets.Dataset.from_dict({"question": ["R?"], "answer": ["r"], "id": ["r1"]}),
        }
    )
    dd.save_to_disk(str(tmp_path / "dict"))
    records = load_records(tmp_path / "dict")
    assert [(r["id"], r["split"]) for r in records] == [("r1", "train"), ("t1", "eval")]


def test_bad_json_reports_line(tmp_path):
    p = _write(tmp_path / "q.jsonl", '{"question": "a", "answer": "1"}\n\n{"question": "b", "answer": \n')
    with pytest.raises(DataError, match=r"q\.jsonl:3: invalid JSON"):
        load_records(p)
    p2 = _write(tmp_path / "arr.jsonl", "[1, 2]\n")
    with pytest.raises(DataError, match=r"arr\.jsonl:1: expected a JSON object"):
        load_records(p2)


def test_missing_and_bad_fields(tmp_path):
    p = _write(tmp_path / "q.jsonl", '{"question": "a", "answer": "1"}\n{"question": "b"}\n')
    with pytest.raises(DataError, match=r"q\.jsonl:2: missing field 'answer'"):
        load_records(p)
    p = _write(tmp_path / "e.jsonl", '{"question": "  ", "answer": "1"}\n')
    with pytest.raises(DataError, match=r"e\.jsonl:1: empty field 'question'"):
        load_records(p)
    p = _write(tmp_path / "l.jsonl", '{"question": "q", "answer": [1]}\n')
    with pytest.raises(DataError, match=r"l\.jsonl:1: field 'answer' must be a string or a number"):
        load_records(p)


def test_missing_file_empty_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        load_records(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match=r"empty\.jsonl: no records"):
        load_records(_write(tmp_path / "empty.jsonl", "\n\n"))
    with pytest.raises(DataError, match=r"empty\.csv: no records"):
        load_records(_write(tmp_path / "empty.csv", ""))
    with pytest.raises(DataError, match="unsupported data format"):
        load_records(_write(tmp_path / "q.txt", "hello"))
    with pytest.raises(DataError, match="not a saved Hugging Face dataset"):
        (tmp_path / "notds").mkdir()
        load_records(tmp_path / "notds")


def test_duplicate_id_names_both_lines(tmp_path):
    lines = [
        {"id": "x", "question": "a", "answer": "1"},
        {"id": "y", "question": "b", "answer": "2"},
        {"id": "x", "question": "c", "answer": "3"},
    ]
    p = _write(tmp_path / "d.jsonl", "\n".join(json.dumps(obj) for obj in lines) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:3: duplicate id 'x' \(first at .*d\.jsonl:1\)"):
        load_records(p)


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


def test_write_and_read_jsonl_roundtrip_atomically(tmp_path):
    records = [{"id": "1", "question": "Ünïcode?", "answer": "€5"}, {"id": "2", "n": 3}]
    target = tmp_path / "sub" / "out.jsonl"
    write_jsonl(target, records)
    assert read_jsonl(target) == records
    write_jsonl(target, records[:1])
    assert read_jsonl(target) == records[:1]
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.jsonl"]  # no temp files left


def test_write_jsonl_failure_keeps_old_file(tmp_path):
    target = tmp_path / "out.jsonl"
    write_jsonl(target, [{"a": 1}])
    with pytest.raises(TypeError):
        write_jsonl(target, [{"a": 2}, {"b": object()}])
    assert read_jsonl(target) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_read_jsonl_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match=r"x\.jsonl:2: invalid JSON"):
        read_jsonl(_write(tmp_path / "x.jsonl", '{"a": 1}\nnot json\n'))


def test_every_field_mapped_from_chinese_columns_with_choices_and_metadata(tmp_path):
    from ftmodel.data.loaders import ColumnMap, load_data

    p = _write(
        tmp_path / "zh.csv",
        "编号,类型,问题,答案,解析,选项,来源,备注\n"
        "q1,名词解释,哪个术语指股价与每股收益之比？,市盈率,<think>定义</think><answer>市盈率</answer>,"
        '"[""市盈率"",""市净率""]",年报,x\n',
    )
    cols = ColumnMap(
        id="编号", qtype="类型", question="问题", answer="答案", solution="解析", choices="选项", metadata=("来源",)
    )
    loaded = load_data(p, cols)
    [r] = loaded.records
    assert r["id"] == "q1" and r["qtype"] == "名词解释" and r["answer"] == "市盈率"
    assert r["solution"].startswith("<think>") and r["question"].endswith("\nA. 市盈率\nB. 市净率")
    assert r["metadata"] == {"来源": "年报"}
    assert loaded.found == {
        "id": "编号",
        "qtype": "类型",
        "question": "问题",
        "answer": "答案",
        "solution": "解析",
        "choices": "选项",
    }
    assert loaded.unmapped == ["备注"]  # reported, never silently dropped
    with pytest.raises(DataError, match="metadata_fields names column '作者'"):
        load_data(p, ColumnMap(question="问题", answer="答案", metadata=("作者",)))


def test_parquet_is_read_row_by_row(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from ftmodel.data.loaders import ColumnMap, load_data

    pq.write_table(pa.table({"问题": ["一？", "二？"], "答案": ["1", "2"]}), tmp_path / "d.parquet")
    loaded = load_data(tmp_path / "d.parquet", ColumnMap(question="问题", answer="答案"))
    assert [r["question"] for r in loaded.records] == ["一？", "二？"]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="bad.parquet: not a readable Parquet file"):
        load_data(tmp_path / "bad.parquet")


def test_jsonl_with_byte_order_mark_and_u2028_in_text(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(
        "\ufeff".encode() + json.dumps({"question": "a\u2028b", "answer": "1"}, ensure_ascii=False).encode() + b"\n"
    )
    [r] = load_records(p)
    assert r["question"] == "a\u2028b"


def test_non_utf8_bytes_name_the_line_and_column(tmp_path):
    for name, text in (
        ("g.jsonl", b'{"question": "ok", "answer": "1"}\n{"question": "\xff", "answer": "2"}\n'),
        ("g.csv", b"question,answer\nok,1\nbad\xe9,2\n"),
    ):
        p = tmp_path / name
        p.write_bytes(text)
        with pytest.raises(DataError, match=rf"{name}:\d: not UTF-8 text \(byte 0x(ff|e9) at column \d+\)") as e:
            load_records(p)
        assert f"{name}:2" in str(e.value) or f"{name}:3" in str(e.value)
        assert str(e.value).startswith(str(p) + (":2" if name.endswith("jsonl") else ":3"))


def test_csv_extra_columns_and_unterminated_quote_blame_the_right_line(tmp_path):
    extra = _write(tmp_path / "extra.csv", "question,answer\nok?,1\ntoo,many,values\n")
    with pytest.raises(DataError, match=r"extra\.csv:3: 3 values but the header has 2 columns"):
        load_records(extra)
    quote = _write(tmp_path / "quote.csv", 'question,answer\nok?,1\n"bad,2\nfine?,3\nmore?,4\n')
    with pytest.raises(DataError, match=r"quote\.csv:3: .*a quoted field opens on this line and is not closed"):
        load_records(quote)
    multi = _write(tmp_path / "multi.csv", 'question,answer\n"two\nlines?",1\nnext?,2\n')
    assert [r["question"] for r in load_records(multi)] == ["two\nlines?", "next?"]
    dupe = _write(tmp_path / "dupe.csv", "question,answer,answer\nq,1,2\n")
    with pytest.raises(DataError, match=r"dupe\.csv:1: column 'answer' appears twice"):
        load_records(dupe)


def test_split_keeps_a_datasetdicts_own_split(tmp_path):
    from ftmodel.data.split import split_records

    records = [{"question": f"q{i}", "split": "eval" if i < 3 else "train"} for i in range(10)]
    train, evals = split_records(records, 0.5, 0)
    assert [r["question"] for r in evals] == ["q0", "q1", "q2"] and len(train) == 7
