"""Overparameterized symmetric matrix sensing.

``f(U) = (1/2m) Σ_i (⟨A_i, UUᵀ⟩ − y_i)²`` with symmetric ``A_i ∈ R^{n×n}``,
``U ∈ R^{n×r}`` and ``x = U.ravel()`` (row-major, ``x[a·r + b] = U[a, b]``). Setting 1
with ``p_i = ⟨A_i, UUᵀ⟩``, ``∇p_i = 2A_iU``, ``∇²p_i[V, W] = 2⟨V, A_iW⟩``.
With ``s_i = p_i − y_i`` (docs/theory.md §5):

- ``∇f = (2/m) S U`` with ``S = Σ_i s_i A_i``;
- ``∇²f[V, W] = (1/m) Σ_i [4⟨A_iU, V⟩⟨A_iU, W⟩ + 2 s_i ⟨V, A_iW⟩]``, so
  ``∇²f V = (4/m) (Σ_i ⟨A_i, VUᵀ⟩ A_i) U + (2/m) S V`` without forming the Hessian;
- ``∇³f[V, W] = (4/m) [(Σ_i ⟨A_i, VWᵀ⟩ A_i) U + (Σ_i ⟨A_i, WUᵀ⟩ A_i) V + (Σ_i ⟨A_i, VUᵀ⟩ A_i) W]``.

The trace needs no sum over samples at run time. With ``Q = Σ_i A_i²``,
``t_i = tr A_i`` and ``T = Σ_i t_i A_i`` (all precomputed):

``tr∇²f = (4/m) Σ_i ‖A_iU‖² + (2r/m) Σ_i s_i t_i = ⟨K, UUᵀ⟩ − (2r/m) yᵀt``,
``K = (4Q + 2rT)/m``, hence ``∇ tr∇²f = 2KU``: ``O(n²r)`` flops, less than one gradient
(``O(mn² + n²r)``).

On ``X*`` (all ``s_i = 0``) the trace is ``(4/m)⟨Q, UUᵀ⟩``, linear in ``M = UUᵀ``, so the
semidefinite program ``min (4/m)⟨Q, M⟩ s.t. ⟨A_i, M⟩ = y_i, M ⪰ 0`` bounds it from below; a
solution of rank ``≤ r`` is a certified flattest minimum (:meth:`MatrixSensing.flattest_minimum`,
needs the ``sdp`` extra: cvxpy).
"""

from __future__ import annotations

import numpy as np

from .._validation import as_array, as_int, as_positive, frozen_copy, make_rng, require_finite
from ..errors import CertificateError
from ._sdp import FlattestMinimum, flattest_minimum
from .base import TrainingLoss


class MatrixSensing(TrainingLoss):
    """``f(U) = (1/2m) Σ_i (⟨A_i, UUᵀ⟩ − y_i)²``, ``dim = n·r``.

    Args:
        A: sensing matrices, shape ``(m, n, n)``, each symmetric (to a relative
            ``1e-12``; they are then symmetrized exactly).
        y: measurements, shape ``(m,)``.
        r: the number of columns of ``U``.
        M_star: optional ground truth ``M*`` (symmetric PSD, ``y_i = ⟨A_i, M*⟩``);
            ``r`` must be at least its rank.
        symmetry_tol: ``A_i`` and ``M*`` must be symmetric to ``symmetry_tol`` times their
            largest entry (and ``1``): ``1e-12`` admits matrices symmetrized in floating
            point (``(G + Gᵀ)/2`` is exact) or read back from text, and rejects any real asymmetry.

    Examples:
        >>> import numpy as np
        >>> A = np.array([np.eye(2), [[0.0, 1.0], [1.0, 0.0]]])  # p_1 = tr UUᵀ = ‖U‖², p_2 = 2 Σ_b U_0b U_1b
        >>> p = MatrixSensing(A, [2.0, 2.0], r=1)
        >>> p.outputs([1.0, -1.0]).tolist(), float(p.f([1.0, -1.0])), float(p.f([1.0, 1.0]))  # (0² + 4²)/(2·2) = 4
        ([2.0, -2.0], 4.0, 0.0)
    """

    quadratic_outputs = True

    def __init__(self, A, y, r: int, *, M_star=None, symmetry_tol: float = 1e-12):
        A = as_array(A, "A", ndim=3)
        m, n, n2 = A.shape
        if n != n2:
            raise ValueError(f"A must have shape (m, n, n), got shape {A.shape}")
        self.symmetry_tol = as_positive(symmetry_tol, "symmetry_tol")
        asym = np.max(np.abs(A - A.transpose(0, 2, 1)), initial=0.0)
        if asym > self.symmetry_tol * max(1.0, np.max(np.abs(A), initial=0.0)):
            raise ValueError(f"A must hold symmetric matrices; max |A_i − A_iᵀ| = {asym:.3g}")
        y = as_array(y, "y", ndim=1)
        if y.shape != (m,):
            raise ValueError(f"y must have shape ({m},) to match A's {m} matrices, got shape {y.shape}")
        r = as_int(r, "r", minimum=1)
        super().__init__(n * r, y)
        self.n, self.r = n, r
        self._A = frozen_copy((A + A.transpose(0, 2, 1)) / 2)
        self._A_flat = self._A.reshape(m, n * n)
        self.M_star = None if M_star is None else frozen_copy(self._check_truth(M_star))
        self._flattest = {}  # the semidefinite program's certified solution (or its failure), on first request
        # Precomputed for the trace: tr∇²f = ⟨K, UUᵀ⟩ + trace_offset.
        with np.errstate(all="ignore"):
            t = np.trace(self._A, axis1=1, axis2=2)
            stacked = self._A.reshape(m * n, n)
            Q = stacked.T @ stacked  # Σ_i A_iᵀA_i = Σ_i A_i², one matrix product
            T = (t @ self._A_flat).reshape(n, n)
            self._K = frozen_copy((4 * Q + 2 * r * T) / m)
            self._trace_offset = -2.0 * r * (self._y @ t) / m
        require_finite(self._K, "A", "the trace's coefficient Σ_i A_i²")
        require_finite(self._trace_offset, "y", "the trace's offset Σ_i y_i tr A_i")

    def _check_truth(self, M_star) -> np.ndarray:
        M = as_array(M_star, "M_star", ndim=2)
        if M.shape != (self.n, self.n):
            raise ValueError(f"M_star must have shape ({self.n}, {self.n}), got shape {M.shape}")
        tol = self.symmetry_tol
        if not np.allclose(M, M.T, rtol=tol, atol=tol * max(1.0, np.max(np.abs(M)))):
            raise ValueError("M_star must be symmetric")
        rank = np.linalg.matrix_rank(M)
        if self.r < rank:
            raise ValueError(f"r must be at least the rank of M_star ({rank}), got r = {self.r}")
        return M

    def __repr__(self) -> str:
        return f"MatrixSensing(n_measurements={self.n_samples}, n={self.n}, r={self.r})"

    @classmethod
    def random(cls, n: int, r: int, true_rank: int, n_measurements: int, rng=0) -> "MatrixSensing":
        """``A_i = (G_i + G_iᵀ)/2`` with Gaussian ``G_i``, and ``M* = U*U*ᵀ``.

        ``U* ∈ R^{n×true_rank}`` has entries ``N(0, 1/n)``, so ``‖M*‖`` is of order one.

        Examples:
            >>> import numpy as np
            >>> p = MatrixSensing.random(3, 2, 1, 4, rng=0)  # y_i = ⟨A_i, M*⟩ with M* of rank 1
            >>> bool(np.allclose(p.y, np.einsum("iab,ab->i", p.A, p.M_star))), int(np.linalg.matrix_rank(p.M_star))
            (True, 1)
        """
        n = as_int(n, "n", minimum=1)
        r = as_int(r, "r", minimum=1)
        true_rank = as_int(true_rank, "true_rank", minimum=1)
        m = as_int(n_measurements, "n_measurements", minimum=1)
        if true_rank > n:
            raise ValueError(f"true_rank must be <= n = {n}, got {true_rank}")
        if r < true_rank:
            raise ValueError(f"r must be at least true_rank = {true_rank} (overparameterized), got r = {r}")
        rng = make_rng(rng)
        G = rng.standard_normal((m, n, n))
        A = (G + G.transpose(0, 2, 1)) / 2
        U_star = rng.standard_normal((n, true_rank)) / np.sqrt(n)
        M_star = U_star @ U_star.T
        return cls(A, np.einsum("iab,ab->i", A, M_star), r, M_star=M_star)

    @property
    def A(self) -> np.ndarray:
        """The sensing matrices (read-only).

        Examples:
            >>> import numpy as np
            >>> A = MatrixSensing.random(3, 2, 1, 4, rng=0).A
            >>> A.shape, bool(np.array_equal(A, A.transpose(0, 2, 1))), A.flags.writeable  # m symmetric n × n
            ((4, 3, 3), True, False)
        """
        return self._A

    def as_matrix(self, x) -> np.ndarray:
        """The factor ``U`` (an ``n × r`` view of ``x``).

        Examples:
            >>> p = MatrixSensing.random(3, 2, 1, 4, rng=0)
            >>> p.as_matrix(list(range(6))).tolist()  # row-major: x[a·r + b] = U[a, b]
            [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
        """
        return self._point(x).reshape(self.n, self.r)

    def recovery_error(self, x) -> float:
        """``‖UUᵀ − M*‖_F / ‖M*‖_F``.

        Examples:
            >>> import numpy as np
            >>> p = MatrixSensing.random(3, 2, 1, 4, rng=0)
            >>> R = np.array([[0.6, -0.8], [0.8, 0.6]])  # orthogonal: (U*R)(U*R)ᵀ = U*U*ᵀ = M*
            >>> round(p.recovery_error((p.truth_factor() @ R).ravel()), 12), p.recovery_error(np.zeros(6))
            (0.0, 1.0)
        """
        if self.M_star is None:
            raise ValueError("recovery_error needs M_star")
        U = self.as_matrix(x)
        return float(np.linalg.norm(U @ U.T - self.M_star) / np.linalg.norm(self.M_star))

    # ------------------------------------------------------------- helpers
    def _U(self, x):
        return x.reshape(self.n, self.r)

    def _inner(self, *mats):
        """``⟨A_i, M⟩`` for each matrix ``M`` given: shape ``(m, len(mats))``."""
        return self._A_flat @ np.stack([M.ravel() for M in mats], axis=1)

    def _combine(self, coef):
        """``Σ_i coef[i, j] A_i`` for each column ``j`` of ``coef``: shape ``(columns, n, n)``."""
        return (coef.T @ self._A_flat).reshape(-1, self.n, self.n)

    # -------------------------------------------------------------- Setting 1
    def _outputs(self, x, idx=slice(None)):
        U = self._U(x)
        return self._A_flat[idx] @ (U @ U.T).ravel()

    def _output_jacobian(self, x, idx=slice(None)):
        AU = self._A[idx] @ self._U(x)  # (b, n, r)
        return 2.0 * AU.reshape(AU.shape[0], -1)

    def _output_hessians(self, x, idx=slice(None)):
        eye = np.eye(self.r)
        return 2.0 * np.stack([np.kron(A_i, eye) for A_i in self._A[idx]])

    # ----------------------------------------------------------- closed forms
    def _f(self, x):
        s = self._outputs(x) - self._y
        return (s @ s) / (2 * self.n_samples)

    def _grad(self, x):
        U = self._U(x)
        (S,) = self._combine((self._outputs(x) - self._y)[:, None])
        return (2.0 / self.n_samples) * (S @ U).ravel()

    def _value_and_grad(self, x):
        s = self._outputs(x) - self._y
        (S,) = self._combine(s[:, None])
        return (s @ s) / (2 * self.n_samples), (2.0 / self.n_samples) * (S @ self._U(x)).ravel()

    def _hess(self, x):
        J = self._output_jacobian(x)
        (S,) = self._combine((self._outputs(x) - self._y)[:, None])
        return (J.T @ J + 2.0 * np.kron(S, np.eye(self.r))) / self.n_samples

    def _hess_vec(self, x, V):
        # ∇²f[V] = (4/m) (Σ_i ⟨A_i, VUᵀ⟩ A_i) U + (2/m) S V, column by column: O(mn² + n²r) each.
        U = self._U(x)
        (S,) = self._combine((self._outputs(x) - self._y)[:, None])
        cols = V.reshape(self.dim, -1).T.reshape(-1, self.n, self.r)
        C = self._combine(self._inner(*(W @ U.T for W in cols)))
        out = (4.0 * C @ U + 2.0 * S @ cols) / self.n_samples
        return out.reshape(len(cols), self.dim).T.reshape(V.shape)

    def _third(self, x):
        # T[(a,b),(c,e),(g,h)] = B[a,c,g,h] δ_be + B[a,g,c,e] δ_bh + B[c,g,a,b] δ_eh,
        # B[a,c,g,h] = (4/m) Σ_i A_i[a,c] (A_iU)[g,h]   (docs/theory.md §5, ∇³f[V, W, Z]).
        U = self._U(x)
        B = (4.0 / self.n_samples) * np.einsum("iac,igh->acgh", self._A, self._A @ U)
        eye = np.eye(self.r)
        T = (
            np.einsum("acgh,be->abcegh", B, eye)
            + np.einsum("agce,bh->abcegh", B, eye)
            + np.einsum("cgab,eh->abcegh", B, eye)
        )
        return T.reshape((self.dim,) * 3)

    def _third_contract(self, x, v, w):
        U, V, W = self._U(x), self._U(v), self._U(w)
        CU, CV, CW = self._combine(self._inner(V @ W.T, W @ U.T, V @ U.T))
        return (4.0 / self.n_samples) * (CU @ U + CV @ V + CW @ W).ravel()

    def _trace_hess(self, x):
        U = self._U(x)
        return np.sum(self._K * (U @ U.T)) + self._trace_offset

    def _grad_trace_hess(self, x):
        return 2.0 * (self._K @ self._U(x)).ravel()

    # ------------------------------------------------------- known exactly
    def truth_factor(self) -> np.ndarray:
        """The ground truth as a point: ``[U*, 0]`` with ``U*U*ᵀ = M*`` (by eigen-decomposition), shape ``(n, r)``.

        Examples:
            >>> import numpy as np
            >>> p = MatrixSensing.random(3, 2, 1, 4, rng=0)
            >>> U = p.truth_factor()  # rank 1: the second column is zero
            >>> bool(np.allclose(U @ U.T, p.M_star)), U[:, 1].tolist(), round(float(p.f(U.ravel())), 12)
            (True, [0.0, 0.0, 0.0], 0.0)
        """
        if self.M_star is None:
            raise ValueError(f"{self!r} has no ground truth M_star: pass M_star to the constructor")
        lam, vecs = np.linalg.eigh(self.M_star)
        k = np.linalg.matrix_rank(self.M_star)
        top = np.argsort(lam)[::-1][:k]
        U = np.zeros((self.n, self.r))
        U[:, :k] = vecs[:, top] * np.sqrt(np.maximum(lam[top], 0.0))
        return U

    def random_minimum(self, rng=None) -> np.ndarray:
        """The Gauss–Newton projection onto ``X*`` of ``[U*, 0] + 0.3 N(0, 1/n)`` noise.

        Examples:
            >>> import numpy as np
            >>> p = MatrixSensing.random(3, 2, 1, 4, rng=0)
            >>> x = p.random_minimum(rng=1)
            >>> bool(np.allclose(p.outputs(x), p.y)), bool(np.allclose(p.grad(x), 0.0))  # ⟨A_i, UUᵀ⟩ = y_i: a minimum
            (True, True)
        """
        rng = make_rng(rng)
        U0 = self.truth_factor() + 0.3 * rng.standard_normal((self.n, self.r)) / np.sqrt(self.n)
        return self.project_to_minima(U0.ravel())

    def sharp_minimum(self, scale: float = 1.0, rng=0, *, distinct_tol: float = 1e-6) -> np.ndarray:
        """An interpolant with large extra columns: ``[U*, scale·N(0, 1/n)]`` projected onto ``X*``.

        Needs ``r`` above the rank ``k`` of ``M*`` and few enough measurements that
        ``X*`` holds interpolants other than ``UUᵀ = M*``. With Gaussian ``A_i`` that
        stops once ``m`` is about ``2nk`` or more: ``M*`` is then the only PSD matrix
        consistent with the measurements, ``X*`` is the orbit ``{U*R : RRᵀ = I}`` and
        every minimum is equally flat (``tr∇²f = ⟨K, M*⟩ + const``).

        Args:
            scale: the size of the extra columns before the projection.
            rng: seed or generator of the extra columns.
            distinct_tol: the projection has landed on ``UUᵀ = M*`` when the recovery error is
                below this; a sharp interpolant stands ``O(scale)`` away, the truth within the
                projection's ``1e-13``, and ``1e-6`` lies far from both.

        Raises:
            ValueError: if ``r = k``, or if the projection lands on ``UUᵀ = M*`` (no sharper
                interpolant near the start).

        Examples:
            >>> import numpy as np
            >>> p = MatrixSensing.random(3, 2, 1, 4, rng=0)  # m = 4 < 2nk = 6: interpolants other than M* exist
            >>> x = p.sharp_minimum()
            >>> bool(np.allclose(p.outputs(x), p.y)), p.recovery_error(x) > 0.1  # on X*, yet UUᵀ ≠ M*
            (True, True)
        """
        scale = as_positive(scale, "scale")
        U0 = self.truth_factor()
        k = np.linalg.matrix_rank(self.M_star)
        if k == self.r:
            raise ValueError(f"sharp_minimum needs r > rank(M_star) = {k} (room for extra columns)")
        U0[:, k:] = scale * make_rng(rng).standard_normal((self.n, self.r - k)) / np.sqrt(self.n)
        x = self.project_to_minima(U0.ravel())
        if self.recovery_error(x) < as_positive(distinct_tol, "distinct_tol"):
            raise ValueError(
                f"{self!r}: the projection landed on UUᵀ = M*; with m = {self.n_samples} measurements M* is "
                "likely the only PSD interpolant, so no minimum is sharper than another (use fewer measurements)"
            )
        return x

    def flattest_minimum(self, *, solver: str = "SCS", rank_tol: float = 1e-6,
                         gap_tol: float = 1e-8) -> FlattestMinimum:  # fmt: skip
        """The certified global flattest minimum, from the SDP ``min ⟨C, M⟩ s.t. ⟨A_i, M⟩ = y_i, M ⪰ 0``.

        On ``X*`` the trace is ``tr∇²f = ⟨C, UUᵀ⟩`` with ``C = (4/m) Σ_i A_i²``, and the factors
        of ``X*`` give exactly ``{M ⪰ 0 : rank M ≤ r, ⟨A_i, M⟩ = y_i}``. The SDP drops the rank,
        so its value bounds the trace at every interpolating minimum from below; a solution of
        rank ``≤ r`` is attained by a factor ``U``: the flattest minimum, certified. It is the
        truth ``UUᵀ = M*`` exactly when ``M*`` solves the SDP (see docs/theory.md §5).
        The solver's ``M`` is polished onto ``X*`` and the bound recomputed from its dual
        (:mod:`flatref.problems._sdp`); one program per setting, cached.

        Args:
            solver: ``"SCS"`` or ``"CLARABEL"`` (through cvxpy, at tolerances ``1e-12``).
            rank_tol: eigenvalues of ``M`` below ``rank_tol · λ_max`` count as zero. The solvers leave
                ``1e-12`` (SCS) to ``1e-9`` (Clarabel) of ``λ_max`` in the zero eigenvalues, and
                those of the solutions seen are above ``1e-2``; a wrong cut shows in the gap.
            gap_tol: the largest duality gap accepted, relative to ``max(1, tr)``.

        Returns:
            :class:`~flatref.problems._sdp.FlattestMinimum`: the point, ``M``, the trace and its
            certificate (duality gap, primal residual, rank, solver status).

        Raises:
            MissingExtraError: without cvxpy (``pip install 'flatref[sdp]'``).
            CertificateError: if the SDP's solution has rank above ``r``, the program is infeasible
                (no PSD ``M`` fits ``y``) or fails, or the gap exceeds ``gap_tol``.

        Examples:
            >>> p = MatrixSensing.random(10, 4, 1, 18, rng=2)  # the sensing-18 setup with seed 2
            >>> best = p.flattest_minimum()  # doctest: +SKIP
            >>> round(best.trace, 2), best.rank, best.duality_gap < 1e-8  # doctest: +SKIP
            (17.61, 4, True)
            >>> round(best.recovery_error, 2)  # not the truth  # doctest: +SKIP
            0.55
            >>> round(float(p.trace_hess(p.truth_factor().ravel())), 2)  # the truth is sharper
            19.02
        """
        key = (str(solver).upper(), as_positive(rank_tol, "rank_tol"), as_positive(gap_tol, "gap_tol"))
        if key not in self._flattest:
            try:
                self._flattest[key] = flattest_minimum(self, solver=key[0], rank_tol=key[1], gap_tol=key[2])
            except CertificateError as err:
                self._flattest[key] = err
        found = self._flattest[key]
        if isinstance(found, CertificateError):
            raise CertificateError(*found.args)
        return found

    def flat_minima(self, **options) -> tuple[np.ndarray, ...]:
        """The certified flattest minimum :meth:`flattest_minimum` as a point, ``(x,)``.

        Every ``UR`` with ``RRᵀ = I`` is as flat (the trace depends on ``UUᵀ`` only); one is given.

        Args:
            **options: ``solver``, ``rank_tol``, ``gap_tol`` of :meth:`flattest_minimum`.

        Raises:
            MissingExtraError, CertificateError: as :meth:`flattest_minimum`; both are also
                ``NotImplementedError``, so :func:`~flatref.flatness.flattest_trace` returns ``None``.

        Examples:
            >>> import numpy as np
            >>> p = MatrixSensing.random(10, 4, 1, 18, rng=0)  # the README's instance: here flattest is the truth
            >>> (x,) = p.flat_minima()  # doctest: +SKIP
            >>> bool(np.allclose(p.outputs(x), p.y)), p.recovery_error(x) < 1e-10  # doctest: +SKIP
            (True, True)
        """
        return (self.flattest_minimum(**options).x.copy(),)
