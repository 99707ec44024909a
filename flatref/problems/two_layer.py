"""A two-layer tanh network with biases and ``K`` outputs, as a Setting-1 training loss.

The model on inputs ``a_i ∈ R^m`` (``i = 1 … n``) with ``h`` hidden units is
``p_i(x) = W2 tanh(W1 a_i + b1) + b2 ∈ R^K``, and the loss is
``f(x) = (1/n) Σ_i (w/2)‖p_i(x) − y_i‖²`` (``w`` the :class:`~flatref.problems.SquaredLoss`
weight). The parameters are packed as ``x = concat(W1.ravel(), b1, W2.ravel(), b2)``
(``W1`` is ``h × m`` and ``W2`` is ``K × h``, both row-major), so ``d = hm + h + Kh + K``.

Notation, per sample (rows are samples below: ``A`` is ``n × m``, ``S`` is ``n × h``, ``R`` is
``n × K``): ``z_i = W1 a_i + b1``, ``s = tanh z``, ``s′ = 1 − s²``, ``s″ = −2 s s′``,
``s‴ = −2 s′ (1 − 3 s²)``; residuals ``R = S W2ᵀ + b2 − Y`` and ``E = (w/n) R`` (the loss's
derivative in the outputs); ``⊙`` is the entrywise product; ``α_i = ‖a_i‖² + 1``. Closed forms,
each ``O(nh(m + K))`` (never a ``d × d`` matrix or a ``d × d × d`` tensor):

- **Gradient (backprop).** ``Δ = (E W2) ⊙ s′``; ``∇_W1 f = Δᵀ A``, ``∇_b1 f = Σ_i Δ_i``,
  ``∇_W2 f = Eᵀ S``, ``∇_b2 f = Σ_i E_i``.
- **Hessian-vector product (Pearlmutter's R-operator).** For a direction
  ``u = (U1, c1, U2, c2)``: ``ż = A U1ᵀ + c1``, ``ṗ = S U2ᵀ + (s′ ⊙ ż) W2ᵀ + c2``, ``Ė = (w/n) ṗ``,
  ``δ̇ = E U2 + Ė W2``, ``Δ̇ = δ̇ ⊙ s′ + (E W2) ⊙ s″ ⊙ ż``; then ``∇²f u`` is
  ``(Δ̇ᵀA, Σ_i Δ̇_i, ĖᵀS + Eᵀ(s′ ⊙ ż), Σ_i Ė_i)``.
- **Third derivative** ``∇³f[u, v]``: the derivative of the product above along
  ``v = (V1, d1, V2, d2)`` (``ż_u, ż_v``, ``ṗ_u, ṗ_v``, ``Ė_u, Ė_v`` as above):
  ``p̈ = (s′ ⊙ ż_u) V2ᵀ + (s′ ⊙ ż_v) U2ᵀ + (s″ ⊙ ż_u ⊙ ż_v) W2ᵀ``, ``Ë = (w/n) p̈``,
  ``δ̈ = Ė_v U2 + Ė_u V2 + Ë W2``, and
  ``Δ̈ = δ̈ ⊙ s′ + (δ̇_u ⊙ ż_v + δ̇_v ⊙ ż_u) ⊙ s″ + (E W2) ⊙ s‴ ⊙ ż_u ⊙ ż_v``; then ``∇³f[u, v]`` is
  ``(Δ̈ᵀA, Σ_i Δ̈_i, ËᵀS + Ė_uᵀ(s′ ⊙ ż_v) + Ė_vᵀ(s′ ⊙ ż_u) + Eᵀ(s″ ⊙ ż_u ⊙ ż_v), Σ_i Ë_i)``.
- **Trace of the Hessian.** ``tr∇²f = (w/n) Σ_{i,k} [‖∇p_ik‖² + r_ik tr∇²p_ik]`` with
  ``Σ_k ‖∇p_ik‖² = K(‖s_i‖² + 1) + α_i Σ_j c_j s′_ij²`` (``c_j = Σ_k W2_kj²``) and
  ``tr∇²p_ik = α_i Σ_j W2_kj s″_ij =: G_ik`` (only the first layer's diagonal second derivatives
  are non-zero). With ``Q = R W2``:
  ``tr∇²f = (w/n) [K Σ_ij s_ij² + nK + Σ_ij α_i (c_j s′_ij² + Q_ij s″_ij)]``.
- **Its gradient.** ``Γ = 2K s ⊙ s′ + α ⊙ (2 c ⊙ s′ ⊙ s″ + Q ⊙ s‴) + (G W2) ⊙ s′`` (the
  derivative in ``z``; the last term comes through ``R``); then ``∇ tr∇²f = (w/n) (ΓᵀA, Σ_i Γ_i,
  2 W2 ⊙ (αᵀ s′²) + Rᵀ(α ⊙ s″) + GᵀS, Σ_i G_i)``.

The dense ``_output_jacobian`` (``nK × d``), ``_output_hessians`` and ``_output_thirds`` exist
for small problems and for checking the closed forms against the generic chain rule of
:class:`~flatref.problems.TrainingLoss`; the two tensors refuse large sizes. ``tanh`` is
holomorphic, so every derivative takes complex points (complex-step differentiation).
"""

from __future__ import annotations

import numpy as np

from scipy.linalg import cho_factor, cho_solve

from .._validation import as_array, as_int, as_positive, as_vector, frozen_copy, make_rng, require_finite
from ..errors import ConvergenceError
from .base import SquaredLoss, TrainingLoss

#: ``_output_hessians`` and ``_output_thirds`` refuse ``d`` above this, and arrays above
#: :data:`MAX_DENSE_ENTRIES` entries: they are meant for checking on small problems.
MAX_DENSE_DIM = 2000
#: 5·10⁷ entries are 400 MB of float64.
MAX_DENSE_ENTRIES = 50_000_000
#: ``_hess_vec`` handles its columns in chunks of at most this many ``n × h`` intermediates.
_CHUNK_ENTRIES = 4_000_000


class TwoLayerNetwork(TrainingLoss):
    """``f(x) = (1/n) Σ_i (w/2)‖W2 tanh(W1 a_i + b1) + b2 − y_i‖²``, ``d = hm + h + Kh + K``.

    Args:
        inputs: the inputs ``a_i`` as rows, shape ``(n, m)``.
        labels: shape ``(n, K)``, or ``(n,)`` for one output (then the public output shapes are
            those of scalar outputs, see :class:`~flatref.problems.TrainingLoss`).
        hidden: the width ``h ≥ 1``.
        loss: a :class:`~flatref.problems.SquaredLoss` (default weight ``w = 1``).

    Examples:
        >>> import numpy as np
        >>> net = TwoLayerNetwork(np.eye(2), [[1.0, 0.0], [0.0, 1.0]], hidden=3)  # n = m = K = 2
        >>> net.dim, net.n_outputs  # 3·2 + 3 + 2·3 + 2
        (17, 2)
        >>> x = net.initial_point(rng=0)
        >>> p = net.predict(x, net.inputs)  # biases start at 0: p_i = W2 tanh(W1 a_i)
        >>> W1, b1, W2, b2 = net.unpack(x)
        >>> bool(np.allclose(p, np.tanh(net.inputs @ W1.T) @ W2.T))
        True
        >>> bool(np.isclose(net.f(x), np.sum((p - net.y) ** 2) / 4, rtol=1e-15, atol=0))  # (1/n) Σ_i ‖p_i − y_i‖²/2
        True
        >>> H = net.hess(x)  # closed-form trace against the dense Hessian
        >>> bool(np.isclose(net.trace_hess(x), np.trace(H), rtol=1e-12))
        True
    """

    def __init__(self, inputs, labels, hidden: int, *, loss: SquaredLoss | None = None):
        inputs = as_array(inputs, "inputs", ndim=2)
        n, m = inputs.shape
        if n == 0 or m == 0:
            raise ValueError(f"inputs must have at least one sample and one feature, got shape {inputs.shape}")
        labels = as_array(labels, "labels")
        if labels.ndim not in (1, 2) or labels.shape[0] != n or labels.size == 0:
            raise ValueError(f"labels must have shape ({n},) or ({n}, K) to match inputs' {n} samples, "
                             f"got shape {labels.shape}")  # fmt: skip
        hidden = as_int(hidden, "hidden", minimum=1)
        if loss is not None and not isinstance(loss, SquaredLoss):
            raise TypeError(f"loss must be a SquaredLoss (the closed forms assume it), got {type(loss).__name__}")
        K = labels.shape[1] if labels.ndim == 2 else 1
        super().__init__(hidden * (m + 1) + K * (hidden + 1), labels, loss)
        self._A = frozen_copy(inputs)
        self._hidden = hidden
        with np.errstate(all="ignore"):
            alpha = np.sum(inputs * inputs, axis=1) + 1.0
        require_finite(alpha, "inputs", "the squared norms ‖a_i‖² + 1")
        self._alpha = frozen_copy(alpha)
        self._Y = self._y.reshape(n, K)

    def __repr__(self) -> str:
        return (f"TwoLayerNetwork(n_samples={self.n_samples}, n_inputs={self.n_inputs}, hidden={self.hidden}, "
                f"n_outputs={self.n_outputs})")  # fmt: skip

    # ------------------------------------------------------------ properties
    @property
    def inputs(self) -> np.ndarray:
        """The inputs ``a_i`` as rows (read-only), shape ``(n, m)``.

        Examples:
            >>> net = TwoLayerNetwork([[1.0, 2.0], [3.0, 4.0]], [0.0, 1.0], hidden=2)
            >>> net.inputs.tolist(), net.inputs.flags.writeable
            ([[1.0, 2.0], [3.0, 4.0]], False)
        """
        return self._A

    @property
    def hidden(self) -> int:
        """The width ``h`` of the hidden layer.

        Examples:
            >>> TwoLayerNetwork([[1.0, 2.0]], [0.0], hidden=5).hidden
            5
        """
        return self._hidden

    @property
    def n_inputs(self) -> int:
        """The input dimension ``m``.

        Examples:
            >>> net = TwoLayerNetwork([[1.0, 2.0, 3.0]], [0.0], hidden=2)
            >>> net.n_inputs, net.dim  # hm + h + Kh + K = 6 + 2 + 2 + 1
            (3, 11)
        """
        return self._A.shape[1]

    # ------------------------------------------------------------ parameters
    def unpack(self, x):
        """``(W1, b1, W2, b2)``, views of ``x`` of shapes ``(h, m)``, ``(h,)``, ``(K, h)``, ``(K,)``.

        Examples:
            >>> net = TwoLayerNetwork([[1.0, 2.0]], [[0.0, 1.0]], hidden=2)  # m = 2, h = 2, K = 2
            >>> [part.tolist() for part in net.unpack(range(net.dim))]
            [[[0.0, 1.0], [2.0, 3.0]], [4.0, 5.0], [[6.0, 7.0], [8.0, 9.0]], [10.0, 11.0]]
        """
        return self._unpack(self._point(x))

    def pack(self, W1, b1, W2, b2) -> np.ndarray:
        """The point ``x = concat(W1.ravel(), b1, W2.ravel(), b2)``; the inverse of :meth:`unpack`.

        Examples:
            >>> import numpy as np
            >>> net = TwoLayerNetwork([[1.0, 2.0]], [[0.0, 1.0]], hidden=2)
            >>> x = np.arange(net.dim, dtype=float)
            >>> bool(np.array_equal(net.pack(*net.unpack(x)), x))
            True
            >>> net.pack(np.zeros((2, 3)), np.zeros(2), np.zeros((2, 2)), np.zeros(2))
            Traceback (most recent call last):
            ...
            ValueError: W1 must have shape (2, 2), got shape (2, 3)
        """
        h, m, K = self._hidden, self.n_inputs, self.n_outputs
        parts = []
        for value, name, shape in ((W1, "W1", (h, m)), (b1, "b1", (h,)), (W2, "W2", (K, h)), (b2, "b2", (K,))):
            arr = as_array(value, name, allow_complex=True)
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got shape {arr.shape}")
            parts.append(arr.ravel())
        return np.concatenate(parts)

    def initial_point(self, rng=0, *, scale: float = 1.0) -> np.ndarray:
        """A random start: ``W1 ~ N(0, scale²/m)``, ``W2 ~ N(0, scale²/h)`` entrywise, biases ``0``.

        ``W1`` is drawn first, then ``W2``; ``rng`` is a seed, ``None`` or a ``Generator`` (SPEC 7).

        Examples:
            >>> import numpy as np
            >>> net = TwoLayerNetwork(np.ones((3, 400)), np.zeros((3, 2)), hidden=500)
            >>> W1, b1, W2, b2 = net.unpack(net.initial_point(rng=0, scale=2.0))
            >>> round(float(W1.std() * 400**0.5), 1), round(float(W2.std() * 500**0.5), 1), float(abs(b1).max())
            (2.0, 2.0, 0.0)
        """
        rng = make_rng(rng)
        scale = as_positive(scale, "scale")
        h, m, K = self._hidden, self.n_inputs, self.n_outputs
        W1 = rng.standard_normal((h, m)) * (scale / np.sqrt(m))
        W2 = rng.standard_normal((K, h)) * (scale / np.sqrt(h))
        return np.concatenate([W1.ravel(), np.zeros(h), W2.ravel(), np.zeros(K)])

    def predict(self, x, inputs) -> np.ndarray:
        """The outputs ``W2 tanh(W1 a + b1) + b2`` on any inputs (rows), always of shape ``(N, K)``.

        Unlike :meth:`outputs`, the shape is ``(N, K)`` even for labels of shape ``(n,)``.

        Examples:
            >>> import numpy as np
            >>> net = TwoLayerNetwork([[1.0, 0.0]], [0.5], hidden=1)
            >>> x = net.pack([[1.0, 0.0]], [0.0], [[2.0]], [0.5])  # p(a) = 2 tanh(a_1) + 0.5
            >>> net.predict(x, [[0.0, 3.0], [np.arctanh(0.5), 0.0]]).tolist()
            [[0.5], [1.5]]
        """
        x = self._point(x)
        inputs = as_array(inputs, "inputs", ndim=2)
        if inputs.shape[1] != self.n_inputs:
            raise ValueError(f"inputs must have shape (N, {self.n_inputs}), got shape {inputs.shape}")
        return self._evaluate(self._predict, x, inputs)

    def _predict(self, x, inputs):
        W1, b1, W2, b2 = self._unpack(x)
        return np.tanh(inputs @ W1.T + b1) @ W2.T + b2

    # ------------------------------------------------------- the geometry of X*
    def gauss_newton_gram(self, x) -> np.ndarray:
        """``J(x)J(x)ᵀ``, shape ``(nK, nK)``, rows sample-major as :attr:`y`'s rows.

        Examples:
            >>> net = TwoLayerNetwork(np.eye(3), np.eye(3)[[0, 2, 1]], hidden=4)
            >>> x = net.initial_point(rng=0)
            >>> J = net.output_jacobian(x).reshape(9, net.dim)
            >>> bool(np.allclose(net.gauss_newton_gram(x), J @ J.T, rtol=1e-13, atol=1e-13))
            True
        """
        return self._evaluate(self._gram, self._point(x))

    def _gram(self, x):
        _, _, W2, _, A, S, _ = self._forward(x)
        return self._gram_of(A, S, W2)

    def _gram_of(self, A, S, W2):
        """``JJᵀ`` from the forward pass: ``(a_iᵀa_i′ + 1) Σ_j W2_kj W2_k′j s′_ij s′_i′j + δ_kk′ (s_iᵀs_i′ + 1)``."""
        K = self.n_outputs
        B = ((1.0 - S * S)[:, None, :] * W2[None, :, :]).reshape(-1, self.hidden)  # W2_kj s′_ij
        outer = np.kron(A @ A.T + 1.0, np.ones((K, K)))
        return (B @ B.T) * outer + np.kron(S @ S.T + 1.0, np.eye(K))

    def project_to_minima(self, x, *, tol: float = 1e-13, max_iter: int = 50, accept: float = 1e-10) -> np.ndarray:
        """A point of ``X* = {p(x) = y}`` near ``x`` by Gauss–Newton, ``x ← x − Jᵀ(JJᵀ)⁻¹(p(x) − y)``.

        ``JJᵀ`` (``nK × nK``) comes from its structure (:meth:`gauss_newton_gram`, ``O((nK)² h)``
        instead of ``O((nK)² d)``) and ``Jᵀv`` by the gradient's backpropagation, never the ``nK × d`` matrix.
        ``JJᵀ`` may be singular on ``X*``: with one-hot labels ``Σ_k p_ik = 1`` for every sample, that
        is ``(1ᵀW2) s_i + 1ᵀb2 = 1``; with ``n > h + 1`` samples the vectors ``(s_i, 1)`` span
        ``R^{h+1}``, which forces ``1ᵀW2 = 0``, and then every ``e ⊗ 1_K`` with ``e ⊥ (S, 1)`` is in
        the null space of ``Jᵀ`` (``n − h − 1`` zero eigenvalues). So the Cholesky factor is taken
        of ``JJᵀ + μI``, ``μ = 1e-12 · tr(JJᵀ)/(nK)``: ``Jᵀ`` maps the null space to zero, so ``μ``
        changes the step by ``O(μ/σ²)`` in the range, which the iteration corrects. The generic
        route (the base class's) falls back to ``lstsq`` of ``J`` there: 29 s against 2.5 s at
        ``n = 256``, ``h = 128``, ``K = 10``.

        Same arguments, stopping rule and errors as the base class's (``accept`` is not used:
        the residual decides).

        Examples:
            >>> net = TwoLayerNetwork(np.eye(3), np.eye(3), hidden=4)
            >>> x = net.project_to_minima(net.initial_point(rng=0))
            >>> float(np.abs(net.outputs(x) - net.y).max()) < 1e-12
            True
        """
        x = as_vector(x, self.dim, "x")
        target = as_positive(tol, "tol") * (1.0 + np.linalg.norm(self.y))
        max_iter = as_int(max_iter, "max_iter", minimum=1)
        with np.errstate(all="ignore"):
            for _ in range(max_iter + 1):
                _, _, W2, _, A, S, residual = self._forward(x)  # one forward pass serves the step
                if np.linalg.norm(residual) <= target:
                    return x
                G = self._gram_of(A, S, W2)
                if not (np.all(np.isfinite(residual)) and np.all(np.isfinite(G))):
                    break
                G[np.diag_indices_from(G)] += 1e-12 * np.trace(G) / len(G)
                try:
                    y = cho_solve(cho_factor(G), residual.ravel())
                except np.linalg.LinAlgError:
                    break
                x = x - self._backward(A, S, W2, y.reshape(residual.shape))  # Jᵀy
        raise ConvergenceError(f"Gauss-Newton projection onto the minima set of {self!r} did not reach "
                               f"residual {target:.1e} in {max_iter} steps")  # fmt: skip

    # ------------------------------------------------------------- helpers
    def _unpack(self, x):
        h, m, K = self._hidden, self.n_inputs, self.n_outputs
        i1, i2, i3 = h * m, h * m + h, h * m + h + K * h
        return x[:i1].reshape(h, m), x[i1:i2], x[i2:i3].reshape(K, h), x[i3:]

    def _forward(self, x, idx=slice(None)):
        """``(W1, b1, W2, b2, A, S, R)`` on the samples ``idx``: activations ``S`` and residuals ``R``."""
        W1, b1, W2, b2 = self._unpack(x)
        A = self._A[idx]
        S = A @ W1.T
        S += b1
        np.tanh(S, out=S)  # in place: fewer fresh n × h arrays (each costs page faults, not only flops)
        return W1, b1, W2, b2, A, S, S @ W2.T + b2 - self._Y[idx]

    @staticmethod
    def _backward(A, S, W2, E):
        """``Σ_i J_iᵀ E_i`` (the parameter gradient of ``Σ_ik E_ik p_ik``) by backpropagation."""
        D = S * S
        np.subtract(1.0, D, out=D)
        D *= E @ W2  # (E W2) ⊙ s′
        return np.concatenate([(D.T @ A).ravel(), D.sum(axis=0), (E.T @ S).ravel(), E.sum(axis=0)])

    def _split_columns(self, V):
        """The parts ``(U1, c1, U2, c2)`` of the ``k`` columns of ``V`` (``d × k``), each with a leading axis ``k``."""
        h, m, K = self._hidden, self.n_inputs, self.n_outputs
        Vt = V.T
        i1, i2, i3 = h * m, h * m + h, h * m + h + K * h
        return Vt[:, :i1].reshape(-1, h, m), Vt[:, i1:i2], Vt[:, i2:i3].reshape(-1, K, h), Vt[:, i3:]

    # ---------------------------------------------------------- closed forms
    def _value(self, R):
        return self.loss.weight * np.sum(R * R) / (2 * self.n_samples)

    def _f(self, x):
        return self._value(self._forward(x)[-1])

    def _grad(self, x):
        _, _, W2, _, A, S, R = self._forward(x)
        return self._backward(A, S, W2, (self.loss.weight / self.n_samples) * R)

    def _value_and_grad(self, x):
        _, _, W2, _, A, S, R = self._forward(x)
        return self._value(R), self._backward(A, S, W2, (self.loss.weight / self.n_samples) * R)

    def _sample_grad(self, x, idx, labels=None):
        _, _, W2, _, A, S, R = self._forward(x, idx)
        if labels is not None:
            R = R + self._Y[idx] - labels.reshape(R.shape)
        return self._backward(A, S, W2, (self.loss.weight / len(idx)) * R)

    def _hess_vec(self, x, v):
        V = v.reshape(self.dim, -1)
        per_column = self.n_samples * self._hidden + 1
        chunk = max(1, _CHUNK_ENTRIES // per_column)
        parts = [self._hess_columns(x, V[:, j : j + chunk]) for j in range(0, V.shape[1], chunk)]
        return np.concatenate(parts, axis=1).reshape(v.shape)

    def _hess_columns(self, x, V):
        """``∇²f V`` for the ``k`` columns of ``V`` at once (the R-operator).

        Intermediates are laid out ``(n, k, h)`` (and ``(n, k, K)``), so that every product is
        one matrix product over the columns stacked, not ``k`` small ones.
        """
        _, _, W2, _, A, S, R = self._forward(x)
        U1, c1, U2, c2 = self._split_columns(V)
        (n, h), k, K = S.shape, V.shape[1], self.n_outputs
        w = self.loss.weight / self.n_samples
        S1 = 1.0 - S * S
        E = w * R
        Zd = (A @ U1.reshape(k * h, -1).T).reshape(n, k, h) + c1  # ż
        Sd = S1[:, None, :] * Zd  # ṡ = s′ ⊙ ż
        Pd = (S @ U2.reshape(k * K, h).T).reshape(n, k, K) + (Sd.reshape(n * k, h) @ W2.T).reshape(n, k, K) + c2
        Ed = w * Pd  # Ė = (w/n) ṗ
        Dd = (E @ U2.transpose(1, 0, 2).reshape(K, k * h)).reshape(n, k, h)  # E U2, column by column
        Dd = (Dd + (Ed.reshape(n * k, K) @ W2).reshape(n, k, h)) * S1[:, None, :]  # δ̇ ⊙ s′
        Dd += ((E @ W2) * (-2.0 * S * S1))[:, None, :] * Zd  # Δ̇ = δ̇ ⊙ s′ + (E W2) ⊙ s″ ⊙ ż
        gW1 = (Dd.reshape(n, k * h).T @ A).reshape(k, -1)
        gW2 = (Ed.reshape(n, k * K).T @ S).reshape(k, K, h)  # Ėᵀ S
        gW2 += (E.T @ Sd.reshape(n, k * h)).reshape(K, k, h).transpose(1, 0, 2)  # Eᵀ ṡ
        return np.concatenate([gW1, Dd.sum(axis=0), gW2.reshape(k, -1), Ed.sum(axis=0)], axis=1).T

    def _hess(self, x):
        H = self._hess_vec(x, np.eye(self.dim))
        return (H + H.T) / 2

    def _third_contract(self, x, u, v):
        _, _, W2, _, A, S, R = self._forward(x)
        U1, c1, U2, c2 = self._split_columns(np.stack([u, v], axis=1))  # u and v side by side
        (n, h), K = S.shape, self.n_outputs
        w = self.loss.weight / self.n_samples
        S1 = 1.0 - S * S
        S2 = -2.0 * S * S1
        Z = (A @ U1.reshape(2 * h, -1).T).reshape(n, 2, h) + c1  # ż_u, ż_v
        Sd = S1[:, None, :] * Z  # s′ ⊙ ż_u, s′ ⊙ ż_v
        Zu, Zv, Su, Sv = Z[:, 0], Z[:, 1], Sd[:, 0], Sd[:, 1]
        Zuv = Zu * Zv
        S2uv = S2 * Zuv
        E = w * R
        Pd = (S @ U2.reshape(2 * K, h).T).reshape(n, 2, K) + (Sd.reshape(2 * n, h) @ W2.T).reshape(n, 2, K) + c2
        Ed = w * Pd
        Eu, Ev = Ed[:, 0], Ed[:, 1]  # Ė_u, Ė_v
        Euv = w * (Su @ U2[1].T + Sv @ U2[0].T + S2uv @ W2.T)  # Ë
        Dd = (E @ U2.transpose(1, 0, 2).reshape(K, 2 * h)).reshape(n, 2, h)
        Dd += (Ed.reshape(2 * n, K) @ W2).reshape(n, 2, h)  # δ̇_u, δ̇_v
        Duv = Ev @ U2[0] + Eu @ U2[1] + Euv @ W2  # δ̈
        S3uv = (E @ W2) * (-2.0 * S1 * (3.0 * S1 - 2.0)) * Zuv  # (E W2) ⊙ s‴ ⊙ ż_u ⊙ ż_v; 1 − 3s² = 3s′ − 2
        D = Duv * S1 + (Dd[:, 0] * Zv + Dd[:, 1] * Zu) * S2 + S3uv  # Δ̈
        gW2 = Euv.T @ S + Eu.T @ Sv + Ev.T @ Su + E.T @ S2uv
        return np.concatenate([(D.T @ A).ravel(), D.sum(axis=0), gW2.ravel(), Euv.sum(axis=0)])

    def _trace_parts(self, x):
        _, _, W2, _, A, S, R = self._forward(x)
        S1 = 1.0 - S * S
        return W2, A, S, R, S1, -2.0 * S * S1

    def _trace_hess(self, x):
        W2, _, S, R, S1, S2 = self._trace_parts(x)
        n, K = self.n_samples, self.n_outputs
        c = np.sum(W2 * W2, axis=0)
        inner = c * S1 * S1 + (R @ W2) * S2
        total = K * np.sum(S * S) + n * K + self._alpha @ np.sum(inner, axis=1)
        return self.loss.weight / n * total

    def _grad_trace_hess(self, x):
        W2, A, S, R, S1, S2 = self._trace_parts(x)
        K, alpha = self.n_outputs, self._alpha[:, None]
        S3 = -2.0 * S1 * (1.0 - 3.0 * S * S)
        c = np.sum(W2 * W2, axis=0)
        G = (alpha * S2) @ W2.T  # tr∇²p_ik, (n, K)
        Gam = 2 * K * S * S1 + alpha * (2 * c * S1 * S2 + (R @ W2) * S3) + (G @ W2) * S1
        gW2 = 2 * W2 * (self._alpha @ (S1 * S1)) + R.T @ (alpha * S2) + G.T @ S
        out = np.concatenate([(Gam.T @ A).ravel(), Gam.sum(axis=0), gW2.ravel(), G.sum(axis=0)])
        return self.loss.weight / self.n_samples * out

    # ------------------------------------------------------------- Setting 1
    def _outputs(self, x, idx=slice(None)):
        W1, b1, W2, b2 = self._unpack(x)
        return (np.tanh(self._A[idx] @ W1.T + b1) @ W2.T + b2).reshape(-1)

    def _activations(self, x, idx):
        """``(W2, ã, s, s′, s″, s‴)`` with ``ã_i = (a_i, 1)``: the first layer's weights and bias in one block."""
        W1, b1, W2, _ = self._unpack(x)
        A = self._A[idx]
        S = np.tanh(A @ W1.T + b1)
        S1 = 1.0 - S * S
        A1 = np.concatenate([A, np.ones((A.shape[0], 1))], axis=1)
        return W2, A1, S, S1, -2.0 * S * S1, -2.0 * S1 * (1.0 - 3.0 * S * S)

    def _output_jacobian(self, x, idx=slice(None)):
        W2, A1, S, S1, _, _ = self._activations(x, idx)
        b, K, m = S.shape[0], self.n_outputs, self.n_inputs
        B = W2[None, :, :] * S1[:, None, :]  # ∂p_ik/∂z_ij, (b, K, h)
        eye = np.eye(K)
        JW1 = (B[..., None] * A1[:, None, None, :m]).reshape(b, K, -1)
        JW2 = (eye[None, :, :, None] * S[:, None, None, :]).reshape(b, K, -1)
        J = np.concatenate([JW1, B, JW2, np.broadcast_to(eye, (b, K, K))], axis=2)
        return J.reshape(b * K, self.dim)

    def _first_layer_index(self):
        """``F[j, l]``: the position of ``W1[j, l]`` in ``x`` for ``l < m``, of ``b1[j]`` for ``l = m``."""
        h, m = self._hidden, self.n_inputs
        return np.concatenate([np.arange(h * m).reshape(h, m), h * m + np.arange(h)[:, None]], axis=1)

    def _second_layer_index(self):
        """``G[k, j]``: the position of ``W2[k, j]`` in ``x``."""
        h, m, K = self._hidden, self.n_inputs, self.n_outputs
        return h * (m + 1) + np.arange(K * h).reshape(K, h)

    def _check_dense(self, what: str, rows: int, order: int) -> None:
        entries = rows * self.dim**order
        if self.dim > MAX_DENSE_DIM or entries > MAX_DENSE_ENTRIES:
            raise ValueError(f"TwoLayerNetwork.{what} forms a dense array of {rows} × {self.dim}^{order} = "
                             f"{entries:.3g} entries (d = {self.dim}); it is meant for d ≤ {MAX_DENSE_DIM} and at "
                             f"most {MAX_DENSE_ENTRIES:.0e} entries: use hess_vec or third_contract")  # fmt: skip

    def _output_hessians(self, x, idx=slice(None)):
        W2, A1, S, S1, S2, _ = self._activations(x, idx)
        b, K = S.shape[0], self.n_outputs
        self._check_dense("_output_hessians", b * K, 2)
        F, G = self._first_layer_index(), self._second_layer_index()
        out = np.zeros((b, K, self.dim, self.dim), dtype=np.result_type(x, float))
        # ∂²p_k/∂θ_jl∂θ_jl′ = W2_kj s″_j ã_l ã_l′ within unit j (θ_j = (W1[j], b1[j])).
        coef = (W2[None, :, :] * S2[:, None, :])[..., None, None]  # (b, K, h, 1, 1)
        out[:, :, F[:, :, None], F[:, None, :]] = coef * (A1[:, :, None] * A1[:, None, :])[:, None, None]
        # ∂²p_k/∂θ_jl∂W2_kj = s′_j ã_l.
        cross = S1[:, None, :, None] * A1[:, None, None, :]  # (b, 1, h, m + 1)
        kk = np.arange(K)[:, None, None]
        out[:, kk, F[None], G[:, :, None]] = cross
        out[:, kk, G[:, :, None], F[None]] = cross
        return out.reshape(b * K, self.dim, self.dim)

    def _output_thirds(self, x, idx=slice(None)):
        W2, A1, S, _, S2, S3 = self._activations(x, idx)
        b, K = S.shape[0], self.n_outputs
        self._check_dense("_output_thirds", b * K, 3)
        F, G = self._first_layer_index(), self._second_layer_index()
        out = np.zeros((b, K) + (self.dim,) * 3, dtype=np.result_type(x, float))
        Aa = A1[:, :, None] * A1[:, None, :]  # ã_l ã_l′, (b, m + 1, m + 1)
        # ∂³p_k/∂θ_jl∂θ_jl′∂θ_jl″ = W2_kj s‴_j ã_l ã_l′ ã_l″.
        coef = (W2[None, :, :] * S3[:, None, :])[..., None, None, None]  # (b, K, h, 1, 1, 1)
        triple = (Aa[..., None] * A1[:, None, None, :])[:, None, None]  # (b, 1, 1, m + 1, m + 1, m + 1)
        out[:, :, F[:, :, None, None], F[:, None, :, None], F[:, None, None, :]] = coef * triple
        # ∂³p_k/∂θ_jl∂θ_jl′∂W2_kj = s″_j ã_l ã_l′, in each of the three slots.
        pair = S2[:, None, :, None, None] * Aa[:, None, None]  # (b, 1, h, m + 1, m + 1)
        kk, Gk = np.arange(K)[:, None, None, None], G[:, :, None, None]
        Fl, Fr = F[None, :, :, None], F[None, :, None, :]
        out[:, kk, Fl, Fr, Gk] = pair
        out[:, kk, Fl, Gk, Fr] = pair
        out[:, kk, Gk, Fl, Fr] = pair
        return out.reshape((b * K,) + (self.dim,) * 3)
