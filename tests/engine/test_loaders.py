"""Tests for loading user data files and for JSONL reading/writing."""

import json

import pytest

from ftmodel.data.loaders import DataError, load_records, read_jsonl, write_jsonl

FIELDS = {"id", "qtype", "question", "answer", "solution", "split", "key"}


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_good_jsonl(tmp_path):
    p = _write(tmp_path / "q.jsonl", "\n".join([
        json.dumps({"id": "a1", "question": " What is 2+2? ", "answer": 4, "qtype": "math"}),
        "",
        json.dumps({"question": "Is cash liquid?", "answer": "True", "solution": "<think>x</think><answer>True</answer>"}),
    ]) + "\n")
    records = load_records(p)
    assert records == [
        {"id": "a1", "qtype": "math", "question": "What is 2+2?", "answer": "4", "solution": "",
         "split": "", "key": "What is 2+2?"},
        {"id": "q-1", "qtype": "general", "question": "Is cash liquid?", "answer": "True",
         "solution": "<think>x</think><answer>True</answer>", "split": "", "key": "Is cash liquid?"},
    ]


def test_jsonl_custom_field_names(tmp_path):
    p = _write(tmp_path / "c.jsonl", json.dumps({"prompt": "Q?", "target": 1.5, "kind": "k"}) + "\n")
    [r] = load_records(p, question_field="prompt", answer_field="target", qtype_field="kind",
                       default_qtype="unused")
    assert (r["question"], r["answer"], r["qtype"]) == ("Q?", "1.5", "k")


def test_good_csv_with_bom_and_line_numbers(tmp_path):
    p = _write(tmp_path / "q.csv", "\ufeffquestion,answer,qtype\nWhat is 1+1?,2,math\n\"Multi, comma?\",yes,\n")
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
    dd = datasets.DatasetDict({
        "test": datasets.Dataset.from_dict({"question": ["T?"], "answer": ["t"], "id": ["t1"]}),
        "train": datasets.Dataset.from_dict({"question": ["R?"], "answer": ["r"], "id": ["r1"]}),
    })
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
    lines = [{"id": "x", "question": "a", "answer": "1"}, {"id": "y", "question": "b", "answer": "2"},
             {"id": "x", "question": "c", "answer": "3"}]
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
