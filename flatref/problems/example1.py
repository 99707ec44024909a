"""The paper's Example 1: ``f(x1, x2) = (x1 x2 − 1)²``.

It is Setting 1 with one sample: ``p(x) = x1 x2``, ``y = 1`` and
``ℓ(z, y) = (z − y)²`` (a :class:`SquaredLoss` of weight 2), so Algorithm 2 applies.

Closed forms (``s = x1 x2 − 1``):

- ``∇f = 2s (x2, x1)``
- ``∇²f = 2 [[x2², 2x1x2 − 1], [2x1x2 − 1, x1²]]``, so ``tr̄ = x1² + x2²``
- the only non-zero third derivatives are ``∂³f/∂x1²∂x2 = 4x2`` and ``∂³f/∂x1∂x2² = 4x1``.

The minima set is the hyperbola ``x1 x2 = 1``; on it ``tr̄ = x1² + 1/x1²``, so the
flat minima are ``±(1, 1)``. The flow conserves ``x1² − x2²`` (docs/theory.md §2), which
gives ``Φ`` in closed form.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_vector, make_rng
from .base import SquaredLoss, TrainingLoss


class Example1(TrainingLoss):
    """``f(x) = (x1 x2 − 1)²`` on ``R²`` (Example 1 of Ahn, Jadbabaie & Sra, 2024).

    Examples:
        >>> p = Example1()
        >>> float(p.f([2.0, 1.0])), p.grad([2.0, 1.0]).tolist(), p.hess([2.0, 1.0]).tolist()  # s = x1 x2 − 1 = 1
        (1.0, [2.0, 4.0], [[2.0, 6.0], [6.0, 8.0]])
    """

    quadratic_outputs = True

    def __init__(self):
        super().__init__(2, [1.0], SquaredLoss(weight=2.0))

    def __repr__(self) -> str:
        return "Example1()"

    # -------------------------------------------------------------- Setting 1
    def _outputs(self, x, idx=slice(None)):
        return np.array([x[0] * x[1]])[idx]

    def _output_jacobian(self, x, idx=slice(None)):
        return np.array([[x[1], x[0]]])[idx]

    def _output_hessians(self, x, idx=slice(None)):
        return np.array([[[0.0, 1.0], [1.0, 0.0]]])[idx]

    # ----------------------------------------------------------- closed forms
    def _f(self, x):
        s = x[0] * x[1] - 1.0
        return s * s

    def _grad(self, x):
        s = x[0] * x[1] - 1.0
        return 2.0 * s * np.array([x[1], x[0]])

    def _value_and_grad(self, x):
        s = x[0] * x[1] - 1.0
        return s * s, 2.0 * s * np.array([x[1], x[0]])

    def _hess(self, x):
        off = 2.0 * x[0] * x[1] - 1.0
        return 2.0 * np.array([[x[1] * x[1], off], [off, x[0] * x[0]]])

    def _third(self, x):
        T = np.zeros((2, 2, 2), dtype=x.dtype)
        T[0, 0, 1] = T[0, 1, 0] = T[1, 0, 0] = 4.0 * x[1]
        T[0, 1, 1] = T[1, 0, 1] = T[1, 1, 0] = 4.0 * x[0]
        return T

    def _third_contract(self, x, u, v):
        cross = u[0] * v[1] + u[1] * v[0]
        return 4.0 * np.array([x[1] * cross + x[0] * u[1] * v[1], x[1] * u[0] * v[0] + x[0] * cross])

    def _trace_hess(self, x):
        return 2.0 * (x[0] * x[0] + x[1] * x[1])

    def _grad_trace_hess(self, x):
        return 4.0 * x

    # ------------------------------------------------------- known exactly
    def random_minimum(self, rng=None) -> np.ndarray:
        """``(t, 1/t)`` with ``log|t| ~ N(0, 0.7²)`` and a random sign.

        Examples:
            >>> import numpy as np
            >>> x = Example1().random_minimum(rng=0)
            >>> round(float(x[0] * x[1]), 12), bool(np.array_equal(x, Example1().random_minimum(rng=0)))  # on x1 x2 = 1
            (1.0, True)
        """
        rng = make_rng(rng)
        t = rng.choice([-1.0, 1.0]) * np.exp(0.7 * rng.standard_normal())
        return np.array([t, 1.0 / t])

    def sharp_minimum(self) -> np.ndarray:
        """``(3, 1/3)``: ``tr̄ = 9 + 1/9``, against ``2`` at the flat minimum ``(1, 1)``.

        Examples:
            >>> p = Example1()
            >>> x = p.sharp_minimum()  # a minimum (f = 0) with tr∇²f = 2(x1² + x2²) = 2(9 + 1/9)
            >>> float(p.f(x)), round(float(p.trace_hess(x)), 6), round(2 * (9 + 1 / 9), 6)
            (0.0, 18.222222, 18.222222)
        """
        return np.array([3.0, 1.0 / 3.0])

    def flat_minima(self) -> tuple[np.ndarray, ...]:
        """``(1, 1)`` and ``(−1, −1)``, the minimizers of ``tr̄ = x1² + 1/x1²`` on the hyperbola.

        Examples:
            >>> p = Example1()
            >>> [(x.tolist(), float(p.f(x)), float(p.trace_hess(x))) for x in p.flat_minima()]  # tr = 2(t² + 1/t²) ≥ 4
            [([1.0, 1.0], 0.0, 4.0), ([-1.0, -1.0], 0.0, 4.0)]
            >>> float(p.grad_trace_hess([1.0, 1.0]) @ [1.0, -1.0])  # ∇tr ⟂ the tangent (1, −1): stationary on X*
            0.0
        """
        return (np.array([1.0, 1.0]), np.array([-1.0, -1.0]))

    def conserved(self, x) -> np.ndarray:
        """``[x1² − x2²]``: ``d/dt (x1² − x2²) = −2x1·2s x2 + 2x2·2s x1 = 0``.

        Examples:
            >>> p, x = Example1(), [2.0, 0.3]
            >>> for _ in range(5):  # small gradient steps change x1² − x2² by O(η²) only
            ...     x = x - 1e-4 * p.grad(x)
            >>> p.conserved([2.0, 0.3]).tolist(), p.conserved(x).round(6).tolist()
            ([3.91], [3.91])
        """
        x = self._point(x)
        return np.array([x[0] * x[0] - x[1] * x[1]])

    def exact_limit(self, x) -> np.ndarray:
        """``Φ(x)`` from the conservation law (docs/theory.md §2).

        ``Φ(x)`` is the point ``(a, 1/a)·sign`` of the hyperbola with the same
        ``c = x1² − x2²``: ``a² = (c + √(c² + 4))/2``, and both coordinates take the sign
        of the larger-magnitude coordinate of ``x`` (that one never crosses zero).
        If ``|x1| = |x2|`` and ``x1 x2 ≤ 0`` the flow ends at the saddle ``(0, 0)``.

        Examples:
            >>> p = Example1()
            >>> phi = p.exact_limit([2.0, 0.3])  # on the hyperbola x1 x2 = 1, with the same x1² − x2² = 3.91
            >>> round(float(phi[0] * phi[1]), 12), p.conserved(phi).round(12).tolist()
            (1.0, [3.91])
            >>> p.exact_limit([1.0, -1.0]).tolist()  # |x1| = |x2|, x1 x2 < 0: the flow ends at the saddle
            [0.0, 0.0]
        """
        x = as_vector(x, 2)
        if abs(x[0]) == abs(x[1]) and x[0] * x[1] <= 0:
            return np.zeros(2)
        c = x[0] ** 2 - x[1] ** 2
        root = np.hypot(c, 2.0)
        # a² = (c + √(c²+4))/2 and b² = 1/a² = (√(c²+4) − c)/2, each without cancellation.
        a2 = (c + root) / 2 if c >= 0 else 2.0 / (root - c)
        a = np.sqrt(a2)
        sign = np.sign(x[0]) if abs(x[0]) > abs(x[1]) else np.sign(x[1])
        return sign * np.array([a, 1.0 / a])
