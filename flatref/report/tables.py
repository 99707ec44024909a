"""The markdown of Table 1 in numbers: fitted exponents next to Table 1's, the speed-up, per-size fits,
Definition 3 after Theorem 2's finish."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from ..experiments.stats import NEAR, Fit, Speedup, per_size_fits
from ..experiments.sweeps import CONSTANTS, DELTA, FIXED, GATE, Grid
from ..theory import table1_exponents


def _signed(x: float) -> str:
    """``x`` to two decimals with its sign, and no ``−0.00``."""
    return f"{round(x, 2) + 0.0:+.2f}"


def format_exponent(value) -> str:
    """A fitted exponent ``(estimate, half-width)`` to two decimals: ``"—"`` for ``None``, no ``±`` without a width.

    Examples:
        >>> format_exponent((-2.004, 0.1)), format_exponent((-0.001, None)), format_exponent(None)   # no −0.00
        ('-2.00 ± 0.10', '+0.00', '—')
    """
    if value is None:
        return "—"
    estimate, half = value
    return _signed(estimate) if half is None else f"{_signed(estimate)} ± {half:.2f}"


_PARAMETERS = {"theory": "theorems' schedules", "fixed": "equal fixed η′, ρ"}
_EVENTS = {"metric": "metric at Φ ≤ √ε", "half": "trace gap halved"}


def markdown(grid: Grid, rows: list, fitted: list[Fit], ratio: Speedup) -> str:
    """The fitted exponents next to Table 1's, the RS/SA speed-up per ``d``, the per-size exponents
    and Definition 3 after Theorem 2's finish, as markdown.

    Examples:
        >>> import math
        >>> from flatref.experiments.stats import fits, speedup
        >>> from flatref.experiments.sweeps import Row
        >>> rows = [Row("network", d, 0, regime, m, e, 0, 1.0, 10 * e, 2 * math.sqrt(e), math.inf, round(e**-3), e / 2,
        ...             0, True, 100 * d if m == "RS" else 100, 0, 0, "reached", 1.0, 0.5, 1.0, 0.1)
        ...         for d in (16, 32, 64) for regime in ("theory", "fixed") for m in ("RS", "SA")
        ...         for e in (0.1, 0.05, 0.025)]                 # ε⁻³ steps to the metric; RS halves in d times SA's
        >>> text = markdown(Grid((16, 32, 64), (0.1, 0.05, 0.025), (0.1,), 1, 1000), rows, fits(rows), speedup(rows))
        >>> "ratio ∝ d^(+1.00 ± 0.00)" in text, "| 64 | 6,400 | 100 | 64.0 | 1.00 |" in text
        (True, True)
        >>> [line.split(" | ")[5:9] for line in text.splitlines() if line.startswith("| network | theorems'")][0]
        ['-3.00 ± 0.00', '0.00 (d = 64)', '-2.00', '-3']
    """
    lines = [
        "# Table 1 in numbers",
        "",
        "Regenerate with `python -m flatref rates` (module `flatref.report.jobs`). "
        "Steps from the sharp minimum until the",
        "event, median over seeds, one cell per problem instance and `(d, ε)`. Exponents of `steps ∝ ε^a d^b` by",
        "least squares on the logs of the cells' medians: `a` within instances, its 95% interval clustered by",
        "instance; `b` across the instances' levels, so the spread between instances is in its 95% interval.",
        "*Leading order*: the ε exponent of `1/(η′ρ²)`, the",
        "per-step rate of Lemmas 2 and 4. *Cells*: fitted / set aside because the start's metric is within",
        f"{NEAR:g}× the threshold √ε / already met at the start / not reached in {grid.max_steps:,} steps by most",
        "seeds. *Left out*: the largest change of the exponent when one size or one instance is left out",
        "and the rest refitted, and which.",
        "",
        "| problem | parameters | method | steps until | cells | ε exponent | left out | leading order "
        "| Table 1 | d exponent | left out | Table 1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in fitted:
        if f.exponents:  # else nothing varies over the cells (halving at fixed η′, ρ on Example 1): see the CSV
            lines.append(_fit_row(f))
    lines += [
        "",
        "## RS against SA at equal η′, ρ (network, steps until the trace gap halves)",
        "",
        "Lemma 4 against Lemma 2 predicts a ratio of `d`; fitted to each instance's ratio: "
        f"ratio ∝ d^({format_exponent(ratio.exponent)}).",
        "",
        "| d | RS | SA | RS / SA | (RS / SA) / d |",
        "|---|---|---|---|---|",
    ]
    for d, rs, sa, r in zip(ratio.dims, ratio.rs, ratio.sa, ratio.ratio):
        lines.append(f"| {d} | {rs:,.0f} | {sa:,.0f} | {r:.1f} | {r / d:.2f} |")
    lines += ["", *_per_size(rows), "", *_starts(grid, rows), "", *_definition3(rows), "", *_branches(grid), "",
              *_grid_text(grid, rows)]  # fmt: skip
    return "\n".join(lines)


def _fit_row(f: Fit) -> str:
    """One row of the main table."""
    table_eps, table_d = ("—", "—") if f.table1 is None else (f"{f.table1[0]:g}", f"{f.table1[1] + 0.0:g}")
    if "d" not in f.exponents:
        table_d = "—"
    leading = "—" if f.leading_order is None else _signed(f.leading_order)

    def left_out(name):
        change = f.left_out.get(name)
        return "—" if change is None else f"{change[0]:.2f} ({change[1]})"

    return (f"| {f.problem} | {_PARAMETERS[f.regime]} | {f.method} | {_EVENTS[f.event]} "
            f"| {f.used} / {f.near} / {f.at_start} / {f.censored} | {format_exponent(f.exponents.get('eps'))} "
            f"| {left_out('eps')} | {leading} | {table_eps} | {format_exponent(f.exponents.get('d'))} "
            f"| {left_out('d')} | {table_d} |")  # fmt: skip


def _per_size(rows: list) -> list[str]:
    """The ε exponent of the metric event fitted at each network size alone (within its instances, no
    ``d`` term); "—" where fewer than 3 cells were fitted (no confidence interval)."""
    columns = [(regime, method) for regime in ("theory", "fixed") for method in ("RS", "SA")]
    fitted = per_size_fits(rows)
    lines = [
        "## The metric event's ε exponent at each network size",
        "",
        "Fitted at one `d` at a time, within its instances (\"—\": fewer than 3 cells fitted).",
        "",
        "| d | " + " | ".join(f"{method}, {_PARAMETERS[regime]}" for regime, method in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for d in sorted({d for d, _, _ in fitted}):
        values = [fitted[d, r, m].exponents.get("eps") if (d, r, m) in fitted else None for r, m in columns]
        values = [e if e is not None and e[1] is not None else None for e in values]
        lines.append(f"| {d} | " + " | ".join(format_exponent(e) for e in values) + " |")
    return lines


def _starts(grid: Grid, rows: list) -> list[str]:
    """Per network size: the metric at the sharp start over the instances, and the thresholds it clears by ``NEAR``."""
    starts = defaultdict(dict)
    for row in rows:
        if row.problem == "network":
            starts[row.dim][row.instance] = row.metric_start
    lines = [
        "## The start's metric at each network size",
        "",
        f"The metric at the sharp start, over the instances, against the thresholds √ε ∈ "
        f"[{math.sqrt(min(grid.network_eps)):.3g}, {math.sqrt(max(grid.network_eps)):.3g}]. A cell is fitted",
        f"only where the start exceeds {NEAR:g}√ε, that is for ε below (start / {NEAR:g})².",
        "",
        "| d | start metric (smallest – largest instance) | ε below which every instance's cells are fitted |",
        "|---|---|---|",
    ]
    for d in sorted(starts):
        low, high = min(starts[d].values()), max(starts[d].values())
        lines.append(f"| {d} | {low:.3g} – {high:.3g} | {(low / NEAR) ** 2:.3g} |")
    return lines


def _definition3(rows: list) -> list[str]:
    """Definition 3 at the counted step and after Theorem 2's gradient-descent finish, per group."""
    groups = defaultdict(list)
    for row in rows:
        if row.steps_to_metric:  # reached after the start
            groups[row.problem, row.regime, row.method].append(row)
    lines = [
        "## Definition 3 at the counted step and after Theorem 2's finish",
        "",
        "Runs that reached the metric event after the start. At the counted step `x_t` the metric at `Φ(x_t)` is",
        "at most √ε, but Definition 3 also asks `‖∇f(x_t)‖ ≤ ε`. Theorem 2 ends with gradient descent (η = 1/β)",
        "until `‖∇f‖ ≤ ε`; the finished point is then checked against both conditions.",
        "",
        "| problem | parameters | method | runs | ‖∇f(x_t)‖ ≤ ε | median ‖∇f(x_t)‖ / ε | largest | "
        "finish steps (median / largest) | (ε, √ε)-flat after the finish |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (problem, regime, method), chosen in sorted(groups.items()):
        ratios = [r.grad_norm_at_metric / r.eps for r in chosen]
        finish = [r.finish_steps for r in chosen if r.finish_steps is not None]
        finish_text = f"{statistics.median(finish):g} / {max(finish)}" if finish else "—"
        lines.append(
            f"| {problem} | {_PARAMETERS[regime]} | {method} | {len(chosen)} | {_share(r <= 1 for r in ratios)} "
            f"| {statistics.median(ratios):.1f} | {max(ratios):.1f} | {finish_text} "
            f"| {_share(bool(r.definition3) for r in chosen)} |"
        )
    return lines


def _branches(grid: Grid) -> list[str]:
    """Where Table 1's SA bound takes its ``1/(d³ε)`` branch on the grid."""
    example1 = [(2, e) for e in grid.example1_eps]
    network = [(d, e) for d in grid.network_dims for e in grid.network_eps]
    return [
        "## Table 1's SA branches on the grid",
        "",
        "SA's bound is `d⁻¹ε⁻²(1 ∨ 1/(d³ε))`: its `1/(d³ε)` branch (exponents −3 in ε, −4 in d) applies where",
        f"`d³ε < 1`. Example 1 (d = 2): {_where(example1)}. Networks: {_where(network)}.",
    ]


def _where(cells) -> str:
    """The range of ``d³ε`` over ``(d, ε)`` cells, and where :func:`~flatref.theory.table1_exponents` takes SA's
    second branch."""
    values = [d**3 * e for d, e in cells]
    below = sum(table1_exponents("SA", e, d) == (-3.0, -4.0) for d, e in cells)
    where = ("below 1 in every cell: the 1/(d³ε) branch throughout" if below == len(cells) else
             "at least 1 in every cell: the first branch throughout" if below == 0 else
             f"below 1 in {below} of {len(cells)} cells")  # fmt: skip
    return f"d³ε from {min(values):.3g} to {max(values):.3g}, {where}"


def _share(flags) -> str:
    flags = list(flags)
    return f"{sum(flags)} / {len(flags)} ({100 * sum(flags) / len(flags):.0f} %)"


def _grid_text(grid: Grid, rows: list) -> list[str]:
    return [
        f"Grid: Example 1 at ε ∈ {_list(grid.example1_eps)}; diagonal networks (n = d/8, 2-sparse truth) at",
        f"d ∈ {_list(grid.network_dims)}, {grid.instances} instances each, and ε ∈ {_list(grid.network_eps)} "
        f"(a factor {max(grid.network_eps) / min(grid.network_eps):.3g});",
        f"{grid.seeds} seeds per cell; {len(rows)} rows in `rates.csv`.",
        f"Theorems' schedules: δ = {DELTA:g}, gate ε0 = {GATE:g}ε; constants {_constants()}.",
        f"Equal fixed η′, ρ (no gate): {FIXED}.",
        "",
    ]


def demo_table(escapes) -> list[str]:
    """The demo's table: per run, ``tr̄`` at the limit at the start and the end, the raw trace
    gap, the stationarity metric and Definition 3's verdict (``escapes``:
    :func:`~flatref.experiments.recipes.demo_escapes`)."""
    header = (f"{'problem':<26}{'method':<8}{'steps':>6}  {'tr̄(Φ) start → end':<20}{'trace gap':>18}"
              f"{'metric':>10}   flat")  # fmt: skip
    lines = [header, "-" * len(header)]
    for e in escapes:
        tr_bar = f"{e.start.tr_bar_star:.4g} → {e.end.tr_bar_star:.4g}"
        gap = f"{e.start.trace_gap:.3g} → {max(e.end.trace_gap, 0.0):.3g}"
        verdict = f"{'yes' if e.end.is_flat else 'no'} (ε = {e.eps:g})"
        lines.append(f"{e.label:<26}{e.method:<8}{e.steps:>6}  {tr_bar:<20}{gap:>18}{e.end.metric:>10.2e}   {verdict}")
    return lines


def _list(values) -> str:
    return "{" + ", ".join(f"{v:.3g}" for v in values) + "}"


def _constants() -> str:
    return "; ".join(
        f"{problem} {method}: c_η′ = {c['c_eta_prime']:g}, c_ρ = {c['c_rho']:g}"
        for (problem, method), c in CONSTANTS.items()
    )
