"""Exact-derivative helpers and toy problems shared by the tests."""

import numpy as np

from flatref.problems import Problem, TrainingLoss

#: Complex step: Im F(x + i·h·v)/h = DF(x)[v] + O(h²) with no subtractive cancellation,
#: so h = 1e-30 gives the directional derivative to rounding (Squire & Trapp, 1998).
COMPLEX_STEP = 1e-30


def assert_cli_refuses(argv, message, capsys):
    """``flatref argv`` exits with code 2 and one line on stderr containing ``message``, printing nothing else."""
    from flatref.cli import main

    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    captured = capsys.readouterr()
    assert code == 2 and message in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""


def complex_step(fun, x, v):
    """The exact directional derivative ``DF(x)[v]`` of a holomorphic ``F`` (to rounding)."""
    return np.imag(fun(x + 1j * COMPLEX_STEP * np.asarray(v))) / COMPLEX_STEP


def complex_step_jacobian(fun, x):
    """Columns ``DF(x)[e_i]``, stacked along the last axis."""
    return np.stack([complex_step(fun, x, e) for e in np.eye(x.size)], axis=-1)


def assert_close(actual, expected, scale, rtol=1e-10):
    """``max|actual − expected| ≤ rtol · scale``.

    ``scale`` is the size of the numbers the computation involves (e.g. the norm of
    the Hessian times ``1 + ‖x‖``), so that quantities which vanish, such as the
    gradient at a minimum, are compared on the right scale. Every check here
    compares two routes that are exact up to rounding (a few ulps of ``scale``),
    so ``1e-10`` leaves a margin of ``1e5`` for accumulation over sums of length
    ``≤ 1e3`` and still catches any wrong term, which is ``O(scale)``.
    """
    err = np.max(np.abs(np.asarray(actual) - np.asarray(expected)), initial=0.0)
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol:.0e} × scale {scale:.3g}"


def derivative_scale(problem, x):
    """A magnitude for comparisons at ``x``: ``(1 + ‖x‖)`` times the largest derivative up to third order."""
    sizes = [abs(problem.f(x)), np.max(np.abs(problem.grad(x))), np.max(np.abs(problem.hess(x)))]
    if problem.dim <= 30:
        sizes.append(np.max(np.abs(problem.third(x))))
    return (1.0 + np.linalg.norm(x)) * max(sizes + [1e-300])


def assert_derivatives_exact(problem, x, v, w):
    """Each order of ``problem`` at ``x`` is the complex-step derivative of the order below.

    Checks ``∇f·v``, ``∇²f v``, ``∇³f[v, w]``, the tensor ``∇³f[v]`` and ``∇tr∇²f·v``.
    """
    scale = derivative_scale(problem, x)
    d_hess = complex_step(problem.hess, x, v)
    assert_close(problem.grad(x) @ v, complex_step(problem.f, x, v), scale)
    assert_close(problem.hess(x) @ v, complex_step(problem.grad, x, v), scale)
    assert_close(problem.third_contract(x, v, w), d_hess @ w, scale)
    assert_close(np.einsum("kij,i->kj", problem.third(x), v), d_hess, scale)
    assert_close(problem.grad_trace_hess(x) @ v, complex_step(problem.trace_hess, x, v), scale)


# ------------------------------------------------------ non-polynomial toys
class LogCosh:
    """``ℓ(z, y) = log cosh(z − y)``: minimized at ``y`` with ``ℓ″ = 1``, and ``ℓ‴ ≠ 0`` elsewhere."""

    def value(self, z, y):
        return np.log(np.cosh(z - y))

    def d1(self, z, y):
        return np.tanh(z - y)

    def d2(self, z, y):
        return 1.0 / np.cosh(z - y) ** 2

    def d3(self, z, y):
        return -2.0 * np.tanh(z - y) / np.cosh(z - y) ** 2


class SineModel(TrainingLoss):
    """``p_i(x) = sin(a_iᵀx)``: every output derivative is non-zero."""

    def __init__(self, A, y, loss=None):
        super().__init__(A.shape[1], y, loss)
        self.A = A

    def _outputs(self, x, idx=slice(None)):
        return np.sin(self.A[idx] @ x)

    def _output_jacobian(self, x, idx=slice(None)):
        return np.cos(self.A[idx] @ x)[:, None] * self.A[idx]

    def _output_hessians(self, x, idx=slice(None)):
        A = self.A[idx]
        return -np.sin(A @ x)[:, None, None] * np.einsum("ia,ib->iab", A, A)

    def _output_thirds(self, x, idx=slice(None)):
        A = self.A[idx]
        return -np.cos(A @ x)[:, None, None, None] * np.einsum("ia,ib,ic->iabc", A, A, A)


def sine_model(seed, n=3, d=4, loss=None):
    rng = np.random.default_rng(seed)
    return SineModel(rng.standard_normal((n, d)), 0.5 * rng.standard_normal(n), loss)


class PlainQuadratic(Problem):
    """``f(x) = ‖x‖²``: a plain Problem (not Setting 1) with no third-derivative method."""

    def __init__(self, dim=2):
        super().__init__(dim)

    def _f(self, x):
        return x @ x

    def _grad(self, x):
        return 2 * x

    def _hess(self, x):
        return 2 * np.eye(self.dim)


class Valley(Problem):
    """``f = (x1² + x2² − 1)²/4``: minima on the unit circle, a saddle-free valley; a plain Problem.

    The flow is radial, so ``Φ(x) = x/‖x‖``; the origin is a local maximum.
    """

    def __init__(self):
        super().__init__(2)

    def _f(self, x):
        return (x @ x - 1) ** 2 / 4

    def _grad(self, x):
        return (x @ x - 1) * x

    def _hess(self, x):
        return (x @ x - 1) * np.eye(2) + 2 * np.outer(x, x)

    def _third_contract(self, x, u, v):
        return 2 * ((x @ u) * v + (x @ v) * u + (u @ v) * x)
