"""The console's run data: bounded series, run summaries, results, hints and nvidia-smi parsing (no Textual)."""

import json
import tracemalloc

from ftmodel.reports import result_tables as read_results
from tests.tui.fake_runs import dead_pid, grpo_rows, make_run
from tui.gpu import parse_nvidia_smi
from tui.rundata.follower import RunFollower
from tui.rundata.health import health_hints
from tui.rundata.series import Series, SeriesStore, columns_from_rows
from tui.rundata.summary import scan_workspace, stage_rows


def test_series_stays_bounded_and_spread_over_100k_steps():
    series = Series(capacity=1000)
    for start in range(0, 100_000, 777):  # uneven chunks, as the reader delivers them
        xs = list(range(start, min(start + 777, 100_000)))
        series.extend(xs, [float(x) for x in xs])
    assert len(series) <= 1000
    assert series.count == 100_000
    assert series.xs[0] == 0 and series.xs[-1] >= 100_000 - 2 * series.stride
    assert all(x % series.stride == 0 for x in series.xs)  # evenly spread: every stride-th step
    xs, ys = series.points(160)
    assert len(xs) <= 162 and xs[-1] == 99_999  # downsampled for the chart, ending at the latest point


def test_store_memory_is_bounded_for_100k_rows():
    rows = [
        {
            "step": i,
            "time": float(i),
            "loss": 1.0 / (i + 1),
            "reward": 0.5,
            "kl_divergence": 0.01,
            "learning_rate": 1e-4,
            "grad_norm": 0.2,
        }
        for i in range(100_000)
    ]
    tracemalloc.start()
    store = SeriesStore(capacity=2048)
    for k in range(0, len(rows), 5000):
        store.add_columns(columns_from_rows(rows[k : k + 5000]), 5000)
        del k
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert store.rows == 100_000
    assert all(len(s) <= 2048 for s in store.series.values())
    assert current < 2_000_000  # six bounded series, not 100k rows


def test_long_history_preview_has_the_exact_points_then_the_exact_pass_adds_sparse_metrics(tmp_path):
    rows = [{"step": i, "loss": 1.0 / (i + 1), "reward": i % 7} for i in range(50_001)]
    for i in range(0, 50_001, 1000):
        rows[i]["eval_loss"] = float(i)  # logged on only some rows: only the exact pass gets it right
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    exact = SeriesStore(capacity=512)
    exact.add_columns(columns_from_rows(rows), len(rows))

    follower = RunFollower(tmp_path, chunk_bytes=100_000)  # many chunks, as for a big file
    shown: list[tuple[SeriesStore, bool]] = []
    follower.read_history(lambda store, is_exact: shown.append((store, is_exact)), lambda: False, capacity=512)
    (preview, p_exact), (full, f_exact) = shown
    assert (p_exact, f_exact) == (False, True)
    assert exact.get("loss").stride == 128
    assert preview.rows == full.rows == 50_001
    for name in ("loss", "reward"):  # logged on every row: the preview draws the very same picture
        p, f, e = preview.get(name), full.get(name), exact.get(name)
        assert p.last == f.last == e.last == (50_000, rows[-1][name])
        for width in (80, 200, 400, 1000):  # what a chart of that width draws
            assert p.points(width) == f.points(width) == e.points(width)
    assert full.get("eval_loss").xs == exact.get("eval_loss").xs == [float(i) for i in range(0, 50_001, 1000)]
    assert follower.caught_up()
    # Rows written afterwards arrive through the ordinary reader.
    with open(path, "a") as fh:
        fh.write(json.dumps({"step": 50_001, "loss": 0.5}) + "\n")
    assert [r["step"] for r in follower.read_metrics()] == [50_001]


def test_history_reader_stops_when_cancelled(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "loss": 1.0}) + "\n" for i in range(5000)))
    shown = []
    RunFollower(tmp_path, chunk_bytes=10_000).read_history(
        lambda store, is_exact: shown.append(is_exact), lambda: bool(shown)
    )  # cancelled after the preview
    assert shown == [False]  # the preview only: the exact pass gave up


def test_columns_keep_numbers_and_non_finite_values_and_leave_out_the_rest():
    nan, inf = float("nan"), float("inf")
    rows = [
        {"step": 1, "loss": 2.0, "note": "x", "ok": True, "l": [1], "d": {"a": 1}, "z": None, "big": 10**400},
        {"step": 2, "loss": nan, "grad_norm": inf},
        {"step": "3", "loss": 9.0},  # a step that is not a number: no place on a chart
        {"step": True, "loss": 9.0},
        {"step": nan, "loss": 9.0},
        {"step": 1e308, "loss": 9.0},
        {"step": 4, "loss": -inf, "grad_norm": 1e308},
    ]
    cols = columns_from_rows(rows)
    assert set(cols) == {"loss", "grad_norm"}
    assert cols["loss"][0] == [1, 2, 4] and cols["loss"][1][0] == 2.0 and cols["loss"][1][2] == -inf
    assert cols["loss"][1][1] != cols["loss"][1][1]  # the NaN itself, for the Series to note
    assert cols["grad_norm"] == ([2, 4], [inf, 1e308])


def test_grpo_health_hints():
    def hints(rows, beta=0.04):
        store = SeriesStore()
        store.add_columns(columns_from_rows(rows), len(rows))
        return health_hints("grpo", store, beta)

    assert hints(grpo_rows(10)) == []
    assert "no learning signal: most groups have identical rewards" in hints(grpo_rows(10, zero_std=0.9))

    def with_accuracy(rows, value):
        return [{**r, "accuracy_reward": value} for r in rows]

    assert hints(with_accuracy(grpo_rows(10, zero_std=0.9), 0.95)) == [
        "little signal left: most groups are all right (these prompts are learned)"
    ]
    assert hints(with_accuracy(grpo_rows(10, zero_std=0.9), 0.0)) == [
        "no learning signal: most groups are all wrong (SFT more, or easier prompts)"
    ]
    assert "many completions clipped: raise grpo.max_completion_length" in hints(grpo_rows(10, clipped=0.5))
    assert "no KL: grpo.beta is 0" in hints(grpo_rows(10, kl=False), beta=0.0)
    assert hints(grpo_rows(10, kl=False), beta=0.04) == []


def test_read_results_eval_and_ablation(tmp_path):
    run = make_run(
        tmp_path,
        "evaluate-20260101-000000-0001",
        "evaluate",
        "finished",
        files={
            "eval_grpo_20260101.json": {
                "total": 200,
                "format_accuracy": 1.0,
                "answer_accuracy": 0.17,
                "majority_baseline": 0.23,
                "per_qtype": {
                    "tf": {"total": 50, "format_accuracy": 1.0, "answer_accuracy": 0.5, "majority_baseline": 0.52}
                },
            },
            "ablation_summary_x.json": {
                "table": {"columns": ["variant", "format_accuracy"], "rows": [["base", 0.0], ["sft_only", 1.0]]}
            },
        },
    )
    tables = {title: (cols, rows) for title, cols, rows in read_results(run)}
    cols, rows = tables["eval_grpo_20260101.json"]
    assert rows[0] == ["all", "200", "1.000", "0.170", "0.230"]
    assert rows[1] == ["tf", "50", "1.000", "0.500", "0.520"]
    assert tables["ablation_summary_x.json"] == (
        ["variant", "format_accuracy"],
        [["base", "0.000"], ["sft_only", "1.000"]],
    )


def test_scan_marks_dead_running_runs_lost(tmp_path):
    make_run(tmp_path, "sft-20260101-000000-0001", "sft", "finished")
    make_run(tmp_path, "sft-20260101-000001-0002", "sft", "running", pid=dead_pid(), proc_start=1)
    runs = scan_workspace(tmp_path)
    assert [r.status for r in runs] == ["finished", "lost"]
    rows = {row.stage: row for row in stage_rows(("prepare", "sft"), runs)}
    assert rows["sft"].latest.status == "lost" and rows["prepare"].latest is None


def test_parse_nvidia_smi():
    gpus = parse_nvidia_smi("0, 87, 40000, 81559\n1, [N/A], 1, 2\n")
    assert len(gpus) == 1 and gpus[0].util == 87 and gpus[0].mem_total == 81559
