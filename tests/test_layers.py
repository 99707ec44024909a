"""The architecture as a test: the core never imports the layers above it, prints nothing, and keeps
its functions short."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flatref"
UPPER = ("flatref.experiments", "flatref.report", "flatref.cli", "flatref.__main__", "matplotlib")


def _core_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts[0] not in ("experiments", "report", "cli.py", "__main__.py"):
            yield path


def _imported(path: Path):
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = ".".join(("flatref",) + path.relative_to(PACKAGE).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, (base, node.module)))
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


CORE = list(_core_modules())


def test_the_core_is_found():
    names = {p.name for p in CORE}
    assert {"flow.py", "driver.py", "geometry.py", "spectrum.py", "status.py", "base.py"} <= names


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_never_imports_an_upper_layer_or_matplotlib(path):
    bad = [name for name in _imported(path) if name.startswith(UPPER)]
    assert not bad, f"{path.name} imports {bad}: data flows one way, from the core up"


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_prints_nothing(path):
    calls = [n.lineno for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]  # fmt: skip
    assert not calls, f"{path.name} calls print on lines {calls}: pass a callback instead"


def _body_lines(node) -> int:
    """Lines of a function after its docstring."""
    body = node.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        if len(body) == 1:
            return 0
        first = body[1]
    return node.end_lineno - first.lineno + 1


def test_no_core_function_is_longer_than_40_lines():
    long = []
    for path in CORE:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > 40:
                long.append(f"{path.name}:{node.lineno} {node.name} ({_body_lines(node)} lines)")
    assert not long, long


#: The methods a problem implements for itself; other modules go through the public ones or ``unchecked``.
PRIVATE = {"_f", "_grad", "_hess", "_hess_vec", "_third", "_third_contract", "_trace_hess", "_grad_trace_hess",
           "_outputs", "_output_jacobian", "_output_hessians", "_output_thirds", "_sample_grad", "_point",
           "_indices", "_y"}  # fmt: skip


#: Modules outside ``problems/`` that define problems (and so implement their private methods).
DEFINES_PROBLEMS = {"autodiff.py"}


def test_no_module_calls_a_problem_s_private_methods_from_outside_the_problems_package():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "problems" in path.relative_to(PACKAGE).parts or path.relative_to(PACKAGE).as_posix() in DEFINES_PROBLEMS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert not offenders, offenders


def test_every_function_that_takes_a_problem_names_it_when_it_is_not_one():
    import numpy as np

    import flatref as fr
    from flatref import spectrum, theory
    from flatref.experiments.passages import first_hits
    from flatref.testing import check_derivatives

    x = np.ones(2)
    calls = [
        lambda p: fr.tr_bar(p, x), lambda p: fr.grad_tr_bar(p, x), lambda p: fr.metric_at_minimum(p, x),
        lambda p: fr.stationarity_metric(p, x), lambda p: fr.flatness_report(p, x, 0.1, 0.1),
        lambda p: fr.flatness_along(p, [x]), lambda p: fr.flattest_trace(p), lambda p: fr.limit_map(p, x),
        lambda p: fr.limit_jacobian(p, x), lambda p: fr.normal_basis(p, x), lambda p: fr.tangent_projector(p, x),
        lambda p: fr.project_tangent(p, x, x), lambda p: spectrum.extreme_eigenvalues(p, x),
        lambda p: spectrum.top_eigenvalue_step(p, x), lambda p: theory.rs_leading_perturbation(p, x, 0.1),
        lambda p: theory.sa_leading_perturbation(p, x, 0.1), lambda p: theory.lemma1_bound(p, x, 0.1, 0.1, x, 1.0),
        lambda p: theory.lemma2_trace_change(p, x, 0.1, 0.1), lambda p: check_derivatives(p, x),
        lambda p: fr.run(p, fr.GD(0.1), x, steps=1), lambda p: first_hits(p, fr.GD(0.1), x, 0.1, max_steps=1),
    ]  # fmt: skip
    for call in calls:
        for not_a_problem in (None, "example1", fr.Example1):
            with pytest.raises(TypeError, match="problem must be a flatref Problem"):
                call(not_a_problem)


def test_bad_arguments_found_by_fuzzing_get_named_errors():
    """Reproducers from issue 11: each raised numpy's or Python's own error before."""
    import math

    import numpy as np

    import flatref as fr
    from flatref.problems import DiagonalLinearNetwork, LinearRegression
    from flatref.testing import small_problem

    ex1 = fr.Example1()
    with pytest.raises(ValueError, match="u and v must be vectors of one length"):
        fr.proj_out(np.ones(2), np.ones(3))
    with pytest.raises(TypeError, match="method must be one of"):
        fr.limit_map(ex1, [2.0, 0.6], method=[])
    with pytest.raises(ValueError, match="method must be one of"):
        fr.limit_jacobian(ex1, [2.0, 0.6], method="Euler")
    with pytest.raises(ValueError, match=r"x must have shape \(8,\)"):
        DiagonalLinearNetwork.random(2, 4, rng=0).split(np.ones(3))
    with pytest.raises(TypeError, match="trajectory must be a numeric array"):
        fr.flatness_along(ex1, [["a", "b"]])
    with pytest.raises(TypeError, match="trajectory must be real"):
        fr.flatness_along(ex1, [[1.0 + 1j, 1.0]])
    with pytest.raises(TypeError, match="size must be an integer"):
        small_problem(LinearRegression, 0, "3")
    with pytest.raises(ValueError, match="rng must be a non-negative seed"):
        ex1.random_minimum(-1)
    # A gate of 1e300 used to overflow (eps0**2) inside the step.
    trajectory = fr.run(ex1, fr.RS(0.05, 0.05, 0.1, eps0=1e300), [2.0, 0.6], steps=3)
    assert trajectory.success and trajectory.perturbed.all() and math.isfinite(trajectory.f[-1])
