"""The command line: ``python -m flatref demo``, ``figures``, ``rates``, ``escape``, ``run`` and ``check`` (``--help`` on each).

argparse only: each command calls the experiments and report layers and prints what they return.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path

from .algorithms import GD, RS, SA, SAM, LabelNoiseSGD
from .data import import_sklearn_digits
from .driver import MAX_STEPS, run
from .errors import MissingExtraError
from .experiments.parallel import dask_backend
from .experiments.recipes import demo_escapes
from .experiments.registry import CHECKS, RUN_CHOICES, make
from .flatness import flatness_along, flatness_report
from .report.digits import escape, summary
from .report.figures import run_figure
from .report.jobs import all_figures, draw, rates
from .report.progress import RunProgress
from .report.tables import demo_table
from .spectrum import top_eigenvalue_step
from .testing import check_derivatives


def demo(args) -> int:
    """Escape sharp minima with RS and SA (GD for contrast), print how flat each run ends, draw Example 1."""
    print("Escaping sharp minima: tr̄ at the limit Φ of the last iterate, the raw trace's gap to the")
    print("flattest minimum, the stationarity metric |∂Φ ∇tr̄| and whether the end is (ε, √ε)-flat.\n")
    start_time = time.perf_counter()
    print("\n".join(demo_table(demo_escapes())))
    print(f"\n{time.perf_counter() - start_time:.1f} s. tr̄ divides the trace by d, so on the network the")
    print("metric is small even at the sharp start; its trace gap is the readable number (docs/theory.md §6).")
    print(f"\nwrote {draw('example1', args.out, jobs=1)} and its data, example1.csv")
    return 0


def _backend(args):
    """A dask cluster for the block when ``--dask ADDRESS`` was given, else nothing."""
    return dask_backend(args.dask) if getattr(args, "dask", None) else contextlib.nullcontext()


def rates_command(args) -> int:
    """Measure the iterations RS and SA need against Table 1's bounds; write rates.csv, .md and .png."""
    start = time.perf_counter()
    print(f"measuring the {'quick' if args.quick else 'full'} grid (progress on stderr) ...", flush=True)
    with _backend(args):
        result = rates(args.out, quick=args.quick, jobs=args.jobs, cache=args.cache, progress=True)
    print(result.table)
    for path in result.paths:
        print(f"wrote {path}")
    print(f"{result.computed} runs computed, {result.cached} from the cache; {time.perf_counter() - start:.0f} s")
    return 0


def escape_command(args) -> int:
    """Escape a bad minimizer of a tanh network on handwritten digits (the paper's Section 5); write digits.csv, .png."""
    try:
        import_sklearn_digits()
    except MissingExtraError as err:
        print(f"flatref escape: error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    print(f"the {'quick' if args.quick else 'full'} escape runs from the bad minimizer (progress on stderr) ...",
          flush=True)  # fmt: skip
    with _backend(args):
        result = escape(args.out, quick=args.quick, jobs=args.jobs, cache=args.cache, progress=True)
    print("\n".join(summary(result)))
    out = Path(args.out)
    print(f"wrote {out / 'digits.csv'} and {out / 'digits.png'}; {time.perf_counter() - start:.0f} s")
    return 0


def figures(args) -> int:
    """Draw every figure (PNG and CSV) into a folder."""
    with _backend(args):
        paths = all_figures(args.out, quick=args.quick, jobs=args.jobs, progress=True)
    for path in paths:
        print(f"wrote {path}")
    return 0


def make_method(args, eta):
    """The step rule named by ``args.method`` with the parameters given on the command line."""
    batch = {"batch_size": args.batch_size} if args.batch_size is not None else {}
    return {
        "gd": lambda: GD(eta),
        "rs": lambda: RS(eta, args.eta_prime, args.rho, args.eps0),
        "sa": lambda: SA(eta, args.eta_prime, args.rho, args.eps0, **batch),
        "sam": lambda: SAM(eta, args.rho, **batch),
        "labelnoise": lambda: LabelNoiseSGD(eta, args.sigma, **batch),
    }[args.method]()


def run_one(args) -> int:
    """Run one method on one problem from its sharp minimum and summarize how flat it ends."""
    problem = make(args.problem, args.seed)
    try:
        x0 = problem.sharp_minimum()
    except NotImplementedError:  # every minimum of linear regression is equally flat
        x0 = problem.random_minimum(args.seed)
    eta = args.eta if args.eta is not None else top_eigenvalue_step(problem, x0)
    try:
        method = make_method(args, eta)
        progress = RunProgress(problem, type(method).__name__, args.steps)
        trajectory = run(problem, method, x0, steps=args.steps, rng=args.seed, record_every=max(1, args.steps // 50),
                         callback=progress)  # fmt: skip
    except (TypeError, ValueError) as err:
        print(f"flatref run: error: {err}", file=sys.stderr)
        return 2
    start, end = (flatness_report(problem, x, args.eps, args.eps**0.5) for x in (x0, trajectory.x_last))
    _summarize(problem, method, trajectory, start, end, args.eps)
    if args.plot:
        print(f"wrote {run_figure(problem, trajectory, flatness_along(problem, trajectory), args.plot)}")
    return 0


def _summarize(problem, method, trajectory, start, end, eps) -> None:
    print(f"{problem!r}, {method!r}")
    print(f"{trajectory.status} after {trajectory.steps} steps ({trajectory.grad_evals:.0f} gradient evaluations)")
    f, g = trajectory.f, trajectory.grad_norm
    print(f"f: {f[0]:.3e} → {f[-1]:.3e};  |∇f|: {g[0]:.2e} → {g[-1]:.2e}")
    if end.limit.success:
        gap = "" if end.trace_gap is None else f";  trace gap {start.trace_gap:.3g} → {end.trace_gap:.3g}"
        print(f"tr̄(Φ): {start.tr_bar_star:.4g} → {end.tr_bar_star:.4g}{gap};  metric {end.metric:.2e}")
    print(f"({eps:g}, {eps**0.5:.3g})-flat: {'yes' if end.is_flat else 'no'} ({end.limit.status})")


def check(args) -> int:
    """Check the exact derivatives of every family against Taylor remainders and finite differences."""
    ok = True
    for name, x in CHECKS.items():
        problem = make(name)
        for label, point in (("a random point", x), ("a point of the minima set", problem.random_minimum(0))):
            result = check_derivatives(problem, point, rng=0)
            print(f"[{label}] {result}\n")
            ok &= result.passed
    print("all derivative checks passed" if ok else "SOME DERIVATIVE CHECKS FAILED")
    return 0 if ok else 1


# ------------------------------------------------------------ argument types
def _count(minimum: int, maximum: int | None = None):
    """An argparse type: an integer in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum:,}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _real(*, positive: bool, allow_inf: bool = False):
    """An argparse type: a finite real number ``> 0`` (``positive``) or ``≥ 0``; ``inf`` if ``allow_inf``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        finite = math.isfinite(value) or (allow_inf and value == math.inf)
        if not finite or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be {'positive' if positive else 'non-negative'} and finite, "
                                             f"got {text}")  # fmt: skip
        return value

    return parse


def _folder(text: str) -> str:
    """An argparse type: a folder that exists or can be made (not a file, under a writable parent)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    parent = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write into {str(parent)!r}")
    return text


def _png(text: str) -> str:
    """An argparse type: a file path whose folder exists and is writable."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: its folder does not exist or is not writable")
    return text


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line on stderr and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_run_arguments(command):
    command.add_argument("--problem", required=True, choices=RUN_CHOICES, help="the test problem")
    command.add_argument("--method", required=True, choices=["gd", "rs", "sa", "sam", "labelnoise"])
    positive, nonnegative = _real(positive=True), _real(positive=False)
    command.add_argument("--steps", type=_count(1, MAX_STEPS), default=2000, help="number of steps (default 2000)")
    command.add_argument("--eta", type=positive, help="step size η (default 1/λ_max at the start)")
    command.add_argument("--eta-prime", type=positive, default=0.05, help="perturbation step η′ (default 0.05)")
    command.add_argument("--rho", type=nonnegative, default=0.1, help="radius ρ (default 0.1)")
    command.add_argument("--eps0", type=_real(positive=True, allow_inf=True), default=math.inf,
                         help="gate ε0 (default ∞: always perturb)")
    command.add_argument("--batch-size", type=_count(1), help="batch size for SA, SAM, label noise")
    command.add_argument("--sigma", type=nonnegative, default=0.1, help="label noise σ (default 0.1)")
    command.add_argument("--eps", type=positive, default=0.02, help="ε of the (ε, √ε)-flat test (default 0.02)")
    command.add_argument("--seed", type=_count(0), default=0, help="random seed (default 0)")
    command.add_argument("--plot", metavar="PNG", type=_png, help="also draw f and tr̄(Φ) along the run into this file")


def add_sweep_arguments(command):
    command.add_argument("--jobs", type=_count(1), help="worker processes (default: the CPUs)")
    command.add_argument("--dask", metavar="ADDRESS",
                         help="run on the dask scheduler at ADDRESS, e.g. tcp://10.0.0.5:8786 (needs flatref[dask])")


def main(argv=None) -> int:
    parser = _Parser(prog="flatref", description="flatref: flat minima, exactly.")
    commands = parser.add_subparsers(dest="command", required=True)
    subcommands = (("demo", demo), ("figures", figures), ("rates", rates_command), ("escape", escape_command),
                   ("run", run_one), ("check", check))  # fmt: skip
    for name, fun in subcommands:
        doc = fun.__doc__.splitlines()[0]
        command = commands.add_parser(name, help=doc, description=doc)
        command.set_defaults(run=fun)
        if name in ("demo", "figures", "rates", "escape"):
            command.add_argument("--out", type=_folder, default="figures",
                                 help="folder for the figures (default: figures)")
        if name == "figures":
            command.add_argument("--quick", action="store_true", help="a fifth of the steps, for a quick look")
            add_sweep_arguments(command)
        if name == "rates":
            command.add_argument("--quick", action="store_true", help="a small grid (under a minute), as in the tests")
            command.add_argument("--cache", metavar="DIR", type=_folder,
                                 help="keep finished runs in DIR; a rerun skips them")
            add_sweep_arguments(command)
        if name == "escape":
            command.add_argument("--quick", action="store_true",
                                 help="a third of the steps and five records per run (under 5 minutes on 2 cores)")
            command.add_argument("--cache", metavar="DIR", type=_folder,
                                 help="keep the two minimizers in DIR (default $FLATREF_CACHE/digits or "
                                      "~/.cache/flatref/digits)")  # fmt: skip
            add_sweep_arguments(command)
        if name == "run":
            add_run_arguments(command)
    args = parser.parse_args(argv)
    return args.run(args)
