"""What a user's data looks like to the pipeline, before anything trains: which column feeds each
field, which columns nothing reads, questions per type and split, token lengths per split under the
configured model's tokenizer, and what `model.max_seq_length` would cut. `prepare` writes this into
its report and log; `ftmodel data check FILE` prints it without touching the workspace."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ftmodel.data.lengths import LengthStats, length_stats, sample_lengths, suggested_limit, truncation_warning
from ftmodel.textio import format_table


@dataclass
class DataReport:
    """The facts `ftmodel data check` prints and `prepare` records."""

    source: str
    found: dict[str, str] = field(default_factory=dict)  # field -> column (user data only)
    missing: dict[str, str] = field(default_factory=dict)  # optional field -> the column it looked for
    unmapped: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> qtype -> n
    lengths: dict[str, dict[str, LengthStats]] = field(default_factory=dict)  # split -> prompt/sample -> stats
    warnings: list[str] = field(default_factory=list)
    tokenizer: str = ""

    def as_dict(self) -> dict:
        """The report as plain JSON-able data (stored in prepare_report.json)."""
        return {
            "source": self.source,
            "columns": self.found,
            "missing_columns": self.missing,
            "unmapped_columns": self.unmapped,
            "per_qtype": self.counts,
            "tokenizer": self.tokenizer,
            "token_lengths": {split: {k: v.as_dict() for k, v in d.items()} for split, d in self.lengths.items()},
            "warnings": self.warnings,
        }


def build_report(
    cfg, train: list[dict], evals: list[dict], tokenizer, *, loaded=None, tokenizer_name: str = ""
) -> DataReport:
    """Measure the split records against the config (loaded: the loader's LoadedData for user files)."""
    report = DataReport(source=cfg.data.source, tokenizer=tokenizer_name)
    if loaded is not None:
        report.found = dict(loaded.found)
        wanted = {
            "id": cfg.data.id_field,
            "qtype": cfg.data.qtype_field,
            "solution": cfg.data.solution_field,
            "choices": cfg.data.choices_field,
        }
        report.missing = {name: col for name, col in wanted.items() if name not in loaded.found}
        report.unmapped = list(loaded.unmapped)
        if report.unmapped:
            report.warnings.append(
                f"columns no field reads: {', '.join(report.unmapped)} (map them with "
                "data.*_field, keep them with data.metadata_fields)"
            )
        if "solution" in report.missing and cfg.distill.backend == "builtin":
            report.warnings.append(
                f'distill.backend = "builtin" copies worked solutions from the data, but no '
                f"column {cfg.data.solution_field!r} was found: set data.solution_field to "
                "the column that holds them, or use a teacher (distill.backend = openai|hf)"
            )
    report.counts = {
        "train": dict(sorted(Counter(r["qtype"] for r in train).items())),
        "eval": dict(sorted(Counter(r["qtype"] for r in evals).items())),
    }
    limit = cfg.model.max_seq_length
    for split, records in (("train", train), ("eval", evals)):
        if not records:
            continue
        prompts, samples = sample_lengths(tokenizer, records, cfg.data.system_prompt)
        report.lengths[split] = {"prompt": length_stats(prompts, limit), "sample": length_stats(samples, limit)}
    train_stats = report.lengths.get("train", {}).get("sample")
    if train_stats:
        warning = truncation_warning(train_stats, "training samples")
        if warning:
            report.warnings.append(warning)
        with_solution = [r for r in train if r.get("solution")]
        if with_solution:
            completions = [s - p for p, s in zip(*sample_lengths(tokenizer, with_solution, cfg.data.system_prompt))]
            stats = length_stats(completions, cfg.eval.max_new_tokens)
            if stats.over:
                report.warnings.append(
                    f"{stats.over} of {stats.count} worked solutions are longer than eval.max_new_tokens = "
                    f"{stats.limit} tokens (p90 {stats.p90}, max {stats.max}): evaluation would cut a model that "
                    f"answers like them before its answer; consider eval.max_new_tokens = {suggested_limit(stats)}"
                )
    for qtype in cfg.answers.regex_qtypes:
        for r in train + evals:
            if r["qtype"] == qtype:
                try:
                    re.compile(r["answer"])
                except re.error as e:
                    report.warnings.append(
                        f"record {r['id']!r}: answer {r['answer']!r} of regex qtype {qtype!r} "
                        f"is not a valid regular expression ({e})"
                    )
    return report


def render(report: DataReport) -> str:
    """The report as aligned text tables (terminal cells, so Chinese qtypes line up)."""
    out = [f"source: {report.source}"]
    if report.found or report.missing:
        rows = [[name, col, "found"] for name, col in report.found.items()]
        rows += [[name, col, "not in the file (optional)"] for name, col in report.missing.items()]
        out += ["", format_table(["field", "column", ""], rows)]
    if report.unmapped:
        out += ["", f"unmapped columns: {', '.join(report.unmapped)}"]
    qtypes = sorted(set(report.counts.get("train", {})) | set(report.counts.get("eval", {})))
    rows = [[q, report.counts["train"].get(q, 0), report.counts["eval"].get(q, 0)] for q in qtypes]
    rows.append(["total", sum(report.counts["train"].values()), sum(report.counts["eval"].values())])
    out += ["", format_table(["qtype", "train", "eval"], rows)]
    if report.lengths:
        rows = []
        for split, by_kind in report.lengths.items():
            for kind, s in by_kind.items():
                rows.append(
                    [f"{split} {kind}", s.count, s.p50, s.p90, s.p99, s.max, f"{s.over}" if kind == "sample" else ""]
                )
        limit = next(iter(next(iter(report.lengths.values())).values())).limit
        out += [
            "",
            f"tokens ({report.tokenizer or 'configured tokenizer'}; model.max_seq_length = {limit})",
            format_table(["", "n", "p50", "p90", "p99", "max", f"> {limit}"], rows),
        ]
    for warning in report.warnings:
        out += ["", f"WARNING: {warning}"]
    return "\n".join(out)
