"""Ellipsoids of minima: ``f(x) = q(x)²/4`` with ``q = Σ c_i x_i² − 1``, ``c_i = 1/a_i²`` (exact derivatives).

``∇f = q c⊙x``, ``∇²f = 2(c⊙x)(c⊙x)ᵀ + q diag(c)`` and
``∇³f_ijk = 2(c_i c_j x_i δ_jk + c_i c_j x_j δ_ik + c_i c_k x_k δ_ij)``. On ``X*`` (``q = 0``),
``tr ∇²f = 2‖c⊙x‖²`` and ``tr̄ = 2‖c⊙x‖²/d``. In ``R²`` with axes ``a > b``, at ``x = (a cos θ, b sin θ)``,
``tr̄ = cos²θ/a² + sin²θ/b²``: the flattest points are ``(±a, 0)`` and the sharpest are ``(0, ±b)``. All
have metric 0.

The tangent Hessian at an axis point ``a_j e_j``, by Lagrange multipliers: with ``h = ‖c⊙x‖²`` and the
constraint ``g = Σ c_i x_i² = 1``, ``∇h = μ∇g`` gives ``μ = c_j``. Then ``∇²h − μ∇²g = 2 diag(c² − c_j c)``
on the tangent space ``span{e_i : i ≠ j}``. So the eigenvalues of the Hessian of ``tr̄`` along ``X*`` are
``(4/d) c_i (c_i − c_j)`` for ``i ≠ j``: positive at the longest axis, negative at the shortest, and of
both signs at a middle axis (a saddle).
"""

import numpy as np

from flatref.problems import Problem


class Ellipsoid(Problem):
    def __init__(self, *axes: float):
        super().__init__(len(axes))
        self.axes = np.array(axes, dtype=float)
        self.c = 1 / self.axes**2

    def _q(self, x):
        return self.c @ (x * x) - 1

    def _f(self, x):
        return self._q(x) ** 2 / 4

    def _grad(self, x):
        return self._q(x) * self.c * x

    def _hess(self, x):
        cx = self.c * x
        return 2 * np.outer(cx, cx) + self._q(x) * np.diag(self.c)

    def _third_contract(self, x, u, v):
        cx = self.c * x  # T_ijk u_j v_k = 2(c_i x_i Σ_j c_j u_j v_j + c_i u_i (c⊙x)·v + c_i v_i (c⊙x)·u)
        return 2 * (cx * ((self.c * u) @ v) + self.c * u * (cx @ v) + self.c * v * (cx @ u))

    def axis_point(self, j: int, sign: float = 1.0) -> np.ndarray:
        """``± a_j e_j``, a stationary point of ``tr̄`` on the ellipsoid."""
        return sign * self.axes[j] * np.eye(self.dim)[j]

    def axis_curvature(self, j: int) -> np.ndarray:
        """The eigenvalues ``(4/d) c_i (c_i − c_j)``, ``i ≠ j``, of the tangent Hessian of ``tr̄`` at ``± a_j e_j``."""
        others = np.delete(self.c, j)
        return np.sort(4 / self.dim * others * (others - self.c[j]))


class Ellipse(Ellipsoid):
    def __init__(self, a: float = 2.0, b: float = 1.0):
        super().__init__(a, b)
