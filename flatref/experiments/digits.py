"""The paper's Section-5 experiment at CPU scale: escaping a bad global minimizer of a network on real digits.

Ahn, Jadbabaie & Sra start ResNet-18 on CIFAR-10 at a sharp *bad* global minimizer (100 % train
accuracy, poor test accuracy; Liu et al. 2020, as used by Damian et al. 2021) and show that their
perturbations lower the trace of the Hessian and raise the test accuracy, SA faster than RS and small
batches faster than large ones. Here the same at CPU scale:

- **Data.** scikit-learn's handwritten digits (:func:`flatref.data.load_digits_split`: 256 images to
  train, the other 1,541 to test, pixels ``/16`` centred by the training mean).
- **Model.** A tanh network 64-128-10 (:class:`~flatref.problems.TwoLayerNetwork`, ``d = 9,610``),
  squared loss on one-hot labels, so the minima are the interpolants ``p(x) = y`` (Setting 1).
- **The clean minimizer.** L-BFGS (:func:`scipy.optimize.minimize`, ``L-BFGS-B``) on ``f`` from
  ``initial_point(init_seed)``, then the Gauss–Newton projection onto ``X*``.
- **The bad minimizer** (Liu et al.'s construction). First L-BFGS, for ``noisy_iterations``
  iterations from the same start, on the union of the training images and ``copies`` copies of them
  with Gaussian noise of standard deviation ``noise`` added to the pixels, *every* image (the
  originals too) with a label drawn uniformly from 0 … 9; then L-BFGS on the true training labels
  from there, and the projection. The network memorizes the random labels around every training
  image, and the second fit repairs only the training images themselves: the result interpolates
  the training set but classifies test images worse, and is sharper. ``noise = 0.1`` is about
  0.45 times the pixels' mean standard deviation (0.23); larger noise puts the random labels far
  from the data and leaves the test accuracy higher (σ = 0.2: 85 %, σ = 0.1: 65 %, with the clean
  minimizer at 95 %).

Both minimizers are deterministic from the settings (:class:`DigitsSetup`) and are kept on disk
(:func:`minimizers`), keyed by every setting and the construction's version.

**The runs.** From the bad minimizer: GD, RS, SA at batch sizes 1, 16, 64 and full, SAM at batch 16
and label-noise SGD (:func:`escape_methods`), each for ``steps`` steps through
:func:`~flatref.experiments.parallel.parallel_map`. At each recorded step the train loss is read at
the iterate ``x_t``, and the train and test accuracy and ``tr ∇²f`` at ``Φ(x_t)`` (:func:`read_at_limit`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import __version__
from .._validation import as_int, as_positive
from ..algorithms import GD, RS, SA, SAM, LabelNoiseSGD, StepRule
from ..data import DigitsSplit, load_digits_split, one_hot
from ..driver import run
from ..flow import LimitPoint, limit_map
from ..problems import TwoLayerNetwork
from .parallel import parallel_map

#: The version of the minimizers' construction: part of the cache key, raised whenever the
#: construction changes what it returns.
CONSTRUCTION_VERSION = 1


# ------------------------------------------------------------------- the problem
# -------------------------------------------------------------- the settings
@dataclass(frozen=True)
class DigitsSetup:
    """Everything the two minimizers depend on (the cache key is made of these and the construction's version).

    Attributes:
        n_train: training images (:func:`~flatref.data.load_digits_split`).
        hidden: the network's width ``h`` (``d = 75h + 10`` on 64 pixels and 10 classes).
        noise: the standard deviation of the Gaussian noise on the copies' pixels (scaled units).
        copies: the noisy copies of the training images in the bad minimizer's first fit.
        noisy_iterations: the L-BFGS iterations of that first fit.
        split_seed: the seed of the train/test split.
        init_seed: the seed of both fits' starting point (``initial_point``).
        noise_seed: the seed of the copies' noise and of the random labels.

    Examples:
        >>> DigitsSetup()
        DigitsSetup(n_train=256, hidden=128, noise=0.1, copies=6, noisy_iterations=1500, split_seed=0, init_seed=0, noise_seed=1)
        >>> DigitsSetup(hidden=0)
        Traceback (most recent call last):
        ...
        ValueError: hidden must be >= 1, got 0
    """

    n_train: int = 256
    hidden: int = 128
    noise: float = 0.1
    copies: int = 6
    noisy_iterations: int = 1500
    split_seed: int = 0
    init_seed: int = 0
    noise_seed: int = 1

    def __post_init__(self):
        for name, minimum in (("n_train", 1), ("hidden", 1), ("copies", 1), ("noisy_iterations", 1),
                              ("split_seed", 0), ("init_seed", 0), ("noise_seed", 0)):  # fmt: skip
            object.__setattr__(self, name, as_int(getattr(self, name), name, minimum=minimum))
        object.__setattr__(self, "noise", as_positive(self.noise, "noise"))

    def key(self) -> str:
        """A digest of the settings, the construction's version, its fits' tolerance and flatref's version: the
        cache file's name.

        Examples:
            >>> DigitsSetup().key() == DigitsSetup().key(), DigitsSetup().key() == DigitsSetup(noise=0.2).key()
            (True, False)
        """
        config = {"setup": dataclasses.asdict(self), "construction": CONSTRUCTION_VERSION, "version": __version__,
                  "fits": [FIT_GTOL, FIT_ITERATIONS]}  # fmt: skip
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:24]


#: The experiment's settings.
SETUP = DigitsSetup()


@lru_cache(maxsize=8)
def digits_problem(setup: DigitsSetup = SETUP) -> tuple[TwoLayerNetwork, DigitsSplit]:
    """The network's training loss on ``setup``'s training images (one-hot labels), and the split.

    Examples:
        >>> problem, split = digits_problem()                     # doctest: +SKIP
        >>> problem.dim, problem.n_samples, split.n_test          # doctest: +SKIP
        (9610, 256, 1541)
    """
    split = load_digits_split(setup.n_train, setup.split_seed)
    return TwoLayerNetwork(split.train_inputs, one_hot(split.train_labels), setup.hidden), split


@contextlib.contextmanager
def one_blas_thread():
    """Limit BLAS to one thread inside the block (with threadpoolctl, which comes with scikit-learn).

    The network's products are small: on 2 busy cores a two-thread BLAS made a gradient 10 to 30
    times slower than one thread, and one thread also fixes the order of every sum (the same bits
    whether a run is computed here or in a worker, where joblib limits threads the same way).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# -------------------------------------------------------------- the minimizers
@dataclass(frozen=True)
class Minimizer:
    """A global minimizer of the training loss and what it scores.

    Attributes:
        name: ``"clean"`` or ``"bad"``.
        x: the point, on ``X*`` (``p(x) = y`` to rounding).
        train_loss, grad_norm: ``f(x)`` and ``‖∇f(x)‖``.
        train_acc, test_acc: the fraction of training and test images whose largest output is their class.
        trace: ``tr ∇²f(x)``.
        iterations: the L-BFGS iterations of each fit.
        seconds: the time the construction took (where it was built, not loaded).
    """

    name: str
    x: np.ndarray = field(repr=False, compare=False)
    train_loss: float
    grad_norm: float
    train_acc: float
    test_acc: float
    trace: float
    iterations: tuple
    seconds: float


def accuracy(problem: TwoLayerNetwork, x, inputs, labels) -> float:
    """The fraction of ``inputs`` whose largest output is its label."""
    return float(np.mean(np.argmax(problem.predict(x, inputs), axis=1) == labels))


def _lbfgs(value_and_grad, x0, max_iter: int, gtol: float) -> tuple[np.ndarray, int]:
    from scipy.optimize import minimize

    options = {"maxiter": max_iter, "maxfun": 2 * max_iter, "gtol": gtol, "ftol": 0.0, "maxcor": 20}
    result = minimize(value_and_grad, x0, jac=True, method="L-BFGS-B", options=options)
    return result.x, int(result.nit)


#: The fits to the true labels stop at ``‖∇f‖_∞ ≤ FIT_GTOL`` (``f`` about ``1e-14``), and the
#: projection takes them onto ``X*``.
FIT_GTOL = 1e-9
FIT_ITERATIONS = 20_000


def _score(name, problem, split, x, iterations, seconds) -> Minimizer:
    value, grad = problem.value_and_grad(x)
    return Minimizer(name, x, float(value), float(np.linalg.norm(grad)),
                     accuracy(problem, x, split.train_inputs, split.train_labels),
                     accuracy(problem, x, split.test_inputs, split.test_labels), float(problem.trace_hess(x)),
                     tuple(iterations), seconds)  # fmt: skip


def clean_minimizer(setup: DigitsSetup = SETUP) -> Minimizer:
    """The true labels fitted by L-BFGS from ``initial_point(init_seed)``, then projected onto ``X*``."""
    problem, split = digits_problem(setup)
    start = time.perf_counter()
    with one_blas_thread():
        x, its = _lbfgs(problem.value_and_grad, problem.initial_point(setup.init_seed), FIT_ITERATIONS, FIT_GTOL)
        x = problem.project_to_minima(x)
    return _score("clean", problem, split, x, (its,), time.perf_counter() - start)


def noisy_training_set(setup: DigitsSetup = SETUP) -> tuple[np.ndarray, np.ndarray]:
    """The bad minimizer's first data set: the training images and ``copies`` noisy copies, random labels.

    Examples:
        >>> inputs, labels = noisy_training_set(DigitsSetup(n_train=64))   # doctest: +SKIP
        >>> inputs.shape, labels.shape                                      # doctest: +SKIP
        ((448, 64), (448,))
    """
    _, split = digits_problem(setup)
    rng = np.random.default_rng(setup.noise_seed)
    base = split.train_inputs
    copies = [base + setup.noise * rng.standard_normal(base.shape) for _ in range(setup.copies)]
    inputs = np.concatenate([base, *copies])
    return inputs, rng.integers(0, 10, size=len(inputs))


def bad_minimizer(setup: DigitsSetup = SETUP) -> Minimizer:
    """Liu et al.'s bad minimizer: random labels on noisy copies first, then the true labels, then projected."""
    problem, split = digits_problem(setup)
    inputs, labels = noisy_training_set(setup)
    noisy = TwoLayerNetwork(inputs, one_hot(labels), setup.hidden)
    start = time.perf_counter()
    with one_blas_thread():
        x, first = _lbfgs(noisy.value_and_grad, problem.initial_point(setup.init_seed), setup.noisy_iterations, 0.0)
        x, second = _lbfgs(problem.value_and_grad, x, FIT_ITERATIONS, FIT_GTOL)
        x = problem.project_to_minima(x)
    return _score("bad", problem, split, x, (first, second), time.perf_counter() - start)


def default_cache() -> Path:
    """``$FLATREF_CACHE/digits`` if that variable is set, else ``~/.cache/flatref/digits``."""
    root = os.environ.get("FLATREF_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "flatref") / "digits"


def cache_path(setup: DigitsSetup = SETUP, cache=None) -> Path:
    """The file that keeps ``setup``'s minimizers in the folder ``cache`` (default :func:`default_cache`).

    Examples:
        >>> cache_path(DigitsSetup(), "/tmp/c").name == f"minimizers-{DigitsSetup().key()}.npz"
        True
    """
    return Path(default_cache() if cache is None else cache) / f"minimizers-{setup.key()}.npz"


_FIELDS = ("train_loss", "grad_norm", "train_acc", "test_acc", "trace", "iterations", "seconds")


def _save(path: Path, setup: DigitsSetup, found: dict) -> None:
    meta = {"setup": dataclasses.asdict(setup), "construction": CONSTRUCTION_VERSION, "version": __version__,
            **{name: {f: getattr(m, f) for f in _FIELDS} for name, m in found.items()}}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, clean=found["clean"].x, bad=found["bad"].x, meta=np.array(json.dumps(meta)))
    os.replace(tmp, path)  # atomic: an interrupted build never leaves half a file


def _load(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        xs = {name: np.array(data[name]) for name in ("clean", "bad")}
    return {name: Minimizer(name, xs[name], **{f: (tuple(meta[name][f]) if f == "iterations" else meta[name][f])
                                               for f in _FIELDS}) for name in xs}  # fmt: skip


def minimizers(setup: DigitsSetup = SETUP, *, cache=None) -> dict[str, Minimizer]:
    """``{"clean": …, "bad": …}``: loaded from the cache if there, else built (about a minute) and stored.

    Args:
        setup: the settings.
        cache: the folder of the cache (default :func:`default_cache`), or ``False`` for none.

    Examples:
        >>> found = minimizers()                                          # doctest: +SKIP
        >>> found["bad"].train_acc, found["bad"].test_acc < found["clean"].test_acc - 0.15   # doctest: +SKIP
        (1.0, True)
    """
    path = None if cache is False else cache_path(setup, cache)
    if path is not None and path.exists():
        return _load(path)
    found = {"clean": clean_minimizer(setup), "bad": bad_minimizer(setup)}
    if path is not None:
        _save(path, setup, found)
    return found


# ------------------------------------------------------------- reading at Φ
#: The options of :func:`~flatref.flow.limit_map` for the reads at ``Φ``: see :func:`read_at_limit`.
PHI_OPTIONS = {"gtol": 1e-3, "finish_radius": 10.0, "finish_max_iter": 20}


@dataclass(frozen=True)
class LimitRead:
    """What is read at ``Φ(x)``: the limit point, its accuracies and trace, and the cost of the read."""

    limit: LimitPoint = field(repr=False)
    train_acc: float | None
    test_acc: float | None
    trace: float | None
    seconds: float


def read_at_limit(problem: TwoLayerNetwork, split: DigitsSplit, x) -> LimitRead:
    """Train and test accuracy and ``tr ∇²f`` at ``Φ(x)``, the limit of the gradient flow from ``x``.

    The one place where the experiment computes ``Φ``: :func:`~flatref.flow.limit_map` with
    :data:`PHI_OPTIONS`, a looser stop and a longer finish than its defaults. Measured from the
    iterates after 1,000 steps (one core):

    - *Defaults* (``gtol = 1e-6``, finish within ``1e-5``): from RS, SA at batch 16 and SA at batch 1
      the flow ran 15,842, 21,573 and 20,364 gradients (8 to 12 s) and ended ``stalled`` at
      ``‖∇f‖ = 1e-6``, ``9e-5`` and ``4e-4``, so every read would fail. The Hessian's non-zero
      eigenvalues at the bad minimizer run from ``3e-4`` to 18: the explicit flow crawls along the
      slow normal directions, and at ``d = 9,610`` (above ``DENSE_MAX_DIM``) it cannot switch to BDF.
    - *Here* the flow runs until ``‖∇f‖ ≤ 1e-3`` and the Gauss–Newton finish, which lands
      ``O(dist²)`` from the flow's limit, is accepted from up to 10 away: 90, 3,677 and 11,560
      gradients (1.4, 4.6 and 10.9 s), all ``converged``, finish steps 0.002, 0.36 and 0.71, traces
      835.92, 764.13 and 644.11 (835.92, 763.95 and 639.93 where the default flow stalled).
    - *Against a long flow* (gradient descent at ``η = 0.05`` for 50,000 steps, flow time 2,500,
      then the projection, whose step was down to 0.11 and 0.33): SA at batch 1 644.34, SAM 581.60;
      the reads here are 0.04 % and 0.3 % below (with ``gtol = 1e-2``: 0.3 % and 1.2 % below, at a
      tenth of the cost). The test accuracy agreed to 0.2 points.

    A failed flow gives ``None`` values.
    """
    start = time.perf_counter()
    limit = limit_map(problem, x, **PHI_OPTIONS)
    if not limit.success:
        return LimitRead(limit, None, None, None, time.perf_counter() - start)
    z = limit.x
    train = accuracy(problem, z, split.train_inputs, split.train_labels)
    test = accuracy(problem, z, split.test_inputs, split.test_labels)
    return LimitRead(limit, train, test, float(problem.trace_hess(z)), time.perf_counter() - start)


# ------------------------------------------------------------------- the runs
#: The prototype's settings: ``η = 0.05`` for every method (``ηλ_max = 0.84`` at the bad minimizer),
#: RS and SA at ``η′ = 0.002``, ``ρ = 1`` (SA at batch 1 diverged at ``η′ = 0.05``: ``η′`` must stay
#: below about one over a sample's curvature ``‖J_i‖²``, up to about 80 here).
ETA, ETA_PRIME, RHO = 0.05, 0.002, 1.0
#: SAM at batch 16 with ``ρ = 0.5``; label-noise SGD with ``σ = 0.5`` at batch 16 (at batch 1, ``η = 0.05``
#: is above ``2/λ_max`` of a single sample's Hessian and the run diverges at once).
SAM_RHO, SAM_BATCH = 0.5, 16
LABEL_SIGMA, LABEL_BATCH = 0.5, 16
SA_BATCHES = (1, 16, 64, None)

#: Steps and records of the full experiment and of ``--quick``.
FULL_STEPS, FULL_RECORDS = 3000, 15
QUICK_STEPS, QUICK_RECORDS = 1000, 5


def escape_methods(n_samples: int) -> list[tuple[str, str, StepRule]]:
    """``(method, batch, rule)`` for every run: ``batch`` is an integer as text, or ``"full"``.

    Examples:
        >>> [(m, b) for m, b, _ in escape_methods(256)]
        [('gd', 'full'), ('rs', 'full'), ('sa', '1'), ('sa', '16'), ('sa', '64'), ('sa', 'full'), ('sam', '16'), ('labelnoise', '16')]
        >>> [b for m, b, _ in escape_methods(64) if m == "sa"]          # SA at batch 64 of 64 is the full batch
        ['1', '16', 'full']
    """
    out = [("gd", "full", GD(ETA)), ("rs", "full", RS(ETA, ETA_PRIME, RHO))]
    for b in (b for b in SA_BATCHES if b is None or b < n_samples):  # a batch of all samples is the full batch
        size = n_samples if b is None else b
        out.append(("sa", "full" if b is None else str(b), SA(ETA, ETA_PRIME, RHO, batch_size=size)))
    out.append(("sam", str(min(SAM_BATCH, n_samples)), SAM(ETA, SAM_RHO, batch_size=min(SAM_BATCH, n_samples))))
    out.append(("labelnoise", str(min(LABEL_BATCH, n_samples)),
                LabelNoiseSGD(ETA, LABEL_SIGMA, batch_size=min(LABEL_BATCH, n_samples))))  # fmt: skip
    return out


#: The columns of ``digits.csv``.
COLUMNS = ("method", "batch_size", "step", "train_loss", "train_acc", "test_acc", "trace_phi")


@dataclass(frozen=True)
class Row:
    """One recorded step of one run (or a minimizer, at step 0): the CSV's :data:`COLUMNS`, and the read's cost.

    ``train_loss`` is ``f(x_t)`` at the iterate; ``train_acc``, ``test_acc`` and ``trace_phi`` are read at
    ``Φ(x_t)`` (``None`` where the flow failed: ``phi_status`` says how).
    """

    method: str
    batch_size: str
    step: int
    train_loss: float
    train_acc: float | None
    test_acc: float | None
    trace_phi: float | None
    phi_status: str = field(default="converged", compare=False)
    phi_seconds: float = field(default=0.0, compare=False)
    phi_grads: int = field(default=0, compare=False)


@dataclass(frozen=True)
class EscapeTask:
    """One run: the setup, the method's name, batch and rule, the start, the steps, the records and the seed."""

    setup: DigitsSetup
    method: str
    batch_size: str
    rule: StepRule
    start: np.ndarray = field(repr=False, compare=False)
    steps: int
    record_every: int
    seed: int


def escape_run(task: EscapeTask) -> list[Row]:
    """Run ``task`` and read every recorded iterate at ``Φ`` (:func:`read_at_limit`); one :class:`Row` per record."""
    problem, split = digits_problem(task.setup)
    with one_blas_thread():
        trajectory = run(problem, task.rule, task.start, steps=task.steps, rng=task.seed,
                         record_every=task.record_every)  # fmt: skip
        rows = []
        for step, x, f in zip(trajectory.record_steps, trajectory.xs, trajectory.f):
            read = read_at_limit(problem, split, x)
            rows.append(Row(task.method, task.batch_size, int(step), float(f), read.train_acc, read.test_acc,
                            read.trace, str(read.limit.status), read.seconds, read.limit.n_grad))  # fmt: skip
    return rows


def minimizer_rows(found: dict[str, Minimizer]) -> list[Row]:
    """The rows ``method = clean`` and ``bad`` at step 0 (batch ``full``)."""
    return [Row(name, "full", 0, m.train_loss, m.train_acc, m.test_acc, m.trace, phi_status="converged")
            for name, m in found.items()]  # fmt: skip


@dataclass(frozen=True)
class Escape:
    """What :func:`escape_experiment` computed: the minimizers, every row, and the rank correlation.

    ``spearman`` is Spearman's ``ρ`` between ``trace_phi`` and ``test_acc`` over the last recorded step
    of every run (GD, RS, SA at each batch, SAM and label noise).
    """

    setup: DigitsSetup
    minimizers: dict = field(repr=False)
    rows: list = field(repr=False)
    steps: int
    spearman: float


def final_rows(rows: list[Row]) -> list[Row]:
    """The last recorded row of each run (not the minimizers' rows)."""
    last = {}
    for row in rows:
        if row.method not in ("clean", "bad"):
            last[row.method, row.batch_size] = row
    return list(last.values())


def spearman(rows: list[Row]) -> float:
    """Spearman's rank correlation of ``trace_phi`` and ``test_acc`` over ``rows`` with both read (NaN if fewer than 3)."""
    from scipy.stats import spearmanr

    pairs = [(r.trace_phi, r.test_acc) for r in rows if r.trace_phi is not None and r.test_acc is not None]
    if len(pairs) < 3:
        return math.nan
    trace, acc = np.array(pairs).T
    return float(spearmanr(trace, acc).statistic)


def escape_tasks(setup: DigitsSetup, start, *, steps: int, records: int) -> list[EscapeTask]:
    """One :class:`EscapeTask` per method of :func:`escape_methods`, seeded by its position."""
    steps = as_int(steps, "steps", minimum=1)
    record_every = max(1, steps // as_int(records, "records", minimum=1))
    start = np.asarray(start, dtype=float)
    return [EscapeTask(setup, method, batch, rule, start, steps, record_every, seed)
            for seed, (method, batch, rule) in enumerate(escape_methods(setup.n_train))]  # fmt: skip


def escape_experiment(*, quick: bool = False, setup: DigitsSetup = SETUP, steps: int | None = None,
                      records: int | None = None, jobs: int | None = None, cache=None,
                      on_done=None) -> Escape:  # fmt: skip
    """The minimizers (from the cache, or built) and every run from the bad one, through joblib.

    Args:
        quick: :data:`QUICK_STEPS` steps and :data:`QUICK_RECORDS` records per run instead of
            :data:`FULL_STEPS` and :data:`FULL_RECORDS` (``steps`` and ``records`` override either).
        setup: the settings of the minimizers.
        jobs: worker processes (default: the CPUs).
        cache: the minimizers' cache folder (see :func:`minimizers`).
        on_done: called as each run finishes (see :func:`~flatref.experiments.parallel.parallel_map`).
    """
    steps = steps if steps is not None else (QUICK_STEPS if quick else FULL_STEPS)
    records = records if records is not None else (QUICK_RECORDS if quick else FULL_RECORDS)
    found = minimizers(setup, cache=cache)
    tasks = escape_tasks(setup, found["bad"].x, steps=steps, records=records)
    runs = parallel_map(escape_run, tasks, jobs=jobs, on_done=on_done)
    rows = minimizer_rows(found) + [row for rows in runs for row in rows]
    return Escape(setup, found, rows, steps, spearman(final_rows(rows)))
