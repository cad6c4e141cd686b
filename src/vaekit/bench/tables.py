"""The bench report as Markdown tables (what BENCHMARKS.md quotes)."""

from __future__ import annotations

from typing import Any

# Rows of the vaekit part that are not a precision: fp32 on the CPU is the MLP fast path,
# and this row the same run on the autograd path.
LABELS = {"fp32-autograd": "(c) `vaekit train --no-fast-path` (autograd), fp32"}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _f(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{suffix}"


def _spread(summary: dict[str, Any]) -> str:
    return f"{summary['min']:.2f}–{summary['max']:.2f}"


def training_table(report: dict[str, Any]) -> str:
    """One row per pipeline: s/epoch, spread, samples/s, ratios, memory, final loss."""
    results, ratios = report["results"], report.get("ratios", {})
    rows = []
    seed = results.get("seed")
    floors = results.get("floor", {})

    def row(
        name: str, summary: dict[str, Any], ratio_to_seed: float | None, extra: str = ""
    ) -> None:
        floor = floors.get("fp32", {}).get("s_per_epoch")
        rows.append(
            [
                name,
                _f(summary["s_per_epoch"], 3),
                _spread(summary) if summary.get("repetitions", 1) > 1 else "–",
                _f(summary["samples_per_s"], 0),
                _f(ratio_to_seed, 2, "×"),
                _f(summary["s_per_epoch"] / floor if floor else None, 2, "×"),
                _f(summary.get("peak_rss_mib"), 0),
                _f(summary.get("final_loss"), 2) + extra,
            ]
        )

    if seed:
        row("(a) seed notebook pipeline", seed, 1.0)
    for precision in ("fp32", "bf16", "fp16"):
        floor = floors.get(precision)
        if floor:
            name = f"(b) matrix-product floor, {precision}"
            seed_ratio = seed["s_per_epoch"] / floor["s_per_epoch"] if seed else None
            row(name, floor | {"final_loss": None}, seed_ratio)
    plain = results.get("plain")
    if plain:
        row("plain in-memory loop, fp32", plain, ratios.get("plain_speedup_vs_seed"))
    graphed = results.get("graphed")
    if graphed and "s_per_epoch" in graphed:
        row("plain loop as a CUDA graph, fp32", graphed, ratios.get("graphed_speedup_vs_seed"))
    for precision, summary in results.get("vaekit", {}).items():
        if precision == "skipped":
            continue
        ratio = ratios.get(precision, {}).get("speedup_vs_seed")
        test = summary.get("final_test_loss")
        name = LABELS.get(precision, f"(c) `vaekit train`, {precision}")
        row(name, summary, ratio, f" (test {_f(test, 2)})")
    pythae = results.get("pythae")
    if pythae and "s_per_epoch" in pythae:
        row("(d) pythae 0.1.2 TrainingPipeline", pythae, ratios.get("pythae_speedup_vs_seed"), "*")
    header = [
        "pipeline",
        "s/epoch (median)",
        "spread",
        "samples/s",
        "× seed throughput",
        "÷ fp32 floor",
        "peak RSS MiB",
        "train loss after E epochs",
    ]
    return _table(header, rows)


def ratio_table(report: dict[str, Any]) -> str:
    rows = []
    for precision, row in report.get("ratios", {}).items():
        if not isinstance(row, dict):
            continue
        rows.append(
            [
                precision,
                _f(row.get("speedup_vs_seed"), 2, "×"),
                _f(row.get("times_floor"), 2, "×"),
                _f(row.get("times_fp32_floor"), 2, "×"),
                _f(row.get("speedup_vs_pythae"), 2, "×"),
                _f(100 * row["loss_vs_plain"], 2, " %") if "loss_vs_plain" in row else "–",
                _f(100 * row["loss_vs_fp32"], 2, " %") if "loss_vs_fp32" in row else "–",
            ]
        )
    header = [
        "`vaekit train`",
        "speed-up vs seed",
        "÷ own-precision floor",
        "÷ fp32 floor",
        "speed-up vs pythae",
        "loss vs plain loop",
        "loss vs fp32",
    ]
    return _table(header, rows)


def eval_table(report: dict[str, Any]) -> str:
    results = report["results"].get("eval")
    if not results:
        return ""
    rows = []
    for precision in ("fp32", "bf16", "fp16"):
        row = results.get(precision)
        if row:
            rows.append(
                [
                    precision,
                    f"{row['images']:,}",
                    _f(row["seconds"], 2),
                    _f(row["images_x_k_per_s"], 0),
                    _f(row["seconds_for_10000_images"], 0),
                    _f(row["nll"], 2),
                ]
            )
    header = [
        "precision",
        "test images timed",
        "seconds",
        "images × k per s",
        f"10,000 images at k={results['k']} (s, extrapolated)",
        "-log p(x) (nats)",
    ]
    return _table(header, rows)


def scaling_tables(report: dict[str, Any]) -> str:
    scaling = report["results"].get("scaling")
    if not scaling:
        return ""
    out = []
    names = {"batch_size": "batch size", "hidden": "hidden size", "latent": "latent size"}
    for axis, rows in scaling["tables"].items():
        first = rows[0]
        body = [
            [
                str(r[axis]),
                _f(r["s_per_epoch"], 3),
                _f(r["floor_s_per_epoch"], 3),
                _f(r["s_per_epoch"] / r["floor_s_per_epoch"], 2, "×"),
                _f(r["s_per_epoch"] / first["s_per_epoch"], 2, "×"),
                _f(r["gflop_per_epoch"], 0),
                _f(r["gflop_per_s"], 0),
                _f(r["final_loss"], 2),
                _f(r["final_test_loss"], 2),
            ]
            for r in rows
        ]
        header = [
            names[axis],
            "s/epoch",
            "floor s/epoch",
            "÷ floor",
            "cost vs first row",
            "GFLOP/epoch",
            "GFLOP/s",
            f"train loss (epoch {scaling['epochs']})",
            "test loss",
        ]
        out.append(f"**{names[axis]}** (others at the seed's: batch 128, hidden 400, latent 2)\n")
        out.append(_table(header, body) + "\n")
    return "\n".join(out)


def profile_table(report: dict[str, Any]) -> str:
    """The fast step's pieces (`bench.profile`), ms per step and multiples of F."""
    profile = report["results"].get("profile")
    if not profile:
        return ""
    rows = [
        [piece["what"], _f(piece["ms"], 3), _f(piece["times_f"], 3, " F")]
        for piece in profile["pieces"].values()
    ]
    note = f"Medians of {profile['rounds']} interleaved rounds."
    return _table(["piece", "ms per step", "× F"], rows) + "\n\n" + note


def markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    m = report["machine"]
    options = report["options"]
    parts = [
        "## Machine",
        "",
        f"- CPU: {m['cpu']} ({m['cores']} cores; AVX-512 bf16: {m['avx512_bf16']}; "
        f"AMX: {m['amx']})",
        f"- GPU: {m['cuda'] or 'none'}",
        f"- torch {m['torch']}, {m['threads']} threads (interop {m['interop_threads']}), "
        f"Python {m['python']}",
        f"- date {m['date']}; load average at start {_loads(m['load_average_at_start'])}, "
        f"at end {_loads(m.get('load_average_at_end'))}",
        f"- {options['epochs']} epochs per run (the first is warm-up), "
        f"{options['repetitions']} repetitions, "
        f"{options['limit'] or 60000} training images",
        "",
        "## Training, seed configuration",
        "",
        training_table(report),
        "",
        ratio_table(report),
        "",
    ]
    evaluation = eval_table(report)
    if evaluation:
        parts += ["## Evaluation: importance-weighted log-likelihood", "", evaluation, ""]
    profile = profile_table(report)
    if profile:
        parts += ["## What is left of the fast step (profile)", "", profile, ""]
    scaling = scaling_tables(report)
    if scaling:
        parts += ["## Scaling", "", scaling]
    loads = m.get("load_by_part")
    if loads:
        rows = [[name, f"{a:.2f}", f"{b:.2f}"] for name, (a, b) in loads.items()]
        parts += [
            "1-minute load average before and after each part (2 cores: a measured process",
            "with 2 threads alone brings it to about 2; well above that, other jobs shared the",
            "machine and that part's times are inflated):",
            "",
            _table(["part", "before", "after"], rows),
            "",
        ]
    notes = _notes(report)
    if notes:
        parts += ["## Notes", "", *notes, ""]
    return "\n".join(parts)


def _loads(loads: Any) -> str:
    return "–" if not loads else " ".join(f"{x:.2f}" for x in loads)


def _notes(report: dict[str, Any]) -> list[str]:
    notes = [f"- {name}: failed ({why})" for name, why in report.get("failures", {}).items()]
    results = report["results"]
    for name in ("floor", "vaekit", "eval"):
        for precision, why in results.get(name, {}).get("skipped", {}).items():
            notes.append(f"- {name} {precision}: skipped ({why})")
    graphed = results.get("graphed", {})
    if isinstance(graphed.get("skipped"), str):
        notes.append(f"- plain loop as a CUDA graph: skipped ({graphed['skipped']})")
    pythae = results.get("pythae", {})
    if isinstance(pythae.get("skipped"), str):
        notes.append(f"- {pythae['skipped']}")
    elif pythae:
        notes.append(f"- \\* {pythae['loss_note']}")
    return notes
