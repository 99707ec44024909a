"""Fuzzing the public API (issue 11): wrong types, shapes, NaN/inf, extreme magnitudes, odd parameters, the CLI.

Every call goes through :func:`call`, which asserts that only ``ValueError``, ``TypeError``, flatref's own
errors (and ``NotImplementedError`` where a family does not know an answer in closed form) escape, that no
warning is emitted, that every number returned is finite unless its result reports a failure status, and
that no call runs for more than 10 s (a hang guard, not a timing). ``FLATREF_FUZZ_COUNTS=path`` writes
the calls tried and each outcome to a JSON file at the end of the module.
"""

import collections
import json
import math
import os
import signal
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flatref as fr
from flatref import theory
from flatref.cli import main
from flatref.errors import FlatrefError
from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing, TwoLayerNetwork
from flatref.testing import check_derivatives

COUNTS = collections.Counter()
PROBLEMS = [Example1(), LinearRegression.random(3, 5, rng=0), DiagonalLinearNetwork.random(2, 3, rng=0),
            MatrixSensing.random(3, 2, 1, 4, rng=0),
            TwoLayerNetwork(np.linspace(-1.0, 1.0, 6).reshape(3, 2), np.eye(3)[:, :2], 2)]  # fmt: skip
ALLOWED = (ValueError, TypeError, FlatrefError, NotImplementedError)


class Hang(BaseException):
    """Raised by the alarm: a call ran for more than 10 s."""


def _alarm(signum, frame):
    raise Hang


def call(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` under the oracle; return the result (or ``None`` after an allowed error)."""
    name = getattr(fn, "__qualname__", repr(fn))
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result, outcome = fn(*args, **kwargs), "returned"
            except ALLOWED as err:
                result, outcome = None, type(err).__name__
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    reproducer = f"{name}(*{args!r:.300}, **{kwargs!r:.200})"
    assert not caught, f"{reproducer} warned: {caught[0].category.__name__}: {caught[0].message}"
    if outcome == "returned" and not _finite_or_failed(result):
        raise AssertionError(f"{reproducer} returned a non-finite number without a failure status")
    COUNTS[name, "failure status" if getattr(result, "success", True) is False else outcome] += 1
    return result


def _finite_or_failed(value) -> bool:
    if getattr(value, "success", True) is False:
        return True
    if isinstance(value, (float, complex, np.floating, np.complexfloating)):
        return bool(np.isfinite(value))
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or bool(np.all(np.isfinite(value)))
    if isinstance(value, (tuple, list)):
        return all(_finite_or_failed(v) for v in value)
    if isinstance(value, dict):
        return all(_finite_or_failed(v) for v in value.values())
    if hasattr(value, "__dataclass_fields__"):  # the gate ε0 = inf (always perturb) is a documented value
        return all(_finite_or_failed(getattr(value, f)) for f in value.__dataclass_fields__ if f not in ("limit", "eps0"))
    return True


@pytest.fixture(scope="module", autouse=True)
def write_counts():
    yield
    path = os.environ.get("FLATREF_FUZZ_COUNTS")
    if path:
        rows = [{"callable": k[0], "outcome": k[1], "calls": v} for k, v in sorted(COUNTS.items())]
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"calls": sum(COUNTS.values()), "counts": rows}, handle, indent=1)


# ------------------------------------------------------------------------------------------- inputs
SPECIAL = [0.0, -0.0, -1.0, 1e-300, 1e-160, 1e154, 1e300, 2.0**600, math.nan, math.inf, -math.inf]
reals = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(SPECIAL),
                  st.integers(-(10**20), 10**20))  # fmt: skip
junk = st.one_of(st.none(), st.text(max_size=3), st.booleans(), st.just([]), st.just({}), st.just(object()),
                 st.just([["a"], [1.0, 2.0]]), st.just(1 + 2j))  # fmt: skip
valid = st.floats(1e-3, 1.0)
scalars = st.one_of(valid, valid, reals, junk)  # valid values often enough that whole calls go through


def vectors(dim):
    extreme = st.lists(reals, min_size=dim, max_size=dim).map(np.array)
    moderate = st.lists(st.floats(-3, 3), min_size=dim, max_size=dim).map(np.array)
    shapes = st.sampled_from([np.zeros(dim + 1), np.zeros((dim, 1)), np.zeros(0), np.ones((1, dim)), np.float64(1.0)])
    return st.one_of(moderate, moderate, extreme, shapes, junk)


problems = st.sampled_from(PROBLEMS)
FAST_FLOW = {"max_grad_evals": 3000, "stall_evals": 500}


# -------------------------------------------------------------------------------------------- tests
@settings(max_examples=150)
@given(problems, st.data())
def test_problem_methods(problem, data):
    x = data.draw(vectors(problem.dim))
    for method in ("f", "grad", "hess", "third", "trace_hess", "grad_trace_hess", "normal_basis", "project_to_minima"):
        call(getattr(problem, method), x)
    call(problem.hess_vec, x, data.draw(vectors(problem.dim)))
    call(problem.third_contract, x, data.draw(vectors(problem.dim)), data.draw(vectors(problem.dim)))
    call(problem.random_minimum, data.draw(st.one_of(st.integers(-5, 2**70), junk)))


@settings(max_examples=100)
@given(problems, st.data())
def test_flatness_and_geometry(problem, data):
    x = data.draw(vectors(problem.dim))
    for fn in (fr.tr_bar, fr.grad_tr_bar, fr.metric_at_minimum, fr.tangent_projector, fr.normal_basis):
        call(fn, problem, x)
    call(fr.project_tangent, problem, x, data.draw(vectors(problem.dim)))
    call(fr.proj_out, x, data.draw(vectors(problem.dim)))
    call(fr.flatness_report, problem, x, data.draw(scalars), data.draw(scalars), **FAST_FLOW)
    call(fr.flatness_along, problem, data.draw(st.one_of(st.just([x]), junk)), **FAST_FLOW)


@settings(max_examples=50)
@given(problems, st.data())
def test_flows(problem, data):
    x = data.draw(vectors(problem.dim))
    call(fr.limit_map, problem, x, **FAST_FLOW, rtol=data.draw(st.one_of(st.just(1e-9), scalars)))
    call(fr.limit_jacobian, problem, x, data.draw(st.one_of(st.none(), vectors(problem.dim))), max_evals=2000)
    call(fr.limit_flow, problem, x, data.draw(st.one_of(st.just(0.5), scalars)), max_evals=2000, **FAST_FLOW)


@settings(max_examples=100)
@given(problems, st.data())
def test_methods_and_runs(problem, data):
    method = data.draw(st.sampled_from([fr.GD, fr.RS, fr.SA, fr.SAM, fr.LabelNoiseSGD]))
    arity = {fr.GD: 1, fr.RS: 3, fr.SA: 3, fr.SAM: 2, fr.LabelNoiseSGD: 2}[method]
    args = [data.draw(st.one_of(st.floats(1e-3, 0.1), st.floats(1e-3, 0.1), scalars)) for _ in range(arity)]
    rule = call(method, *args)
    x0 = data.draw(vectors(problem.dim))
    steps = data.draw(st.one_of(st.integers(1, 30), st.integers(1, 30), st.just(10**20), scalars))
    rng = data.draw(st.one_of(st.integers(0, 2**64), st.integers(0, 9), st.just(-1), st.just(np.random.SeedSequence(1)),
                              junk))  # fmt: skip
    call(fr.run, problem, rule if rule is not None else args[0], x0, steps=steps, rng=rng)


@settings(max_examples=150)
@given(problems, st.data())
def test_theory(problem, data):
    x, r = data.draw(vectors(problem.dim)), data.draw(scalars)
    call(theory.rs_leading_perturbation, problem, x, r)
    call(theory.sa_leading_perturbation, problem, x, r)
    call(theory.lemma1_bound, problem, x, data.draw(scalars), data.draw(scalars), x, data.draw(scalars))
    call(theory.table1_iterations, data.draw(scalars), data.draw(scalars), data.draw(scalars))
    call(theory.rs_schedule, data.draw(scalars), data.draw(scalars), data.draw(scalars), eps0=data.draw(scalars))
    call(theory.sa_schedule, data.draw(scalars), data.draw(scalars), data.draw(scalars), data.draw(scalars))
    call(theory.table1_exponents, data.draw(st.sampled_from(["RS", "SA", "X"])), data.draw(scalars), data.draw(scalars))
    call(check_derivatives, problem, data.draw(st.one_of(st.none(), vectors(problem.dim))))


@pytest.mark.parametrize(
    "argv",
    [
        "run --problem example1 --method gd --steps 1 --eps -1",
        "run --problem example1 --method gd --steps 1 --eps nan",
        "run --problem example1 --method gd --steps 1 --eps inf",
        "run --problem example1 --method gd --steps 1 --seed -1",
        "run --problem example1 --method gd --steps 1 --plot /no/such/folder/x.png",
        "run --problem example1 --method gd --steps 99999999999999999999",
        "run --problem nothing --method gd",
        "run --problem example1 --method gd --eta x",
        "demo --out README.md",
        "figures --jobs 0",
        "check --problem nothing",
        "nonsense",
    ],
)
def test_the_cli_refuses_bad_arguments_with_exit_code_2(argv, capsys):
    def exits():
        with pytest.raises(SystemExit) as info:
            main(argv.split())
        return info.value.code

    assert call(exits) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err) and err[-1].startswith("flatref")
