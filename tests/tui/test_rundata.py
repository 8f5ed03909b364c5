"""The console's run data: bounded series, run summaries, results, hints and nvidia-smi parsing (no Textual)."""

import json
import tracemalloc

from ftmodel.reports import result_tables as read_results
from tests.tui.fake_runs import dead_pid, make_run
from tui.rundata.follower import RunFollower
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


def test_series_notes_where_values_were_not_finite_and_draws_only_what_it_can():
    nan, inf = float("nan"), float("inf")
    series = Series(capacity=8)
    series.extend([1, 2, 3], [1.0, 2.0, 3.0])
    assert series.notes == {}
    series.extend(list(range(4, 41)), [nan] * 20 + [inf] * 10 + [1e308] + [-inf] + [2.0] * 5)
    notes = {kind: (n.first, n.last, n.count) for kind, n in series.notes.items()}
    assert notes == {"nan": (4, 23, 20), "inf": (24, 33, 10), "huge": (34, 34, 1), "-inf": (35, 35, 1)}
    assert series.count == 40 and len(series) <= 8  # bounded as always: the notes saw every point
    xs, ys = series.points(100)
    assert all(y == y and abs(y) <= 1e15 for y in ys)  # no NaN, no inf, nothing beyond the limit
    assert xs[-1] == 40 and ys[-1] == 2.0  # still ends at the latest point
    assert series.recent(100) and all(y == y and abs(y) != inf for y in series.recent(100))


def test_series_clamps_absurd_values_and_a_chart_of_them_draws():
    series = Series()
    series.extend([1, 2, 3], [1.0, 1e308, -1e300])
    assert series.points(10) == ([1, 2, 3], [1.0, 1e15, -1e15])
    assert set(series.notes) == {"huge"} and series.notes["huge"].count == 2


def test_steps_going_backwards_or_repeating_keep_the_series_and_its_sampling_whole():
    series = Series(capacity=16)
    steps = [*range(1, 51), *range(20, 71), 70, 70]  # a resumed run that restarted at step 20, then repeats
    series.extend(steps, [float(i) for i in range(len(steps))])
    assert series.count == len(steps) and len(series) <= 16
    assert series.last == (70, float(len(steps) - 1))
    xs, ys = series.points(8)
    assert xs[-1] == 70 and ys[-1] == float(len(steps) - 1) and len(xs) <= 9


def test_a_history_read_from_an_old_file_with_bare_nan_tokens_notes_where_the_loss_went_nan(tmp_path):
    rows = [{"step": i, "loss": float("nan") if i >= 10 else 1.0 / i, "grad_norm": 1.0} for i in range(1, 41)]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # Python's bare NaN tokens
    shown = []
    RunFollower(tmp_path, chunk_bytes=200).read_history(lambda store, exact: shown.append(store), lambda: False)
    for store in shown:
        ((metric, kind, note),) = store.notes()
        assert (metric, kind, note.first, note.count) == ("loss", "nan", 10, 31)
