"""An ellipse of minima: ``f(x) = q(x)²/4`` with ``q = x1²/a² + x2²/b² − 1`` in ``R²`` (exact derivatives).

With ``c = (1/a², 1/b²)``: ``∇f = q c⊙x``, ``∇²f = 2(c⊙x)(c⊙x)ᵀ + q diag(c)`` and
``∇³f_ijk = 2(c_i c_j x_i δ_jk + c_i c_j x_j δ_ik + c_i c_k x_k δ_ij)``. On ``X*`` (``q = 0``),
``tr̄ = Σ c_i² x_i²``: at ``x = (a cos θ, b sin θ)`` it is ``cos²θ/a² + sin²θ/b²``, so for ``a > b``
the flattest points are ``(±a, 0)`` and the sharpest ``(0, ±b)``, all with metric 0.
"""

import numpy as np

from flatref.problems import Problem


class Ellipse(Problem):
    def __init__(self, a: float = 2.0, b: float = 1.0):
        super().__init__(2)
        self.c = np.array([1 / a**2, 1 / b**2])

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
