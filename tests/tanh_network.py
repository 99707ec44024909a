"""A tiny two-layer tanh network in Setting 1, with dense exact derivatives: a stiff flow for the tests.

``p_i(x) = Σ_j a_j tanh(w_jᵀ z_i)`` with ``x = (w_1, …, w_h, a)``, so ``d = h·m + h``. Its output
Jacobian can be badly conditioned at ordinary points, which makes the gradient flow stiff
(issue 11: ``σ_min(J) = 0.019`` on the instance below). Derivatives of ``t = tanh(s)``:
``t′ = 1 − t²``, ``t″ = −2 t t′``, ``t‴ = −2 t′ (1 − 3t²)``; the nonzero derivatives of ``p_i``
are ``∂p/∂a_j = t``, ``∂p/∂w_jk = a_j t′ z_k``, ``∂²p/∂a_j∂w_jk = t′ z_k``,
``∂²p/∂w_jk∂w_jl = a_j t″ z_k z_l``, ``∂³p/∂a_j∂w_jk∂w_jl = t″ z_k z_l`` and
``∂³p/∂w_jk∂w_jl∂w_jm = a_j t‴ z_k z_l z_m`` (all blocks within one hidden unit ``j``).
"""

import itertools

import numpy as np

from flatref.problems import TrainingLoss


class TanhNetwork(TrainingLoss):
    """``f(x) = (1/n) Σ_i (p_i(x) − y_i)²/2`` for the network above (dense derivatives: small ``d`` only)."""

    def __init__(self, Z, y, hidden: int):
        self.Z, self.hidden = np.asarray(Z, dtype=float), hidden
        super().__init__(hidden * self.Z.shape[1] + hidden, y)

    def _parts(self, x, idx):
        h, m = self.hidden, self.Z.shape[1]
        W, a = x[: h * m].reshape(h, m), x[h * m :]
        Z = self.Z[idx]
        t = np.tanh(Z @ W.T)  # (b, h)
        t1 = 1 - t**2
        return Z, a, t, t1, -2 * t * t1, -2 * t1 * (1 - 3 * t**2)

    def _w(self, j, k):
        return j * self.Z.shape[1] + k

    def _a(self, j):
        return self.hidden * self.Z.shape[1] + j

    def _outputs(self, x, idx=slice(None)):
        _, a, t, *_ = self._parts(x, idx)
        return t @ a

    def _output_jacobian(self, x, idx=slice(None)):
        Z, a, t, t1, *_ = self._parts(x, idx)
        return np.concatenate([((a * t1)[:, :, None] * Z[:, None, :]).reshape(len(Z), -1), t], axis=1)

    def _output_hessians(self, x, idx=slice(None)):
        Z, a, t, t1, t2, _ = self._parts(x, idx)
        out = np.zeros((len(Z), self.dim, self.dim), dtype=np.result_type(x, float))
        m = Z.shape[1]
        for j in range(self.hidden):
            for k in range(m):
                wk = self._w(j, k)
                out[:, self._a(j), wk] = out[:, wk, self._a(j)] = t1[:, j] * Z[:, k]
                for l in range(m):
                    out[:, wk, self._w(j, l)] = a[j] * t2[:, j] * Z[:, k] * Z[:, l]
        return out

    def _output_thirds(self, x, idx=slice(None)):
        Z, a, t, t1, t2, t3 = self._parts(x, idx)
        out = np.zeros((len(Z), self.dim, self.dim, self.dim), dtype=np.result_type(x, float))
        m = Z.shape[1]
        for j in range(self.hidden):
            for k, l in itertools.product(range(m), repeat=2):
                value = t2[:, j] * Z[:, k] * Z[:, l]
                for slots in set(itertools.permutations((self._a(j), self._w(j, k), self._w(j, l)))):
                    out[(slice(None), *slots)] = value
                for n_ in range(m):
                    out[:, self._w(j, k), self._w(j, l), self._w(j, n_)] = a[j] * t3[:, j] * Z[:, k] * Z[:, l] * Z[:, n_]
        return out
