"""The two problem interfaces: :class:`Problem` and :class:`TrainingLoss` (Setting 1).

Notation (Ahn, Jadbabaie & Sra, ICML 2024, §1; docs/theory.md §1): ``f : R^d -> R``,
``∇³f(x)[u, v]`` is the vector ``Σ_ij ∂³f/∂x_k∂x_i∂x_j u_i v_j`` and the tensor
returned by :meth:`Problem.third` is ``T[k, i, j] = ∂³f/∂x_k∂x_i∂x_j``.

Template methods: the public methods (``f``, ``grad``, ...) check their input once
and call the private ones (``_f``, ``_grad``, ...), which hold the mathematics. A
new problem implements ``_f``, ``_grad``, ``_hess`` and one of ``_third`` /
``_third_contract``; every other derivative has a correct generic default, which a
family overrides where a closed form is faster.

Points may be complex: every closed form in flatref is holomorphic in ``x`` (no
``abs``, no conjugation), so ``Im f(x + i h v) / h`` is an exact directional
derivative (complex-step differentiation). The tests rely on this.

The problem owns the geometry of its minima set ``X*``: :meth:`Problem.normal_basis`
(the normal space at a minimum) and :meth:`Problem.project_to_minima` (a point of
``X*`` near ``x``), generic through the Hessian and, for Setting 1, through the
output Jacobian. Callers ask the problem; they never switch on its type.

Inner loops that have already checked their point (the driver, the flow) call
:attr:`Problem.unchecked`, the same mathematics without the input checks.
"""

from __future__ import annotations

import abc
import functools
from dataclasses import dataclass

import numpy as np

from .._validation import as_array, as_columns, as_int, as_positive, as_vector, frozen_copy
from ..errors import ConvergenceError, NonFiniteError


#: The largest ``d`` for which a dense ``O(d³)`` eigendecomposition of ``∇²f`` is used: at
#: ``d = 1500`` one takes about 0.2 s (eigenvalues) to 0.4 s (with vectors) on 2 cores, as much
#: as a few hundred gradients of our largest problems; above it, Hessian-vector products.
DENSE_MAX_DIM = 1500


class Problem(abc.ABC):
    """A smooth loss ``f : R^d -> R`` with exact derivatives up to third order.

    Subclasses implement ``_f``, ``_grad``, ``_hess`` and at least one of ``_third``
    (the ``d×d×d`` tensor) and ``_third_contract`` (``∇³f(x)[u, v]``); the base class
    derives the rest.

    Problems also state what is known exactly about them, so that numerics can be
    compared with truth. Each of :meth:`random_minimum`, :meth:`sharp_minimum`,
    :meth:`flat_minima`, :meth:`conserved`, :meth:`exact_limit` and
    :meth:`exact_limit_jacobian` raises ``NotImplementedError`` where the family
    does not know the answer in closed form.

    Args:
        dim: the dimension ``d`` of the parameter vector.
    """

    def __init__(self, dim: int):
        self._dim = as_int(dim, "dim", minimum=1)

    @property
    def dim(self) -> int:
        """The number of parameters ``d``.

        Examples:
            >>> from flatref.problems import Example1, MatrixSensing
            >>> Example1().dim, MatrixSensing.random(3, 2, 1, 4, rng=0).dim  # (x1, x2); U is n × r = 3 × 2
            (2, 6)
        """
        return self._dim

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"

    # ----------------------------------------------------------------- public API
    def f(self, x):
        """The loss ``f(x)``.

        Examples:
            >>> from flatref.problems import Example1
            >>> float(Example1().f([2.0, 1.0])), float(Example1().f([3.0, 1 / 3]))  # (x1 x2 − 1)²
            (1.0, 0.0)
        """
        return self._evaluate(self._f, self._point(x))

    def grad(self, x) -> np.ndarray:
        """The gradient ``∇f(x)``, shape ``(d,)``.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import Example1
            >>> p, x, v = Example1(), np.array([2.0, 1.0]), np.array([0.6, 0.8])
            >>> p.grad(x).tolist(), round(float(p.f(x + 1e-20j * v).imag / 1e-20), 12)  # 2s(x2, x1); ∇f·v
            ([2.0, 4.0], 4.4)
        """
        return self._evaluate(self._grad, self._point(x))

    def value_and_grad(self, x) -> tuple[float, np.ndarray]:
        """``(f(x), ∇f(x))`` at once, sharing what the two have in common (a training loss's residual).

        Examples:
            >>> from flatref.problems import Example1
            >>> value, grad = Example1().value_and_grad([2.0, 1.0])     # s = x1 x2 − 1 = 1: (s², 2s(x2, x1))
            >>> float(value), grad.tolist()
            (1.0, [2.0, 4.0])
        """
        return self._evaluate(self._value_and_grad, self._point(x))

    def hess(self, x) -> np.ndarray:
        """The Hessian ``∇²f(x)``, shape ``(d, d)``.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import MatrixSensing
            >>> p, rng = MatrixSensing.random(3, 2, 1, 4, rng=0), np.random.default_rng(1)
            >>> x, v = rng.standard_normal((2, p.dim))
            >>> bool(np.allclose(p.hess(x) @ v, p.grad(x + 1e-20j * v).imag / 1e-20))  # complex step of ∇f
            True
        """
        return self._evaluate(self._hess, self._point(x))

    def hess_vec(self, x, v) -> np.ndarray:
        """The Hessian-vector product ``∇²f(x) v`` for ``v`` of shape ``(d,)`` or ``(d, k)``.

        Matrix-free in every family: no ``d × d`` Hessian is formed.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import DiagonalLinearNetwork
            >>> p, x = DiagonalLinearNetwork.random(2, 4, rng=0), np.linspace(-1.0, 1.0, 8)
            >>> V = np.random.default_rng(1).standard_normal((8, 3))
            >>> bool(np.allclose(p.hess_vec(x, V), p.hess(x) @ V)), p.hess_vec(x, V[:, 0]).shape  # ∇²f V, column-wise
            (True, (8,))
        """
        x = self._point(x)
        return self._evaluate(self._hess_vec, x, as_columns(v, self.dim, allow_complex=True))

    def third(self, x) -> np.ndarray:
        """The third-derivative tensor ``T[k, i, j] = ∂³f/∂x_k∂x_i∂x_j``, shape ``(d, d, d)``.

        Meant for small ``d``; use :meth:`third_contract` otherwise.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import Example1
            >>> T = Example1().third([2.0, 1.0])  # ∂³f/∂x1²∂x2 = 4x2, ∂³f/∂x1∂x2² = 4x1, symmetric in all slots
            >>> [float(T[0, 0, 0]), float(T[0, 0, 1]), float(T[1, 0, 1]), float(T[1, 1, 1])]
            [0.0, 4.0, 8.0, 0.0]
        """
        return self._evaluate(self._third, self._point(x))

    def third_contract(self, x, u, v) -> np.ndarray:
        """The contraction ``∇³f(x)[u, v]_k = Σ_ij T[k, i, j] u_i v_j``, shape ``(d,)``.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import MatrixSensing
            >>> p = MatrixSensing.random(2, 2, 1, 3, rng=0)
            >>> x, u, v = np.random.default_rng(1).standard_normal((3, p.dim))
            >>> bool(np.allclose(p.third_contract(x, u, v), (p.hess(x + 1e-20j * v).imag / 1e-20) @ u))  # ∂_v ∇²f · u
            True
        """
        x = self._point(x)
        u = as_vector(u, self.dim, "u", allow_complex=True)
        v = as_vector(v, self.dim, "v", allow_complex=True)
        return self._evaluate(self._third_contract, x, u, v)

    def trace_hess(self, x):
        """The trace of the Hessian ``tr ∇²f(x)`` (``d`` times ``tr̄``, eq. (1)).

        Examples:
            >>> from flatref.problems import Example1
            >>> round(float(Example1().trace_hess([3.0, 1 / 3])), 6), round(2 * (9 + 1 / 9), 6)  # 2(x1² + x2²)
            (18.222222, 18.222222)
        """
        return self._evaluate(self._trace_hess, self._point(x))

    def grad_trace_hess(self, x) -> np.ndarray:
        """The gradient of the trace, ``∇ tr∇²f(x)_k = Σ_i ∂³f/∂x_k∂x_i∂x_i``.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import MatrixSensing
            >>> p = MatrixSensing.random(3, 2, 1, 4, rng=0)
            >>> x, v = np.random.default_rng(1).standard_normal((2, p.dim))
            >>> bool(np.isclose(p.grad_trace_hess(x) @ v, p.trace_hess(x + 1e-20j * v).imag / 1e-20))  # complex step
            True
        """
        return self._evaluate(self._grad_trace_hess, self._point(x))

    def _point(self, x) -> np.ndarray:
        return as_vector(x, self.dim, "x", allow_complex=True)

    def _evaluate(self, method, x, *args):
        """``method(x, *args)``, raising :class:`~flatref.errors.NonFiniteError` where it is not finite.

        The point was checked finite, so ``inf`` or NaN means float64 overflowed inside the
        closed form: the point is beyond the range this problem supports (docs/theory.md §1).
        """
        with np.errstate(all="ignore"):
            value = method(x, *args)
        if not all(np.all(np.isfinite(part)) for part in (value if isinstance(value, tuple) else (value,))):
            name = method.__name__.lstrip("_")
            raise NonFiniteError(f"{type(self).__name__}.{name} is not finite at this x (max |x_i| = "
                                 f"{np.max(np.abs(x)):.3g}): beyond the range of float64 for this problem")  # fmt: skip
        return value

    @functools.cached_property
    def unchecked(self) -> "Unchecked":
        """The derivatives without input checks, for inner loops that checked their points once.

        The caller guarantees that every point is a finite float vector of length ``d``
        (and, for ``sample_grad``, that ``idx`` holds valid sample indices); a check costs
        about as much as a small gradient, so the driver and the flow skip it per step.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import Example1
            >>> problem = Example1()
            >>> x = np.array([2.0, 1.0])
            >>> bool(np.array_equal(problem.unchecked.grad(x), problem.grad(x)))
            True
        """
        return Unchecked(self)

    # ---------------------------------------------------- the geometry of X*
    def normal_basis(self, x_star, *, rtol: float = 1e-6) -> np.ndarray:
        """An orthonormal basis ``N`` (``d × k``) of the normal space of ``X*`` at a minimum ``x_star``.

        Generic rule: the eigenvectors of ``∇²f(x*)`` with eigenvalue above ``rtol · λ_max``
        (at a minimum where ``X*`` is a manifold, the null space of ``∇²f`` is the tangent
        space; docs/theory.md §2). The kept eigenvalues are ``O(1)`` on our problems and the
        dropped ones rounding (``≲ 1e-12``), so ``1e-6`` is far from both.
        :class:`TrainingLoss` uses the output Jacobian instead (eq. (31)).

        Examples:
            >>> from flatref.problems import Example1
            >>> N = Example1().normal_basis([1.0, 1.0])           # ∇p = (x2, x1) = (1, 1), normalized
            >>> N.shape, abs(N).round(6).ravel().tolist()
            ((2, 1), [0.707107, 0.707107])
        """
        x_star = as_vector(x_star, self.dim, "x_star")
        rtol = as_positive(rtol, "rtol")
        lam, Q = np.linalg.eigh(self._evaluate(self._hess, x_star))
        return Q[:, lam > rtol * max(lam[-1], 0.0)] if lam[-1] > 0 else np.zeros((self.dim, 0))

    #: True when a point returned by :meth:`project_to_minima` is certainly a (global) minimum.
    projection_is_global: bool = False

    def project_to_minima(self, x, *, tol: float = 1e-13, max_iter: int = 50, rtol: float = 1e-6,
                          curvature_tol: float = 1e-2, max_dim: int = DENSE_MAX_DIM) -> np.ndarray:  # fmt: skip
        """A point of ``X*`` near ``x`` by Newton steps restricted to the top eigenspace of ``∇²f``.

        Each step is ``x ← x − Q (Λ⁻¹ Qᵀ ∇f(x))`` over the eigenpairs ``(Λ, Q)`` of ``∇²f(x)``
        with eigenvalue above ``rtol · λ_max``: off ``X*`` the tangent eigenvalues are
        ``O(dist)``, not zero, and inverting them (a plain ``pinv`` step) would throw the
        point away. The first step lands ``O(dist(x, X*)²)`` from the flow's limit
        ``Φ(x)``; it is *not* ``Φ(x)`` (docs/theory.md §6).

        Args:
            x: the starting point.
            tol: stop when a step is at most ``tol · (1 + ‖x‖)``.
            max_iter: at most this many steps.
            rtol: the eigenvalue cut, relative to ``λ_max`` (the rank rule of :meth:`normal_basis`).
            curvature_tol: refuse where ``λ_min < −curvature_tol · λ_max``. Next to ``X*`` the
                tangent eigenvalues are ``O(dist)`` of either sign, while at a saddle the negative
                curvature is of the order of ``λ_max``; ``1e-2`` accepts points up to about a
                hundredth of the curvature scale from ``X*`` and refuses saddles.
            max_dim: refuse above this dimension (each step is a dense ``O(d³)`` eigendecomposition).

        Raises:
            ConvergenceError: at clear negative curvature (no minimum near), above ``max_dim``,
                or when ``max_iter`` steps do not converge.
            NonFiniteError: when a step leaves the range of float64.

        Examples:
            >>> from flatref.problems import Example1
            >>> x = Problem.project_to_minima(Example1(), [1.0, 0.98])  # the generic Newton rule, not the override
            >>> round(float(x[0] * x[1]), 12), round(float(Example1().f(x)), 12)  # on the hyperbola x1 x2 = 1
            (1.0, 0.0)
        """
        x = as_vector(x, self.dim, "x")
        tol, rtol, curvature_tol = (as_positive(v, n) for v, n in ((tol, "tol"), (rtol, "rtol"),
                                                                   (curvature_tol, "curvature_tol")))  # fmt: skip
        max_iter = as_int(max_iter, "max_iter", minimum=1)
        if self.dim > as_int(max_dim, "max_dim", minimum=1):
            raise ConvergenceError(f"project_to_minima refuses dim = {self.dim} > max_dim = {max_dim} (dense steps)")
        for _ in range(max_iter):
            lam, Q = np.linalg.eigh(self._evaluate(self._hess, x))
            top = lam > rtol * max(lam[-1], 0.0)
            if lam[0] < -curvature_tol * max(lam[-1], 0.0) or not top.any():
                raise ConvergenceError(f"no minimum near x: Hessian eigenvalues from {lam[0]:.3g} to {lam[-1]:.3g}")
            step = Q[:, top] @ ((Q[:, top].T @ self._evaluate(self._grad, x)) / lam[top])
            x = x - step
            if np.linalg.norm(step) <= tol * (1.0 + np.linalg.norm(x)):
                return x
        raise ConvergenceError(f"Newton projection onto the minima set of {self!r} needs more than {max_iter} steps")

    # ------------------------------------------------------- what subclasses give
    @abc.abstractmethod
    def _f(self, x): ...

    @abc.abstractmethod
    def _grad(self, x): ...

    @abc.abstractmethod
    def _hess(self, x): ...

    def _value_and_grad(self, x):
        """``(f, ∇f)``; families override it to share the work."""
        return self._f(x), self._grad(x)

    # ----------------------------------------------------------- generic defaults
    def _hess_vec(self, x, v):
        """Default: the dense Hessian times ``v``."""
        return self._hess(x) @ v

    def _third(self, x):
        """Default: the tensor assembled column by column from ``_third_contract``."""
        self._require_third_order("_third_contract")
        eye = np.eye(self.dim)
        cols = [[self._third_contract(x, eye[i], eye[j]) for j in range(self.dim)] for i in range(self.dim)]
        return np.moveaxis(np.asarray(cols), 2, 0)

    def _third_contract(self, x, u, v):
        """Default: contract the tensor from ``_third``."""
        self._require_third_order("_third")
        return np.einsum("kij,i,j->k", self._third(x), u, v)

    def _trace_hess(self, x):
        """Default: the trace of ``_hess``."""
        return np.trace(self._hess(x))

    def _grad_trace_hess(self, x):
        """Default: ``Σ_i ∇³f(x)[e_i, e_i]``, one contraction per basis vector (no d×d×d tensor)."""
        eye = np.eye(self.dim)
        return sum(self._third_contract(x, e, e) for e in eye)

    def _require_third_order(self, needed: str) -> None:
        if getattr(type(self), needed) is getattr(Problem, needed):
            raise NotImplementedError(
                f"{type(self).__name__} must implement _third or _third_contract "
                "(third derivatives cannot be derived from lower orders exactly)"
            )

    # ------------------------------------------------------ what is known exactly
    def _not_known(self, what: str):
        return NotImplementedError(f"{type(self).__name__} does not provide {what} in closed form")

    def random_minimum(self, rng=None) -> np.ndarray:
        """A random point of the minima set ``X*``.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import LinearRegression
            >>> p = LinearRegression.random(2, 4, rng=0)
            >>> w = p.random_minimum(rng=0)
            >>> bool(np.allclose(p.Z @ w, p.y)), round(float(p.f(w)), 12)  # an interpolant: Zw = y, f = 0
            (True, 0.0)
        """
        raise self._not_known("random_minimum")

    def sharp_minimum(self) -> np.ndarray:
        """A point of ``X*`` with a large trace of the Hessian: a start for escape experiments.

        Examples:
            >>> from flatref.problems import Example1
            >>> p = Example1()
            >>> x, flat = p.sharp_minimum(), p.flat_minima()[0]  # trace 2(9 + 1/9) against 2(1 + 1)
            >>> float(p.f(x)), round(float(p.trace_hess(x) / p.trace_hess(flat)), 6), round((9 + 1 / 9) / 2, 6)
            (0.0, 4.555556, 4.555556)
        """
        raise self._not_known("sharp_minimum")

    def flat_minima(self) -> tuple[np.ndarray, ...]:
        """Flat minima (Definition 2) known in closed form.

        Examples:
            >>> from flatref.problems import Example1
            >>> [x.tolist() for x in Example1().flat_minima()]  # argmin of x1² + 1/x1² on x1 x2 = 1
            [[1.0, 1.0], [-1.0, -1.0]]
        """
        raise self._not_known("flat_minima")

    def conserved(self, x) -> np.ndarray:
        """Quantities conserved along the gradient flow ``ẋ = −∇f(x)`` started at ``x``.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import DiagonalLinearNetwork
            >>> p, x = DiagonalLinearNetwork.random(2, 4, rng=0), np.linspace(-1.0, 1.0, 8)
            >>> c = p.conserved(x + 1e-20j * p.grad(x)).imag / 1e-20  # d/dt of u⊙u − v⊙v along −∇f
            >>> bool(np.allclose(c, 0.0, atol=1e-12))
            True
        """
        raise self._not_known("conserved")

    def exact_limit(self, x) -> np.ndarray:
        """The limit map ``Φ(x)`` of Definition 1 in closed form.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import LinearRegression
            >>> p = LinearRegression.random(2, 4, rng=0)
            >>> x_star = p.exact_limit(np.ones(4))  # Φ(w) = w − Z⁺(Zw − y)
            >>> bool(np.allclose(p.Z @ x_star, p.y)), bool(np.allclose(p.exact_limit(x_star), x_star))  # on X*; Φ∘Φ = Φ
            (True, True)
        """
        raise self._not_known("exact_limit")

    def exact_limit_jacobian(self, x) -> np.ndarray:
        """The Jacobian ``∂Φ(x)`` in closed form.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import LinearRegression
            >>> P = LinearRegression.random(2, 5, rng=0).exact_limit_jacobian(np.zeros(5))  # I − Z⁺Z
            >>> bool(np.allclose(P @ P, P)), round(float(np.trace(P)), 9)  # a projector of rank D − n = 3
            (True, 3.0)
        """
        raise self._not_known("exact_limit_jacobian")


@dataclass(frozen=True)
class SquaredLoss:
    """The squared loss ``ℓ(z, y) = weight · (z − y)² / 2`` and its derivatives in ``z``.

    It is minimized at ``z = y`` with ``ℓ″ = weight > 0``, as Setting 1 requires.

    Examples:
        >>> loss = SquaredLoss(weight=2.0)
        >>> [float(loss.value(z, 1.0)) for z in (0.0, 1.0, 3.0)]  # (z − 1)², zero at z = y
        [1.0, 0.0, 4.0]
    """

    weight: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "weight", as_positive(self.weight, "weight"))

    def value(self, z, y):
        """``ℓ(z, y) = weight · (z − y)² / 2``, elementwise.

        Examples:
            >>> import numpy as np
            >>> SquaredLoss(weight=3.0).value(np.array([1.0, 2.0, 4.0]), 1.0).tolist()  # 3 (z − y)² / 2
            [0.0, 1.5, 13.5]
        """
        r = z - y
        return 0.5 * self.weight * r * r

    def d1(self, z, y):
        """``ℓ′(z, y) = weight · (z − y)``.

        Examples:
            >>> loss = SquaredLoss(weight=2.0)
            >>> float(loss.d1(3.0, 1.0)), float(loss.value(3.0 + 1e-20j, 1.0).imag / 1e-20)  # ∂ℓ/∂z by complex step
            (4.0, 4.0)
        """
        return self.weight * (z - y)

    def d2(self, z, y):
        """``ℓ″(z, y) = weight``, broadcast to the shape of ``z``.

        Examples:
            >>> import numpy as np
            >>> loss, z = SquaredLoss(weight=2.0), np.array([-1.0, 0.5, 3.0])
            >>> loss.d2(z, 1.0).tolist(), (loss.d1(z + 1e-20j, 1.0).imag / 1e-20).tolist()  # ℓ″ = ∂ℓ′/∂z
            ([2.0, 2.0, 2.0], [2.0, 2.0, 2.0])
        """
        return np.full(np.shape(z), self.weight)

    def d3(self, z, y):
        """``ℓ‴(z, y) = 0``: the loss is quadratic in ``z``.

        Examples:
            >>> import numpy as np
            >>> SquaredLoss(weight=2.0).d3(np.array([-1.0, 3.0]), 1.0).tolist()  # ℓ″ is constant
            [0.0, 0.0]
        """
        return np.zeros(np.shape(z))


class TrainingLoss(Problem):
    """The paper's Setting 1 (eq. (24)): ``f(x) = (1/n) Σ_i ℓ(p_i(x), y_i)``.

    Subclasses give the model outputs through ``_outputs``, ``_output_jacobian``,
    ``_output_hessians`` and (unless ``quadratic_outputs``) ``_output_thirds``, each
    restricted to the sample indices ``idx``. From them and ``ℓ′, ℓ″, ℓ‴`` the chain
    rule below gives ``f``, ``∇f``, ``∇²f``, ``∇³f`` (in this one place):

    - ``∇f = (1/n) Σ ℓ′_i ∇p_i``
    - ``∇²f = (1/n) Σ [ℓ″_i ∇p_i ∇p_iᵀ + ℓ′_i ∇²p_i]``  (on ``X*`` only the first term: eq. (31))
    - ``∇³f = (1/n) Σ [ℓ‴_i ∇p_i^{⊗3} + ℓ″_i (∇²p_i ⊗ ∇p_i + two permutations) + ℓ′_i ∇³p_i]``

    **Vector outputs.** With labels of shape ``(n, K)`` each sample has ``K`` outputs
    ``p_i(x) ∈ R^K`` and ``ℓ(z, y_i) = Σ_k ℓ(z_k, y_ik)`` (``w‖z − y_i‖²/2`` for the squared
    loss). Internally the ``nK`` outputs are *rows*, sample-major (row ``iK + k`` is
    ``p_ik``): the private methods take sample indices and return rows (``(bK,)``, ``(bK, d)``,
    ``(bK, d, d)``), so the sums above run over rows while ``n`` stays the number of samples
    (docs/theory.md §4). The public :meth:`outputs`, :meth:`output_jacobian` and :attr:`y`
    have shapes ``(b, K)``, ``(b, K, d)`` and ``(n, K)``; with ``K = 1`` labels of shape
    ``(n,)`` keep the scalar shapes ``(b,)``, ``(b, d)`` and ``(n,)``.

    Args:
        dim: number of parameters ``d``.
        y: labels, shape ``(n,)`` (one output per sample) or ``(n, K)``.
        loss: the loss ``ℓ`` (default :class:`SquaredLoss`).

    Examples:
        >>> import numpy as np
        >>> from flatref.problems import LinearRegression
        >>> p, x = LinearRegression.random(3, 5, rng=0), np.linspace(-1.0, 1.0, 5)
        >>> l1 = p.loss.d1(p.outputs(x), p.y)  # ∇f = (1/n) Σ ℓ′_i ∇p_i
        >>> bool(np.allclose(p.grad(x), p.output_jacobian(x).T @ l1 / p.n_samples))
        True
    """

    #: True when every ``p_i`` is a polynomial of degree ≤ 2, so that ``∇³p_i = 0``.
    quadratic_outputs: bool = False

    def __init__(self, dim: int, y, loss: SquaredLoss | None = None):
        super().__init__(dim)
        y = as_array(y, "y")
        if y.ndim not in (1, 2) or y.size == 0:
            raise ValueError(f"y must be a non-empty array of shape (n,) or (n, K), got shape {y.shape}")
        self._vector_outputs = y.ndim == 2
        self._n, self._k = y.shape[0], (y.shape[1] if y.ndim == 2 else 1)
        self._y = frozen_copy(y.reshape(-1))  # rows, sample-major
        self.loss = SquaredLoss() if loss is None else loss

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_samples={self.n_samples}, dim={self.dim})"

    @property
    def n_samples(self) -> int:
        """The number of training samples ``n``.

        Examples:
            >>> from flatref.problems import Example1, LinearRegression
            >>> Example1().n_samples, LinearRegression.random(3, 5, rng=0).n_samples  # one label; one per row of Z
            (1, 3)
        """
        return self._n

    @property
    def n_outputs(self) -> int:
        """The number of outputs ``K`` per sample (1 for labels of shape ``(n,)``).

        Examples:
            >>> from flatref.problems import Example1
            >>> Example1().n_outputs
            1
        """
        return self._k

    @property
    def y(self) -> np.ndarray:
        """The labels ``y`` (read-only), shape ``(n,)`` or ``(n, K)``.

        Examples:
            >>> from flatref.problems import Example1
            >>> y = Example1().y  # p(x) = x1 x2 is fitted to 1
            >>> y.tolist(), y.flags.writeable
            ([1.0], False)
        """
        return self._y.reshape(self._n, self._k) if self._vector_outputs else self._y

    # ----------------------------------------------------------------- public API
    def outputs(self, x, idx=None) -> np.ndarray:
        """The model outputs ``p_i(x)`` for all samples, or for the indices ``idx``.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import Example1, LinearRegression
            >>> p, w = LinearRegression.random(3, 5, rng=0), np.arange(5.0)
            >>> Example1().outputs([2.0, 3.0]).tolist(), bool(np.allclose(p.outputs(w, [2, 0]), p.Z[[2, 0]] @ w))
            ([6.0], True)
        """
        x, args = self._point(x), () if idx is None else (self._indices(idx),)
        p = self._evaluate(self._outputs, x, *args)
        return p.reshape(-1, self._k) if self._vector_outputs else p

    def output_jacobian(self, x, idx=None) -> np.ndarray:
        """The Jacobian of the outputs: row ``i`` is ``∇p_i(x)ᵀ`` (all samples, or those in ``idx``);
        shape ``(b, d)``, or ``(b, K, d)`` with vector outputs.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import Example1, LinearRegression
            >>> p = LinearRegression.random(3, 5, rng=0)  # p_i(w) = z_iᵀw, so J = Z
            >>> Example1().output_jacobian([2.0, 3.0]).tolist(), bool(np.array_equal(p.output_jacobian(p.Z[0]), p.Z))
            ([[3.0, 2.0]], True)
        """
        x, args = self._point(x), () if idx is None else (self._indices(idx),)
        J = self._evaluate(self._output_jacobian, x, *args)
        return J.reshape(-1, self._k, self.dim) if self._vector_outputs else J

    def sample_grad(self, x, idx, labels=None) -> np.ndarray:
        """The mean gradient ``(1/|B|) Σ_{i∈B} ∇_x ℓ(p_i(x), y_i)`` over the sample indices ``B = idx``.

        Args:
            x: the point.
            idx: sample indices (repeats count with multiplicity).
            labels: labels to use instead of ``y[idx]`` (e.g. noisy labels), shape ``(|B|,)`` or ``(|B|, K)``.

        Examples:
            >>> import numpy as np
            >>> from flatref.problems import LinearRegression
            >>> p, x = LinearRegression.random(3, 5, rng=0), np.linspace(-1.0, 1.0, 5)
            >>> parts = [p.sample_grad(x, [i]) for i in range(3)]  # the full batch averages the per-sample gradients
            >>> full = p.sample_grad(x, np.arange(3))
            >>> bool(np.allclose(full, p.grad(x))), bool(np.allclose(sum(parts) / 3, full))
            (True, True)
        """
        idx = self._indices(idx)
        if labels is not None:
            shape = (idx.size, self._k) if self._vector_outputs else (idx.size,)
            labels = as_array(labels, "labels")
            if labels.shape != shape:
                raise ValueError(f"labels must have shape {shape} (one per output of the batch), got {labels.shape}")
            labels = labels.reshape(-1)
        return self._evaluate(self._sample_grad, self._point(x), idx, labels)

    def _sample_grad(self, x, idx, labels=None):
        """``(1/|B|) Σ_{i∈B} ∇ℓ(p_i, y_i)``; ``labels``, if given, are the batch's rows."""
        y = self._labels(idx) if labels is None else labels
        return self._output_jacobian(x, idx).T @ self.loss.d1(self._outputs(x, idx), y) / len(idx)

    def _labels(self, idx):
        """The labels of the samples ``idx``, as rows ``(bK,)``."""
        return self._y[self._rows(idx)]

    def _rows(self, idx):
        """The row indices of the samples ``idx`` (sample-major: ``iK, …, iK + K − 1``)."""
        if self._k == 1:
            return idx
        return (np.asarray(idx)[:, None] * self._k + np.arange(self._k)).reshape(-1)

    def _indices(self, idx) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(idx))
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"idx must be a non-empty 1-D array of integer sample indices, got {idx!r}")
        if arr.min() < 0 or arr.max() >= self.n_samples:
            raise ValueError(f"idx must lie in [0, {self.n_samples}), got values from {arr.min()} to {arr.max()}")
        return arr

    # --------------------------------------------------- what subclasses give
    @abc.abstractmethod
    def _outputs(self, x, idx=slice(None)):
        """``p_i(x)`` for ``i`` in ``idx``, shape ``(b,)`` (rows ``(bK,)`` with vector outputs)."""

    @abc.abstractmethod
    def _output_jacobian(self, x, idx=slice(None)):
        """Rows ``∇p_i(x)ᵀ`` for ``i`` in ``idx``, shape ``(b, d)`` (``(bK, d)``)."""

    @abc.abstractmethod
    def _output_hessians(self, x, idx=slice(None)):
        """``∇²p_i(x)`` for ``i`` in ``idx``, shape ``(b, d, d)`` (``(bK, d, d)``)."""

    def _output_thirds(self, x, idx=slice(None)):
        """``∇³p_i(x)`` for ``i`` in ``idx``, shape ``(b, d, d, d)`` (``(bK, …)``); needed unless
        ``quadratic_outputs``."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement _output_thirds or set quadratic_outputs = True"
        )

    # ------------------------------------------------------------ the chain rule
    def _loss_terms(self, x, order: int):
        """``p(x)`` and ``[ℓ′, ℓ″, ℓ‴][:order]`` evaluated at ``(p_i(x), y_i)``."""
        p = self._outputs(x)
        derivs = (self.loss.d1, self.loss.d2, self.loss.d3)[:order]
        return p, [d(p, self._y) for d in derivs]

    def _f(self, x):
        return np.sum(self.loss.value(self._outputs(x), self._y)) / self.n_samples

    def _grad(self, x):
        _, (l1,) = self._loss_terms(x, 1)
        return self._output_jacobian(x).T @ l1 / self.n_samples

    def _value_and_grad(self, x):
        p, (l1,) = self._loss_terms(x, 1)
        value = np.sum(self.loss.value(p, self._y)) / self.n_samples
        return value, self._output_jacobian(x).T @ l1 / self.n_samples

    def _hess(self, x):
        _, (l1, l2) = self._loss_terms(x, 2)
        J = self._output_jacobian(x)
        H = (J.T * l2) @ J + np.einsum("i,iab->ab", l1, self._output_hessians(x))
        return H / self.n_samples

    def _hess_vec(self, x, v):
        _, (l1, l2) = self._loss_terms(x, 2)
        J = self._output_jacobian(x)
        Hp = self._output_hessians(x)
        return (J.T @ (l2[:, None] * (J @ v.reshape(self.dim, -1)))).reshape(v.shape) / self.n_samples + np.tensordot(
            l1, Hp @ v, axes=1
        ) / self.n_samples

    def _third(self, x):
        _, (l1, l2, l3) = self._loss_terms(x, 3)
        J = self._output_jacobian(x)
        T0 = np.einsum("i,iab,ic->abc", l2, self._output_hessians(x), J)
        T = np.einsum("i,ia,ib,ic->abc", l3, J, J, J) + T0 + T0.transpose(0, 2, 1) + T0.transpose(2, 0, 1)
        if not self.quadratic_outputs:
            T = T + np.einsum("i,iabc->abc", l1, self._output_thirds(x))
        return T / self.n_samples

    def _third_contract(self, x, u, v):
        _, (l1, l2, l3) = self._loss_terms(x, 3)
        J = self._output_jacobian(x)
        Hp = self._output_hessians(x)
        Ju, Jv = J @ u, J @ v
        Hu, Hv = Hp @ u, Hp @ v  # (n, d): ∇²p_i u and ∇²p_i v
        coef = l3 * Ju * Jv + l2 * (Hu @ v)
        out = J.T @ coef + (l2 * Jv) @ Hu + (l2 * Ju) @ Hv
        if not self.quadratic_outputs:
            out = out + np.einsum("i,iabc,b,c->a", l1, self._output_thirds(x), u, v)
        return out / self.n_samples

    # ---------------------------------------------------- the geometry of X*
    projection_is_global = True  # a point with p(x) = y minimizes every ℓ(·, y_i)

    def normal_basis(self, x_star, *, rtol: float = 1e-6) -> np.ndarray:
        """An orthonormal basis ``N`` of the normal space of ``X* = {p(x) = y}`` at ``x_star``.

        The right singular vectors of the output Jacobian ``J`` (rows ``∇p_iᵀ``, ``nK`` of them) with
        singular value above ``rtol · σ_max``: on ``X*``, ``∇²f = (1/n) Jᵀ diag(ℓ″) J``
        (eq. (31)) has the same null space, and ``J`` is better conditioned (its singular
        values are the square roots of the Hessian's eigenvalues, up to ``ℓ″/n``).

        Examples:
            >>> from flatref.problems import Example1
            >>> N = Example1().normal_basis([2.0, 0.5])  # ∇p = (x2, x1) = (0.5, 2), normalized
            >>> N.shape, abs(N).ravel().round(6).tolist(), round(0.5 / 4.25**0.5, 6)
            ((2, 1), [0.242536, 0.970143], 0.242536)
        """
        x_star = as_vector(x_star, self.dim, "x_star")
        rtol = as_positive(rtol, "rtol")
        return row_space(self._evaluate(self._output_jacobian, x_star), rtol=rtol).T

    def project_to_minima(self, x, *, tol: float = 1e-13, max_iter: int = 50, accept: float = 1e-10) -> np.ndarray:
        """A point of ``X* = {x : p(x) = y}`` near ``x`` by Gauss–Newton, ``x ← x − J⁺(p(x) − y)``.

        Each step is the minimum-norm correction, so the result lies close to ``x``;
        it is *not* the flow's limit ``Φ(x)`` (the two differ by ``O(dist(x, X*)²)``,
        docs/theory.md §6).

        Args:
            x: starting point.
            tol: stop when ``‖p(x) − y‖ ≤ tol · (1 + ‖y‖)``.
            max_iter: at most this many steps.
            accept: the residual test of the fast Cholesky route to ``J⁺r`` (see :func:`min_norm_solution`).

        Raises:
            ConvergenceError: if the residual is not below ``tol`` after ``max_iter`` steps.

        Examples:
            >>> from flatref.problems import Example1
            >>> x = Example1().project_to_minima([2.0, 0.6])
            >>> round(float(x[0] * x[1]), 12)
            1.0
        """
        x = as_vector(x, self.dim, "x")
        tol = as_positive(tol, "tol")
        max_iter = as_int(max_iter, "max_iter", minimum=1)
        target = tol * (1.0 + np.linalg.norm(self._y))
        with np.errstate(all="ignore"):  # a step that overflows ends the iteration below
            for _ in range(max_iter + 1):
                residual = self._outputs(x) - self._y
                if np.linalg.norm(residual) <= target:
                    return x
                J = self._output_jacobian(x)
                if not (np.all(np.isfinite(residual)) and np.all(np.isfinite(J))):
                    break
                x = x - min_norm_solution(J, residual, accept=accept)
        raise ConvergenceError(
            f"Gauss-Newton projection onto the minima set of {self!r} did not reach "
            f"residual {target:.1e} in {max_iter} steps"
        )


class Unchecked:
    """A problem's derivatives without input checks (see :attr:`Problem.unchecked`).

    Examples:
        >>> import numpy as np
        >>> from flatref.problems import Example1
        >>> fast = Unchecked(Example1())
        >>> round(float(fast.trace_hess(np.array([3.0, 1 / 3]))), 6), fast.outputs(np.array([2.0, 3.0])).tolist()
        (18.222222, [6.0])
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        self.f, self.grad, self.hess, self.hess_vec = problem._f, problem._grad, problem._hess, problem._hess_vec
        self.value_and_grad = problem._value_and_grad
        self.third_contract, self.trace_hess = problem._third_contract, problem._trace_hess
        self.grad_trace_hess = problem._grad_trace_hess
        if isinstance(problem, TrainingLoss):
            self.outputs, self.output_jacobian = problem._outputs, problem._output_jacobian
            self.sample_grad, self.labels = problem._sample_grad, problem._labels


def row_space(J, *, rtol: float) -> np.ndarray:
    """An orthonormal basis of the row space of ``J`` (``k × d``, one vector per row): the right singular
    vectors with singular value above ``rtol · σ_max`` (none if ``J = 0``).

    Examples:
        >>> row_space(np.array([[3.0, 0.0, 0.0], [0.0, 1e-9, 0.0]]), rtol=1e-6).tolist()   # the second row is cut
        [[1.0, 0.0, 0.0]]
    """
    _, s, Vt = np.linalg.svd(J, full_matrices=False)
    return Vt[s > rtol * s[0]] if s.size and s[0] > 0 else np.zeros((0, J.shape[1]))


def min_norm_solution(J, r, *, accept: float = 1e-10):
    """``J⁺r`` for a wide ``J`` of full row rank: ``Jᵀ(JJᵀ)⁻¹r`` by a Gram solve (``O(n²d)``), else ``lstsq``.

    The Gram route squares the condition number, so it is kept only when its residual
    passes ``‖J s − r‖ ≤ accept · ‖r‖``; a rank-deficient or ill-conditioned ``J`` falls
    back to the SVD-based ``lstsq``. The default ``1e-10`` is far above the ``~1e-14``
    of a well-conditioned solve and far below the error of a poor one.

    The solve is numpy's (LU, ``2n³/3`` flops against Cholesky's ``n³/3``, small beside the ``n²d`` of ``JJᵀ``),
    not scipy's ``cho_solve``: the numpy and scipy wheels each bundle an OpenBLAS with its own threads, and scipy's
    right after numpy's ``JJᵀ`` waits for numpy's still-spinning threads on a machine with few cores (60–110 ms
    against 1–2 ms for ``n = 400`` on 2 cores).

    Examples:
        >>> import numpy as np
        >>> J = np.array([[1.0, 1.0, 0.0]])
        >>> min_norm_solution(J, np.array([2.0])).round(12).tolist()
        [1.0, 1.0, 0.0]
    """
    try:
        step = J.T @ np.linalg.solve(J @ J.T, r)
        if np.linalg.norm(J @ step - r) <= accept * np.linalg.norm(r):
            return step
    except np.linalg.LinAlgError:
        pass
    return np.linalg.lstsq(J, r, rcond=None)[0]
