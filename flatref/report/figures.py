"""The figures, drawn from data the experiments computed (:mod:`flatref.experiments.recipes`,
:mod:`flatref.experiments.stats`). Each writes a PNG and, beside it, a CSV of what it draws.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..experiments.recipes import sensing_reference
from ..experiments.registry import make
from ..experiments.stats import NEAR, cells
from ..experiments.sweeps import FIXED, Grid
from ..theory import table1_exponents
from .files import COLORS, pyplot, save_png, write_figure
from .tables import format_exponent


def example1_figure(data: dict, out_dir) -> Path:
    """Example 1: the landscape with the runs, ``tr̄`` along the minima set, and ``tr̄(Φ(x_t))`` per step.

    ``data`` is :func:`~flatref.experiments.recipes.example1_runs`. Writes ``example1.png`` and
    ``example1.csv`` (method, step, x1, x2, tr̄(Φ(x_t))) into ``out_dir``.
    """
    plt = pyplot()
    runs = {name: d.trajectory for name, d in data.items()}
    paths = {name: d.path for name, d in data.items()}
    limits = {name: d.last_limit.x for name, d in data.items()}

    fig, (ax_land, ax_hyp, ax_tr) = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
    # (a) the landscape: log10 f, the hyperbola of minima, the runs.
    grid = np.linspace(-0.3, 3.6, 300)
    X1, X2 = np.meshgrid(grid, grid)
    F = (X1 * X2 - 1.0) ** 2
    levels = ax_land.contourf(X1, X2, np.log10(F + 1e-3), levels=20, cmap="Greys")
    fig.colorbar(levels, ax=ax_land, label=r"$\log_{10}(f + 10^{-3})$")
    t = np.linspace(1 / 3.6, 3.6, 400)
    ax_land.plot(t, 1 / t, color="black", lw=1.2, ls="--", label=r"minima $x_1x_2 = 1$")
    for name, traj in runs.items():
        ax_land.plot(traj.xs[:, 0], traj.xs[:, 1], color=COLORS[name], lw=1.0, alpha=0.9, label=name)
        ax_land.plot(*traj.x_last, "o", color=COLORS[name], ms=4)
    ax_land.plot(3, 1 / 3, "s", color="black", ms=7, label="sharp minimum (3, 1/3)")
    ax_land.plot(1, 1, "*", color="gold", mec="black", ms=14, label="flat minimum (1, 1)")
    ax_land.set(xlim=(-0.3, 3.6), ylim=(-0.3, 3.6), xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax_land.set_title(r"(a) $f(x) = (x_1x_2 - 1)^2$ and the runs")
    ax_land.legend(loc="upper right", fontsize=7)

    # (b) tr̄ along the hyperbola, with the limits of the last iterates.
    ax_hyp.plot(t, t**2 + 1 / t**2, color="black", lw=1.2)
    ax_hyp.plot(1, 2, "*", color="gold", mec="black", ms=9, label="flat minimum", zorder=3)
    for k, (name, x_star) in enumerate(limits.items()):
        size = 26 - 4 * k  # hollow rings of decreasing size keep coinciding limits visible
        ax_hyp.plot(x_star[0], paths[name].tr_bar[-1], "o", mfc="none", mec=COLORS[name], mew=2, ms=size,
                    label=f"{name}: Φ(last iterate)", zorder=4)  # fmt: skip
    ax_hyp.set(xlim=(0.25, 3.6), ylim=(1.5, 16), yscale="log", xlabel=r"$x_1$ on the minima set $(x_1, 1/x_1)$",
               ylabel=r"$\overline{\mathrm{tr}}(x) = x_1^2 + x_1^{-2}$")  # fmt: skip
    ax_hyp.set_yticks([2, 4, 8, 16], ["2", "4", "8", "16"])
    ax_hyp.minorticks_off()
    ax_hyp.set_title(r"(b) $\overline{\mathrm{tr}}$ along the minima set")
    ax_hyp.legend(fontsize=7, loc="upper center", markerscale=0.4)

    # (c) tr̄(Φ(x_t)) against the step.
    for name, path in paths.items():
        ax_tr.plot(path.steps, path.tr_bar, color=COLORS[name], label=name)
    ax_tr.axhline(2.0, color="black", ls=":", lw=1, label=r"flattest: $\overline{\mathrm{tr}} = 2$")
    ax_tr.set(xlabel="step $t$", ylabel=r"$\overline{\mathrm{tr}}(\Phi(x_t))$")
    ax_tr.set_title(r"(c) flatness of the limit along each run")
    ax_tr.legend(fontsize=7)

    rows = [
        [name, int(step), f"{x[0]:.12g}", f"{x[1]:.12g}", f"{tr:.12g}"]
        for name, traj in runs.items()
        for step, x, tr in zip(paths[name].steps, traj.xs, paths[name].tr_bar)
    ]
    return write_figure(fig, out_dir, "example1", ["method", "step", "x1", "x2", "tr_bar_limit"], rows)


def network_figure(data: dict, out_dir) -> Path:
    """Diagonal network: trace gap and metric at ``Φ(x_t)`` per method, and the weights ``w = u⊙v``.

    ``data`` is :func:`~flatref.experiments.recipes.network_runs`. Writes ``network.png`` and
    ``network.csv`` (method, step, trace gap, metric) into ``out_dir``.
    """
    plt = pyplot()
    problem = make("network")
    paths = {name: d.path for name, d in data.items()}
    colors = dict(COLORS, **{"SAM (b=1)": "#8c564b"})

    fig, (ax_gap, ax_metric, ax_w) = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    for name, path in paths.items():
        ax_gap.plot(path.steps, np.maximum(path.trace_gap, 1e-6), color=colors[name], label=name)
        ax_metric.plot(path.steps, path.metric, color=colors[name], label=name)
    gap_label = r"$\mathrm{tr}\,\nabla^2 f(\Phi(x_t)) - \min_{X^*} \mathrm{tr}$"
    ax_gap.set(yscale="log", xlabel="step $t$", ylabel=gap_label)
    ax_gap.set_title("(a) raw trace gap to the flattest interpolant")
    ax_gap.legend(fontsize=7)
    metric_label = r"$\|\partial\Phi\, \nabla \overline{\mathrm{tr}}\|$ at $\Phi(x_t)$"
    ax_metric.set(yscale="log", xlabel="step $t$", ylabel=metric_label)
    ax_metric.set_title("(b) stationarity metric")
    ax_metric.legend(fontsize=7)

    k = np.arange(problem.n_features)
    start_w = problem.weights(data["GD"].trajectory.xs[0])
    ax_w.bar(k - 0.3, start_w, width=0.3, color="#bbbbbb", label="start (dense interpolant)")
    for offset, name in ((0.0, "SA"), (0.3, "SAM (b=1)")):
        end_w = problem.weights(data[name].last_limit.x)
        ax_w.bar(k + offset, end_w, width=0.3, color=colors[name], label=f"{name}: Φ(last iterate)")
    ax_w.plot(k, problem.ground_truth, "k_", ms=12, mew=2, label="sparse ground truth")
    ax_w.set(xlabel="feature $k$", ylabel=r"$w_k = u_k v_k$", ylim=(-0.4, 1.6), xticks=k[::2])
    ax_w.set_title("(c) flatter means sparser: $w$ moves to the truth")
    ax_w.legend(fontsize=7, loc="upper center", ncol=2)

    rows = [
        [name, int(step), f"{gap:.12g}", f"{metric:.12g}"]
        for name, path in paths.items()
        for step, gap, metric in zip(path.steps, path.trace_gap, path.metric)
    ]
    return write_figure(fig, out_dir, "network", ["method", "step", "trace_gap", "metric"], rows)


def batch_figure(data: dict, out_dir) -> Path:
    """RS against SA at equal ``η′, ρ`` (left) and SA's batch size (right): the trace gap at ``Φ(x_t)``.

    ``data`` is :func:`~flatref.experiments.recipes.batch_runs`. Writes ``batch.png`` and
    ``batch.csv`` (run, step, trace gap) into ``out_dir``.
    """
    plt = pyplot()
    runs = list(data)
    gaps = {name: d.path for name, d in data.items()}
    shades = ["#d62728", "#ff7f0e", "#bcbd22", "#17becf"]
    fig, (ax_rs, ax_b) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    for ax, names in ((ax_rs, ["RS", "SA, b = 1"]), (ax_b, [n for n in runs if n.startswith("SA")])):
        for name in names:
            color = COLORS["RS"] if name == "RS" else shades[list(runs).index(name) - 1]
            ax.plot(gaps[name].steps, gaps[name].trace_gap, color=color, label=name)
        ax.set(yscale="log", xlabel="step $t$", ylabel=r"trace gap at $\Phi(x_t)$")
        ax.legend(fontsize=8)
    ax_rs.set_title(r"(a) RS against SA at equal $\eta'$, $\rho$ ($d = 128$)")
    ax_b.set_title("(b) SA: smaller batches flatten faster")
    rows = [
        [name, int(step), f"{gap:.12g}"] for name, path in gaps.items() for step, gap in zip(path.steps, path.trace_gap)
    ]
    return write_figure(fig, out_dir, "batch", ["run", "step", "trace_gap"], rows)


def sensing_figure(data: dict, out_dir) -> Path:
    """Matrix sensing: the trace and the metric at ``Φ(x_t)``, and the recovery error ``‖UUᵀ − M*‖/‖M*‖`` of ``Φ(x_t)``.

    ``data`` is :func:`~flatref.experiments.recipes.sensing_runs`. Writes ``sensing.png`` and
    ``sensing.csv`` (method, step, trace, metric, recovery error) into ``out_dir``. The trace panel's
    reference is the certified flattest trace (:func:`~flatref.experiments.recipes.sensing_reference`).
    """
    plt = pyplot()
    problem = make("sensing-18")
    paths = {name: d.path for name, d in data.items()}
    recovery = {name: np.array([problem.recovery_error(x) for x in path.x_star]) for name, path in paths.items()}
    references = sensing_reference(problem)

    fig, (ax_tr, ax_metric, ax_rec) = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    for name, path in paths.items():
        ax_tr.plot(path.steps, path.trace, color=COLORS[name], label=name)
        ax_metric.plot(path.steps, path.metric, color=COLORS[name], label=name)
        ax_rec.plot(path.steps, np.maximum(recovery[name], 1e-8), color=COLORS[name], label=name)
    for (label, trace), style in zip(references.items(), (":", "--")):
        ax_tr.axhline(trace, color="black", ls=style, lw=1, label=label)
    ax_tr.set(xlabel="step $t$", ylabel=r"$\mathrm{tr}\,\nabla^2 f(\Phi(x_t))$")
    ax_tr.set_title("(a) trace at the limit")
    metric_label = r"$\|\partial\Phi\, \nabla \overline{\mathrm{tr}}\|$ at $\Phi(x_t)$"
    ax_metric.set(yscale="log", xlabel="step $t$", ylabel=metric_label)
    ax_metric.set_title("(b) stationarity metric")
    ax_rec.set(yscale="log", xlabel="step $t$", ylabel=r"$\|UU^\top - M^*\|_F / \|M^*\|_F$ at $\Phi(x_t)$")
    ax_rec.set_title("(c) distance to the low-rank truth (floor: 1e-8)")
    for ax in (ax_tr, ax_metric, ax_rec):
        ax.legend(fontsize=7)
    rows = [
        [name, int(step), f"{path.trace[k]:.12g}", f"{path.metric[k]:.12g}", f"{recovery[name][k]:.12g}"]
        for name, path in paths.items()
        for k, step in enumerate(path.steps)
    ]
    return write_figure(fig, out_dir, "sensing", ["method", "step", "trace", "metric", "recovery_error"], rows)


def run_figure(problem, trajectory, flat, path) -> Path:
    """``f(x_t)`` and ``tr̄(Φ(x_t))`` along one run, into the PNG ``path``; ``flat`` is
    :func:`~flatref.flatness.flatness_along` of the run."""
    plt = pyplot()
    fig, (ax_f, ax_tr) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax_f.plot(trajectory.record_steps, np.maximum(trajectory.f, 1e-300), color="black")
    ax_f.set(yscale="log", xlabel="step $t$", ylabel="$f(x_t)$", title=f"{problem!r}")
    ax_tr.plot(flat.steps, flat.tr_bar, color=COLORS.get(type(trajectory.method).__name__, "black"))
    ax_tr.set(xlabel="step $t$", ylabel=r"$\overline{\mathrm{tr}}(\Phi(x_t))$", title=type(trajectory.method).__name__)
    save_png(fig, path)
    plt.close(fig)
    return Path(path)


def rates_figure(grid: Grid, rows: list, ratio):
    """Four log–log panels: Example 1 and the network under the theorems' schedules (steps until
    the metric at ``Φ`` is ``≤ √ε``, against ``ε``, Table 1's slopes dotted), the network at equal
    ``η′, ρ`` (steps to halve the trace gap against ``d``), and RS/SA against ``d`` with the
    prediction ``ratio = d``. Each point pools a size's instances (median of their medians, bars
    from the smallest to the largest run); open markers: cells set aside because the start is
    within :data:`~flatref.experiments.stats.NEAR` times the threshold."""
    plt = pyplot()
    metric, half = cells(rows, "metric"), cells(rows, "half")
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), constrained_layout=True)
    (ax_ex1, ax_net), (ax_d, ax_ratio) = axes

    for method in ("RS", "SA"):
        color = COLORS[method]
        xy = _plot_pooled(ax_ex1, _select(metric, "example1", "theory", method), color, f"{method}: metric ≤ √ε")
        _guide(ax_ex1, xy, method, 2, grid.example1_eps, color)
        halved = _select(half, "example1", "theory", method)
        _plot_pooled(ax_ex1, halved, color, f"{method}: gap halved", marker="s", ls="--", alpha=0.6)
        for k, d in enumerate(grid.network_dims):
            alpha = 0.35 + 0.65 * (k + 1) / len(grid.network_dims)
            chosen = _select(metric, "network", "theory", method, dim=d)
            xy = _plot_pooled(ax_net, chosen, color, f"{method}, d = {d}", alpha=alpha)
            if d == grid.network_dims[0]:
                _guide(ax_net, xy, method, d, grid.network_eps, color)
        _plot_pooled(ax_d, _select(half, "network", "fixed", method), color, method, x="dim")

    ax_ex1.set_title("(a) Example 1 (d = 2), theorems' schedules")
    ax_net.set_title(f"(b) network, theorems' schedules: metric ≤ √ε (open: start within {NEAR:g}√ε)")
    ax_d.set_title(f"(c) network, equal η′, ρ = {FIXED['network']}: steps to halve the trace gap")
    for ax in (ax_ex1, ax_net):
        ax.set(xscale="log", yscale="log", xlabel="ε", ylabel="steps (median; bars: min–max over runs)")
        ax.invert_xaxis()
        ax.legend(fontsize=7, ncol=2)
    ax_d.set(xscale="log", yscale="log", xlabel="d", ylabel="steps (median; bars: min–max over runs)")
    ax_d.legend(fontsize=8)

    dims = np.array(ratio.dims, dtype=float)
    ax_ratio.plot(dims, ratio.ratio, "o-", color="black", label="measured RS / SA")
    ax_ratio.plot(dims, dims, ":", color="grey", label="Lemma 4 vs Lemma 2: ratio = d")
    ax_ratio.set(xscale="log", yscale="log", xlabel="d", ylabel="RS steps / SA steps (trace gap halved)")
    ax_ratio.set_title(f"(d) speed-up of SA over RS: ratio ∝ d^({format_exponent(ratio.exponent)})")
    ax_ratio.legend(fontsize=8)
    return fig


def _select(group, problem, regime, method, **extra):
    return [
        c for c in group if (c.problem, c.regime, c.method) == (problem, regime, method)
        and all(getattr(c, k) == v for k, v in extra.items())
    ]  # fmt: skip

def _pooled(chosen, x):
    """``{x: (median of medians, smallest low, largest high, all near)}`` over cells reached after the start."""
    groups = {}
    for c in chosen:
        if 0 < c.median < math.inf:
            groups.setdefault(getattr(c, x), []).append(c)
    return {key: (float(np.median([c.median for c in g])), min(c.low for c in g), max(c.high for c in g),
                  all(c.near for c in g)) for key, g in sorted(groups.items())}  # fmt: skip

def _plot_pooled(ax, chosen, color, label, x="eps", marker="o", ls="-", alpha=1.0):
    """Pooled medians against ``x`` with min–max bars (open markers: set aside as near the
    threshold); returns the fitted points ``(x, median)``, or ``None`` if there are none."""
    points = _pooled(chosen, x)
    if not points:
        return None
    xs = np.array(list(points), dtype=float)
    median, low, high, near = (np.array(v) for v in zip(*points.values()))
    yerr = [median - low, np.where(np.isfinite(high), high - median, 0.0)]
    ax.errorbar(xs, median, yerr=yerr, color=color, ls=ls, lw=1, capsize=2, alpha=alpha, label=label)
    ax.plot(xs[~near], median[~near], marker, color=color, alpha=alpha)
    ax.plot(xs[near], median[near], marker, mfc="none", color=color, alpha=alpha)
    return (xs[~near], median[~near]) if (~near).any() else None

def _guide(ax, xy, method, dim, eps_grid, color):
    """Table 1's ε slope for ``method`` at ``dim``, dotted over ``eps_grid`` through the
    largest-ε fitted point of ``xy``."""
    if xy is None:
        return
    x0, y0 = xy[0][-1], xy[1][-1]
    slope = table1_exponents(method, x0, dim)[0]
    x = np.array([min(eps_grid), max(eps_grid)])
    ax.plot(x, y0 * (x / x0) ** slope, ":", color=color, lw=1, label=f"{method}: Table 1, ε^{slope:g}")


def limit_flow_figure(data: tuple, out_dir) -> Path:
    """The methods on the slow flow: ``tr̄(Φ(x_t))`` against each method's flow time ``tτ``, over the flow
    ``ẋ* = −P∇tr̄`` (docs/theory.md §6.7), on each setup; and SA's gap to the flow against ``η′``.

    ``data`` is :func:`~flatref.experiments.collapse.collapse_runs`. Writes ``limit_flow.png`` and
    ``limit_flow.csv`` (panel, curve, x, tr̄ or gap, standard error) into ``out_dir``.
    """
    plt = pyplot()
    collapses, gap = data
    fig, axes = plt.subplots(1, len(collapses) + 1, figsize=(5 * (len(collapses) + 1), 4.4), constrained_layout=True)
    rows = []
    for ax, collapse in zip(axes, collapses):
        flow = collapse.flow
        ax.plot(flow.times, flow.tr_bar, color="black", lw=2.5, alpha=0.35, label="slow flow")
        rows += [[collapse.setup, "flow", f"{t:.9g}", f"{v:.12g}", ""] for t, v in zip(flow.times, flow.tr_bar)]
        for label, (tau, run_data) in collapse.runs.items():
            path = run_data.path
            color = COLORS.get(label, COLORS["SAM"])
            ax.plot(path.steps * tau, path.tr_bar, "o-", ms=3, lw=1, color=color, label=f"{label} (τ = {tau:.2g})")
            rows += [[collapse.setup, label, f"{s * tau:.9g}", f"{v:.12g}", ""] for s, v in zip(path.steps, path.tr_bar)]
        ax.set(xlabel=r"flow time $t\tau$", ylabel=r"$\overline{\mathrm{tr}}(\Phi(x_t))$")
        ax.set_title(collapse.setup)
        ax.legend(fontsize=7)
    ax = axes[-1]
    ax.errorbar(gap.eta_prime, gap.gap, yerr=2 * gap.std_error, fmt="o", color=COLORS["SA"], capsize=3,
                label="SA (batch 1), ρ = 0.3: mean ± 2 s.e.")  # fmt: skip
    slope = np.sum(np.array(gap.eta_prime) * gap.gap) / np.sum(np.array(gap.eta_prime) ** 2)
    grid = np.linspace(0, max(gap.eta_prime), 50)
    ax.plot(grid, slope * grid, color="black", ls=":", lw=1, label="a line through 0")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel=r"$\eta'$", ylabel=r"gap to the flow in $\overline{\mathrm{tr}}(\Phi)$")
    ax.set_title(f"network: gap at flow time 4 (the flow's drop: {gap.drop:.3g})")
    ax.legend(fontsize=7)
    rows += [["gap", "SA", f"{e:g}", f"{g:.12g}", f"{s:.6g}"] for e, g, s in zip(gap.eta_prime, gap.gap, gap.std_error)]
    return write_figure(fig, out_dir, "limit_flow", ["panel", "curve", "x", "value", "std_error"], rows)
