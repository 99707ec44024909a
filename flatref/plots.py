"""Figures (matplotlib, Agg backend). Each figure function writes a PNG and a CSV of its data.

PNGs are written without version metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from .algorithms import GD, RS, SA, SAM, LabelNoiseSGD, run
from .flatness import flatness_along
from .limit_map import limit_map
from .problems import Example1

#: One colour per method, used by every figure.
COLORS = {"GD": "#444444", "RS": "#1f77b4", "SA": "#d62728", "SAM": "#2ca02c", "LabelNoiseSGD": "#9467bd"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log(message: str) -> None:
    """Progress of the long figure runs, on stderr."""
    print(message, file=sys.stderr, flush=True)


def top_eigenvalue_step(problem, x) -> float:
    """``η = 1/λ_max(∇²f(x))``: the largest step at which GD is monotone near ``x``."""
    return 1.0 / np.linalg.eigvalsh(problem.hess(x))[-1]


def _near_sharp_minimum(problem):
    """The problem's sharp minimum plus ``1e-3`` Gaussian noise (there ``∇f = 0`` up to rounding,
    which leaves SAM no ascent direction), and ``η = 1/λ_max`` at the sharp minimum."""
    sharp = problem.sharp_minimum()
    return sharp + 1e-3 * np.random.default_rng(0).standard_normal(problem.dim), top_eigenvalue_step(problem, sharp)


def _methods(eta, *, stochastic_sam=False):
    """GD, RS, SA (``η′ = 0.05``, ``ρ = 0.1``), SAM (``η/2``, ``ρ = 0.05``; also batch 1 if asked)
    and label-noise SGD (``η/2``, ``σ = 0.1``)."""
    methods = {"GD": GD(eta), "RS": RS(eta, 0.05, 0.1), "SA": SA(eta, 0.05, 0.1), "SAM": SAM(0.5 * eta, 0.05)}
    if stochastic_sam:
        methods["SAM (b=1)"] = SAM(0.5 * eta, 0.05, batch_size=1)
    methods["LabelNoiseSGD"] = LabelNoiseSGD(0.5 * eta, 0.1)
    return methods


def _run_all(problem, methods, start, *, steps, rng, record_every, progress):
    """Run each method from ``start``; with ``progress``, say which run is going."""
    runs = {}
    for name, method in methods.items():
        if progress:
            _log(f"  {problem!r}: {name}, {steps} steps")
        runs[name] = run(problem, method, start, steps=steps, rng=rng, record_every=record_every)
    return runs


def _flatness(problem, runs, progress):
    """``flatness_along`` for each run (the limit map at every recorded iterate: the slow part)."""
    if progress:
        _log(f"  {problem!r}: the limit map along {len(runs)} runs")
    return {name: flatness_along(problem, t) for name, t in runs.items()}


def _save(fig, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})


def _write(plt, fig, out_dir: Path, name: str, header, rows) -> Path:
    """Save ``name.png`` (no version metadata: byte-stable) and its data ``name.csv``; close the figure."""
    png = out_dir / f"{name}.png"
    _save(fig, png)
    plt.close(fig)
    with open(out_dir / f"{name}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return png


#: The runs start just off the sharp minimum (3, 1/3): there ∇f = 0 exactly, which
#: leaves SAM without an ascent direction (and GD without a move either way).
EXAMPLE1_START = (3.0, 0.34)


def example1_runs(steps: int = 3000, record_every: int = 10, rng: int = 0, progress: bool = False):
    """GD, RS, SA, SAM and label-noise SGD from next to Example 1's sharp minimum, ``(3, 0.34)``.

    Step size ``η = 0.05 < 1/λ_max(∇²f(3, 1/3)) = 1/18.2`` for all; RS and SA use
    ``η′ = 0.05``, ``ρ = 0.3``; SAM ``ρ = 0.3``; label noise ``σ = 0.5``.
    """
    problem = Example1()
    methods = {
        "GD": GD(0.05),
        "RS": RS(0.05, 0.05, 0.3),
        "SA": SA(0.05, 0.05, 0.3),
        "SAM": SAM(0.05, 0.3),
        "LabelNoiseSGD": LabelNoiseSGD(0.05, 0.5),
    }
    start = np.array(EXAMPLE1_START)
    runs = _run_all(problem, methods, start, steps=steps, rng=rng, record_every=record_every, progress=progress)
    return problem, runs


def example1_figure(out_dir, *, steps: int = 3000, rng: int = 0, progress: bool = False) -> Path:
    """Example 1: the landscape with the runs, ``tr̄`` along the minima set, and ``tr̄(Φ(x_t))`` per step.

    Writes ``example1.png`` and ``example1.csv`` (method, step, x1, x2, tr̄(Φ(x_t))) into ``out_dir``.
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    problem, runs = example1_runs(steps=steps, rng=rng, progress=progress)
    paths = _flatness(problem, runs, progress)
    limits = {name: limit_map(problem, t.x_last).x for name, t in runs.items()}

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
    return _write(plt, fig, out_dir, "example1", ["method", "step", "x1", "x2", "tr_bar_limit"], rows)


def network_runs(steps: int = 3000, record_every: int = 150, rng: int = 0, progress: bool = False):
    """All methods on a diagonal linear network (n = 10, D = 20, d = 40, 2-sparse truth).

    Start: the sharp minimum (the dense min-norm interpolant with ``|u| = 2|v|``) plus
    ``1e-3`` Gaussian noise, so that SAM has an ascent direction. ``η = 1/λ_max`` there;
    RS and SA ``η′ = 0.05``, ``ρ = 0.1``; SAM ``η/2``, ``ρ = 0.05``; label noise ``η/2``, ``σ = 0.1``.
    """
    from .problems import DiagonalLinearNetwork

    problem = DiagonalLinearNetwork.random(10, 20, sparsity=2, rng=0)
    start, eta = _near_sharp_minimum(problem)
    methods = _methods(eta, stochastic_sam=True)
    runs = _run_all(problem, methods, start, steps=steps, rng=rng, record_every=record_every, progress=progress)
    return problem, runs


def network_figure(out_dir, *, steps: int = 3000, rng: int = 0, progress: bool = False) -> Path:
    """Diagonal network: trace gap and metric at ``Φ(x_t)`` per method, and the weights ``w = u⊙v``.

    Writes ``network.png`` and ``network.csv`` (method, step, trace gap, metric) into ``out_dir``.
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    problem, runs = network_runs(steps=steps, rng=rng, progress=progress)
    paths = _flatness(problem, runs, progress)
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
    start_w = problem.weights(runs["GD"].xs[0])
    ax_w.bar(k - 0.3, start_w, width=0.3, color="#bbbbbb", label="start (dense interpolant)")
    for offset, name in ((0.0, "SA"), (0.3, "SAM (b=1)")):
        end_w = problem.weights(limit_map(problem, runs[name].x_last).x)
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
    return _write(plt, fig, out_dir, "network", ["method", "step", "trace_gap", "metric"], rows)


def batch_runs(steps: int = 2000, record_every: int = 100, rng: int = 0, progress: bool = False):
    """The paper's Figure 3 at CPU scale: RS against SA, and SA at batch sizes 1, 4, 16 and full.

    Diagonal network with n = 32, D = 64 (d = 128), 3-sparse truth; start: the sharp minimum
    plus ``1e-3`` Gaussian noise; ``η = 1/λ_max`` there, ``η′ = 0.05``, ``ρ = 0.1`` for all.
    """
    from .problems import DiagonalLinearNetwork

    problem = DiagonalLinearNetwork.random(32, 64, sparsity=3, rng=0)
    start, eta = _near_sharp_minimum(problem)
    methods = {"RS": RS(eta, 0.05, 0.1)}
    for b in (1, 4, 16, problem.n_samples):
        methods[f"SA, b = {b}" if b < problem.n_samples else "SA, full batch"] = SA(eta, 0.05, 0.1, batch_size=b)
    runs = _run_all(problem, methods, start, steps=steps, rng=rng, record_every=record_every, progress=progress)
    return problem, runs


def batch_figure(out_dir, *, steps: int = 2000, rng: int = 0, progress: bool = False) -> Path:
    """RS against SA at equal ``η′, ρ`` (left) and SA's batch size (right): the trace gap at ``Φ(x_t)``.

    Writes ``batch.png`` and ``batch.csv`` (run, step, trace gap) into ``out_dir``.
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    problem, runs = batch_runs(steps=steps, rng=rng, progress=progress)
    gaps = _flatness(problem, runs, progress)
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
    return _write(plt, fig, out_dir, "batch", ["run", "step", "trace_gap"], rows)


def run_figure(problem, trajectory, path) -> Path:
    """``f(x_t)`` and ``tr̄(Φ(x_t))`` along one run, into the PNG ``path``."""
    plt = _pyplot()
    path = Path(path)
    flat = flatness_along(problem, trajectory)
    fig, (ax_f, ax_tr) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax_f.plot(trajectory.record_steps, np.maximum(trajectory.f, 1e-300), color="black")
    ax_f.set(yscale="log", xlabel="step $t$", ylabel="$f(x_t)$", title=f"{problem!r}")
    ax_tr.plot(flat.steps, flat.tr_bar, color=COLORS.get(type(trajectory.method).__name__, "black"))
    ax_tr.set(xlabel="step $t$", ylabel=r"$\overline{\mathrm{tr}}(\Phi(x_t))$", title=type(trajectory.method).__name__)
    _save(fig, path)
    plt.close(fig)
    return path


def sensing_runs(steps: int = 3000, record_every: int = 150, rng: int = 0, progress: bool = False):
    """Matrix sensing, n = 10, r = 4, rank-1 truth, m = 18 measurements (below the m ≈ 2nk = 20
    at which ``M*`` becomes the only PSD interpolant, so sharper interpolants exist).

    Start: the sharp interpolant with large extra columns plus ``1e-3`` noise; ``η = 1/λ_max``
    there; RS and SA ``η′ = 0.05``, ``ρ = 0.1``; SAM ``η/2``, ``ρ = 0.05``; label noise ``η/2``, ``σ = 0.1``.
    """
    from .problems import MatrixSensing

    problem = MatrixSensing.random(10, 4, 1, 18, rng=0)
    start, eta = _near_sharp_minimum(problem)
    methods = _methods(eta)
    runs = _run_all(problem, methods, start, steps=steps, rng=rng, record_every=record_every, progress=progress)
    return problem, runs


def sensing_figure(out_dir, *, steps: int = 3000, rng: int = 0, progress: bool = False) -> Path:
    """Matrix sensing: the trace and the metric at ``Φ(x_t)``, and the recovery error ``‖UUᵀ − M*‖/‖M*‖`` of ``Φ(x_t)``.

    Writes ``sensing.png`` and ``sensing.csv`` (method, step, trace, metric, recovery error) into ``out_dir``.
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    problem, runs = sensing_runs(steps=steps, rng=rng, progress=progress)
    paths = _flatness(problem, runs, progress)
    recovery = {name: np.array([problem.recovery_error(x) for x in path.x_star]) for name, path in paths.items()}
    truth_trace = problem.trace_hess(problem._truth_factor().ravel())

    fig, (ax_tr, ax_metric, ax_rec) = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    for name, path in paths.items():
        ax_tr.plot(path.steps, path.trace, color=COLORS[name], label=name)
        ax_metric.plot(path.steps, path.metric, color=COLORS[name], label=name)
        ax_rec.plot(path.steps, np.maximum(recovery[name], 1e-8), color=COLORS[name], label=name)
    ax_tr.axhline(truth_trace, color="black", ls=":", lw=1, label=r"at the truth $UU^\top = M^*$")
    ax_tr.set(xlabel="step $t$", ylabel=r"$\mathrm{tr}\,\nabla^2 f(\Phi(x_t))$")
    ax_tr.set_title("(a) trace at the limit")
    metric_label = r"$\|\partial\Phi\, \nabla \overline{\mathrm{tr}}\|$ at $\Phi(x_t)$"
    ax_metric.set(yscale="log", xlabel="step $t$", ylabel=metric_label)
    ax_metric.set_title("(b) stationarity metric")
    ax_rec.set(yscale="log", xlabel="step $t$", ylabel=r"$\|UU^\top - M^*\|_F / \|M^*\|_F$ at $\Phi(x_t)$")
    ax_rec.set_title("(c) flatter means closer to the low-rank truth (floor: 1e-8)")
    for ax in (ax_tr, ax_metric, ax_rec):
        ax.legend(fontsize=7)
    rows = [
        [name, int(step), f"{path.trace[k]:.12g}", f"{path.metric[k]:.12g}", f"{recovery[name][k]:.12g}"]
        for name, path in paths.items()
        for k, step in enumerate(path.steps)
    ]
    return _write(plt, fig, out_dir, "sensing", ["method", "step", "trace", "metric", "recovery_error"], rows)


def all_figures(out_dir, *, quick: bool = False, progress: bool = False) -> list[Path]:
    """Every figure, into ``out_dir``; ``quick`` runs a fifth of the steps; ``progress`` reports each run."""
    scale = 5 if quick else 1
    figures = [(example1_figure, 3000), (network_figure, 3000), (batch_figure, 2000), (sensing_figure, 3000)]
    paths = []
    for figure, steps in figures:
        if progress:
            _log(f"{figure.__name__}:")
        paths.append(figure(out_dir, steps=steps // scale, progress=progress))
    return paths
