"""The digits experiment (:mod:`flatref.experiments.digits`): its CSV and its figure, and the ``escape`` job."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..experiments.digits import COLUMNS, SETUP, Escape, escape_experiment, escape_methods, final_rows
from .files import COLORS, csv_value, pyplot, save_png, write_csv
from .progress import SweepProgress

#: SA's batch sizes in shades of its red, darker for smaller batches.
SA_SHADES = {"1": "#8b0000", "16": "#d62728", "64": "#ff7f0e", "full": "#e6b800"}
NAMES = {"gd": "GD", "rs": "RS", "sa": "SA", "sam": "SAM", "labelnoise": "LabelNoiseSGD"}


def label(method: str, batch: str) -> str:
    """A run's legend entry: ``SA, b = 16``, ``RS``, …

    Examples:
        >>> label("sa", "1"), label("gd", "full"), label("labelnoise", "16")
        ('SA, b = 1', 'GD', 'label noise, b = 16')
    """
    if method in ("gd", "rs"):
        return NAMES[method]
    name = "label noise" if method == "labelnoise" else NAMES[method]
    return f"{name}, {'full batch' if batch == 'full' else f'b = {batch}'}"


def color(method: str, batch: str) -> str:
    """The run's colour: the package's colour per method, SA's batches in shades."""
    return SA_SHADES.get(batch, COLORS["SA"]) if method == "sa" else COLORS[NAMES[method]]


def csv_rows(rows) -> list[list[str]]:
    """The cells of ``digits.csv``, one list per row in :data:`~flatref.experiments.digits.COLUMNS` order.

    Examples:
        >>> from flatref.experiments.digits import Row
        >>> csv_rows([Row("sa", "1", 200, 0.1234567, 1.0, 0.75, 700.123456789), Row("rs", "full", 0, 0.0, None, None, None)])
        [['sa', '1', '200', '0.123457', '1', '0.75', '700.123'], ['rs', 'full', '0', '0', '', '', '']]
    """
    return [[csv_value(getattr(row, c)) for c in COLUMNS] for row in rows]


def _runs(rows) -> dict:
    runs = {}
    for row in rows:
        if row.method not in ("clean", "bad"):
            runs.setdefault((row.method, row.batch_size), []).append(row)
    return runs


def digits_figure(escape: Escape, out_dir) -> Path:
    """Trace and test accuracy at ``Φ(x_t)`` against the steps, and test accuracy against trace.

    Writes ``digits.png`` and ``digits.csv`` (:data:`~flatref.experiments.digits.COLUMNS`) into ``out_dir``.
    """
    plt = pyplot()
    fig, (ax_tr, ax_acc, ax_sc) = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    minima = {row.method: row for row in escape.rows if row.method in ("clean", "bad")}
    for (method, batch), rows in _runs(escape.rows).items():
        read = [r for r in rows if r.trace_phi is not None]
        steps = [r.step for r in read]
        style = {"color": color(method, batch), "label": label(method, batch), "lw": 1.4, "marker": ".", "ms": 4,
                 "ls": "--" if method == "gd" else "-", "zorder": 3 if method == "gd" else 2}  # GD dashed over RS
        ax_tr.plot(steps, [r.trace_phi for r in read], **style)
        ax_acc.plot(steps, [100 * r.test_acc for r in read], **style)
        ax_sc.plot([r.trace_phi for r in read], [100 * r.test_acc for r in read], color=style["color"], lw=0.8,
                   alpha=0.5, marker=".", ms=4)  # fmt: skip
        if read:
            ax_sc.plot(read[-1].trace_phi, 100 * read[-1].test_acc, "o", color=style["color"], ms=8, mec="black")
    for name, marker in (("bad", "s"), ("clean", "*")):
        if name in minima:
            m = minima[name]
            for ax, value in ((ax_tr, m.trace_phi), (ax_acc, 100 * m.test_acc)):
                ax.axhline(value, color="black", ls="--" if name == "clean" else ":", lw=1,
                           label=f"{name} minimizer")  # fmt: skip
            ax_sc.plot(m.trace_phi, 100 * m.test_acc, marker, color="gold" if name == "clean" else "black", mec="black",
                       ms=12, label=f"{name} minimizer", zorder=4)  # fmt: skip
    ax_tr.set(xlabel="step $t$", ylabel=r"$\mathrm{tr}\,\nabla^2 f$ at $\Phi(x_t)$")
    ax_tr.set_title("(a) the trace of the Hessian at the limit")
    ax_acc.set(xlabel="step $t$", ylabel=r"test accuracy at $\Phi(x_t)$ (%)")
    ax_acc.set_title("(b) test accuracy at the limit (1,541 test images)")
    ax_sc.set(xlabel=r"$\mathrm{tr}\,\nabla^2 f$ at $\Phi(x_t)$", ylabel="test accuracy (%)")
    ax_sc.set_title("(c) flatter is better: every recorded step")
    n = len(final_rows(escape.rows))
    rho = "n/a" if math.isnan(escape.spearman) else f"{escape.spearman:.2f}"
    ax_sc.text(0.97, 0.97, f"Spearman ρ = {rho}\n(last step of the {n} runs)", transform=ax_sc.transAxes,
               ha="right", va="top", fontsize=10, bbox={"facecolor": "white", "edgecolor": "0.7"})  # fmt: skip
    ax_tr.legend(fontsize=7, ncol=2)
    ax_sc.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Escaping a bad minimizer of a tanh network 64-{escape.setup.hidden}-10 on {escape.setup.n_train} "
                 f"handwritten digits (d = {75 * escape.setup.hidden + 10:,}), {escape.steps} steps")  # fmt: skip
    out_dir = Path(out_dir)
    png = save_png(fig, out_dir / "digits.png")
    plt.close(fig)
    write_csv(out_dir / "digits.csv", COLUMNS, csv_rows(escape.rows))
    return png


def escape(out_dir="figures", *, quick: bool = False, jobs: int | None = None, cache=None,
           progress: bool = False, **options) -> Escape:  # fmt: skip
    """Compute :func:`~flatref.experiments.digits.escape_experiment` and write ``digits.csv`` and ``digits.png``."""
    total = len(escape_methods(options.get("setup", SETUP).n_train))
    on_done = SweepProgress(total, lambda task: f"{label(task.method, task.batch_size)}, {task.steps} steps") \
        if progress else None  # fmt: skip
    result = escape_experiment(quick=quick, jobs=jobs, cache=cache, on_done=on_done, **options)
    digits_figure(result, out_dir)
    return result


def summary(escape: Escape) -> list[str]:
    """Lines for the terminal: the minimizers, then each run's start and end at ``Φ``.

    Examples:
        >>> from flatref.experiments.digits import Row
        >>> rows = [Row("bad", "full", 0, 0.0, 1.0, 0.6, 800.0), Row("sa", "1", 0, 0.0, 1.0, 0.6, 800.0),
        ...         Row("sa", "1", 10, 0.1, 1.0, 0.7, 700.0)]
        >>> class E: rows, spearman = rows, -1.0
        >>> print("\\n".join(summary(E)))
        minimizer  train  test    trace
        bad        100.0%  60.0%   800.0
        run               steps  trace at Φ        test accuracy at Φ
        SA, b = 1            10  800.0 → 700.0 (-12.5%)  60.0% → 70.0% (+10.0)
        Spearman(trace at Φ, test accuracy) over the runs' last steps: -1.00
        reads at Φ after step 0: 1 (0 failed), 0.0 s and 0 gradients median, 0.0 s and 0 at most
    """
    lines = ["minimizer  train  test    trace"]
    for row in escape.rows:
        if row.method in ("clean", "bad"):
            lines.append(f"{row.method:<10} {100 * row.train_acc:.1f}% {100 * row.test_acc:5.1f}%  {row.trace_phi:6.1f}")
    lines.append("run               steps  trace at Φ        test accuracy at Φ")
    for (method, batch), rows in _runs(escape.rows).items():
        first, last = rows[0], rows[-1]
        if last.trace_phi is None or first.trace_phi is None:
            lines.append(f"{label(method, batch):<17}{last.step:>6}  (Φ failed: {last.phi_status})")
            continue
        change = 100 * (last.trace_phi / first.trace_phi - 1)
        gain = 100 * (last.test_acc - first.test_acc)
        lines.append(f"{label(method, batch):<17}{last.step:>6}  {first.trace_phi:.1f} → {last.trace_phi:.1f} "
                     f"({change:+.1f}%)  {100 * first.test_acc:.1f}% → {100 * last.test_acc:.1f}% ({gain:+.1f})")  # fmt: skip
    lines.append(f"Spearman(trace at Φ, test accuracy) over the runs' last steps: {escape.spearman:.2f}")
    reads = [row for rows in _runs(escape.rows).values() for row in rows if row.step > 0]
    if reads:
        seconds, grads = np.array([r.phi_seconds for r in reads]), np.array([r.phi_grads for r in reads])
        failed = sum(r.trace_phi is None for r in reads)
        lines.append(f"reads at Φ after step 0: {len(reads)} ({failed} failed), {np.median(seconds):.1f} s and "
                     f"{np.median(grads):.0f} gradients median, {seconds.max():.1f} s and {grads.max()} at most")  # fmt: skip
    return lines

