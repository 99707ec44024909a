"""The markdown of Table 1 in numbers: fitted exponents next to Table 1's, the speed-up, per-size fits."""

from __future__ import annotations

from collections import defaultdict

from ..experiments.stats import Fit, Speedup, cells, fit
from ..experiments.sweeps import CONSTANTS, FIXED, Grid


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
_EVENTS = {"flat": "(ε, √ε)-flat", "half": "trace gap halved"}


def markdown(grid: Grid, rows: list, fitted: list[Fit], ratio: Speedup) -> str:
    """The fitted exponents next to Table 1's, and the RS/SA speed-up per ``d``, as markdown.

    Examples:
        >>> import math
        >>> from flatref.experiments.stats import fits, speedup
        >>> from flatref.experiments.sweeps import Row
        >>> rows = [Row("network", d, regime, m, e, 0, 1.0, 10 * e, 2 * math.sqrt(e), round(e**-3), None,
        ...             100 * d if m == "RS" else 100, 0, 0, "reached", 1.0, 0.5, 1.0, 0.1)
        ...         for d in (16, 32, 64) for regime in ("theory", "fixed") for m in ("RS", "SA")
        ...         for e in (0.1, 0.05, 0.025)]                 # flat in ε⁻³ steps; RS halves in d times SA's
        >>> text = markdown(Grid((16, 32, 64), (0.1, 0.05, 0.025), (0.1,), 1, 1000), rows, fits(rows), speedup(rows))
        >>> "fitted: ratio ∝ d^(+1.00 ± 0.00)" in text, "| 64 | 6,400 | 100 | 64.0 | 1.00 |" in text
        (True, True)
        >>> [line.split(" | ")[5:8] for line in text.splitlines() if line.startswith("| network | theorems'")][0]
        ['-3.00 ± 0.00', '-2.00', '-3']
    """
    lines = [
        "# Table 1 in numbers",
        "",
        "Regenerate with `python -m flatref rates` (module `flatref.report.jobs`). "
        "Steps from the sharp minimum until the",
        "event, median over seeds; exponents of `steps ∝ ε^a d^b` by least squares on logs over the cells' medians,",
        "with 95% confidence half-widths. *Leading order*: the ε exponent of `1/(η′ρ²)`, the per-step rate of",
        "Lemmas 2 and 4. Cells: fitted / already met at the start / not reached in "
        f"{grid.max_steps:,} steps by most seeds.",
        "",
        "| problem | parameters | method | steps until | cells | ε exponent | leading order | Table 1 "
        "| d exponent | Table 1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in fitted:
        if not f.exponents:
            continue  # nothing varies over the cells (halving at fixed η′, ρ on Example 1): see the CSV
        table_eps, table_d = ("—", "—") if f.table1 is None else (f"{f.table1[0]:g}", f"{f.table1[1] + 0.0:g}")
        if "d" not in f.exponents:
            table_d = "—"
        leading = "—" if f.leading_order is None else _signed(f.leading_order)
        lines.append(
            f"| {f.problem} | {_PARAMETERS[f.regime]} | {f.method} | {_EVENTS[f.event]} "
            f"| {f.used} / {f.at_start} / {f.censored} | {format_exponent(f.exponents.get('eps'))} | {leading} "
            f"| {table_eps} | {format_exponent(f.exponents.get('d'))} | {table_d} |"
        )
    lines += [
        "",
        "## RS against SA at equal η′, ρ (network, steps until the trace gap halves)",
        "",
        f"Lemma 4 against Lemma 2 predicts a ratio of `d`; fitted: ratio ∝ d^({format_exponent(ratio.exponent)}).",
        "",
        "| d | RS | SA | RS / SA | (RS / SA) / d |",
        "|---|---|---|---|---|",
    ]
    for d, rs, sa, r in zip(ratio.dims, ratio.rs, ratio.sa, ratio.ratio):
        lines.append(f"| {d} | {rs:,.0f} | {sa:,.0f} | {r:.1f} | {r / d:.2f} |")
    lines += ["", *_per_size(rows)]
    seeds = grid.seeds
    lines += [
        "",
        f"Grid: Example 1 at ε ∈ {_list(grid.example1_eps)}; diagonal networks (n = d/8, 2-sparse truth) at",
        f"d ∈ {_list(grid.network_dims)} and ε ∈ {_list(grid.network_eps)}; {seeds} seeds per cell; "
        f"{len(rows)} rows in `rates.csv`.",
        f"Constants (δ = 1): {_constants()}; fixed regime (η′, ρ): {FIXED}.",
        "",
    ]
    return "\n".join(lines)


def _per_size(rows: list) -> list[str]:
    """The ε exponent of the flat event fitted at each network size alone (no ``d`` term);
    "—" where fewer than 3 cells were reached after the start (no confidence interval)."""
    columns = [(regime, method) for regime in ("theory", "fixed") for method in ("RS", "SA")]
    groups = defaultdict(list)
    for cell in cells(rows, "flat"):
        if cell.problem == "network":
            groups[cell.dim, cell.regime, cell.method].append(cell)
    lines = [
        "## The flat event's ε exponent at each network size",
        "",
        "Fitted at one `d` at a time (\"—\": fewer than 3 cells reached after the start).",
        "",
        "| d | " + " | ".join(f"{method}, {_PARAMETERS[regime]}" for regime, method in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for d in sorted({d for d, _, _ in groups}):
        fitted = [fit(groups[d, r, m]).exponents.get("eps") if (d, r, m) in groups else None for r, m in columns]
        fitted = [e if e is not None and e[1] is not None else None for e in fitted]
        lines.append(f"| {d} | " + " | ".join(format_exponent(e) for e in fitted) + " |")
    return lines


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
