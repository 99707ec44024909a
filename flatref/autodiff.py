"""Your own model: a flatref :class:`~flatref.problems.Problem` from a JAX function, every derivative by autodiff.

Needs the optional extra ``flatref[jax]``; importing this module never fails, constructing a problem
without JAX raises an ``ImportError`` that names the extra.

- :class:`JaxProblem` takes ``f: R^d → R``. ``∇f`` by reverse mode; ``∇²f v`` as the forward
  derivative of ``∇f`` along ``v`` (``jvp``); ``∇³f[u, v]`` as the forward derivative of
  ``x ↦ ∇²f(x) v`` along ``u``; ``tr ∇²f = Σ_i e_iᵀ∇²f e_i`` and ``∇ tr∇²f = Σ_i ∇³f[e_i, e_i]``
  exactly, ``vmap``-ed over chunks of basis vectors (``chunk`` of them at a time, so memory
  stays ``O(chunk · d)``), never a ``d × d × d`` tensor.
- :class:`JaxTrainingLoss` takes the model outputs ``p(x) ∈ R^n`` of Setting 1 with the squared
  loss; its output Jacobian and sample gradients (a vector–Jacobian product) let SA, SAM and
  label-noise SGD run on it.

**Float64 without surprises.** flatref computes in float64, but JAX defaults to float32, and the
global switch ``jax_enable_x64`` would change the user's other JAX code. So every call is traced,
compiled and run inside the context manager ``jax.enable_x64(True)``, which switches 64-bit types on
for that call only; the user's ``f`` sees float64 arrays, and outside flatref nothing changes. One
consequence: data that ``f`` captures should be NumPy arrays (or be converted inside ``f``), since a
``jnp`` array created outside that context is float32 for good.
Every function is compiled once per problem (``jax.jit``), the first time it is called.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_array, as_int, as_vector
from .problems import Problem, TrainingLoss
from .problems.base import SquaredLoss

#: Basis vectors per vmapped batch in the exact trace and trace gradient.
CHUNK = 256


def _jax():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as err:
        raise ImportError("flatref.autodiff needs JAX: pip install 'flatref[jax]'") from err
    return jax, jnp


class _Compiled:
    """The compiled derivatives of a scalar ``f``, called in float64 and returned as NumPy arrays."""

    def __init__(self, f, dim: int, chunk: int):
        jax, jnp = _jax()
        self.jax, self.jnp, self.dim, self.chunk = jax, jnp, dim, chunk
        grad = jax.grad(f)

        def hvp(x, v):
            return jax.jvp(grad, (x,), (v,))[1]

        def third(x, u, v):
            return jax.jvp(lambda y: hvp(y, v), (x,), (u,))[1]

        self.functions = {
            "f": jax.jit(f),
            "grad": jax.jit(grad),
            "hess": jax.jit(jax.hessian(f)),
            "hvp": jax.jit(hvp),
            "hvps": jax.jit(jax.vmap(hvp, in_axes=(None, 1), out_axes=1)),
            "third": jax.jit(third),
            "trace": jax.jit(lambda x, E: jnp.sum(jax.vmap(lambda e: e @ hvp(x, e))(E))),
            "grad_trace": jax.jit(lambda x, E: jnp.sum(jax.vmap(lambda e: third(x, e, e))(E), axis=0)),
        }

    def __call__(self, name, *args):
        with self.jax.enable_x64(True):
            value = self.functions[name](*(self.jnp.asarray(a, dtype=self.jnp.float64) for a in args))
            return np.asarray(value, dtype=np.float64)

    def over_basis(self, name, x):
        """``Σ`` of ``name`` over chunks of the basis vectors ``e_i``; the last chunk is padded with zero rows
        (which add nothing), so each function is compiled for one shape only."""
        total = 0.0
        for start in range(0, self.dim, self.chunk):
            E = np.zeros((self.chunk, self.dim))
            rows = np.arange(start, min(start + self.chunk, self.dim))
            E[rows - start, rows] = 1.0
            total = total + self(name, x, E)
        return total


def _check_function(fun, name: str):
    if not callable(fun):
        raise TypeError(f"{name} must be a callable JAX function, got {type(fun).__name__}")


class JaxProblem(Problem):
    """A :class:`~flatref.problems.Problem` from a JAX-traceable ``f`` of a 1-D array to a scalar.

    Args:
        f: ``f(x) -> scalar`` for ``x`` of shape ``(dim,)``, written with ``jax.numpy``.
        dim: the dimension ``d``.
        chunk: basis vectors per batch in the exact ``tr∇²f`` and ``∇ tr∇²f`` (memory ``O(chunk·d)``).

    Points are real: complex-step differentiation, which flatref's own families allow, is not needed
    here (JAX differentiates ``f`` itself), and a complex point raises ``TypeError``.

    Examples:
        >>> import jax.numpy as jnp                                      # doctest: +SKIP
        >>> problem = JaxProblem(lambda x: (x[0] * x[1] - 1.0) ** 2, 2)  # Example 1    # doctest: +SKIP
        >>> problem.trace_hess([3.0, 1 / 3])                             # 2(x1² + x2²)  # doctest: +SKIP
        array(18.22222222)
    """

    def __init__(self, f, dim: int, *, chunk: int = CHUNK):
        _check_function(f, "f")
        super().__init__(dim)
        self._compiled = _Compiled(f, self.dim, as_int(chunk, "chunk", minimum=1))
        value = self._compiled("f", np.zeros(self.dim))
        if value.shape != ():
            raise ValueError(f"f must return a scalar, got shape {value.shape} at x = 0")

    def __repr__(self) -> str:
        return f"JaxProblem(dim={self.dim})"

    def _point(self, x) -> np.ndarray:
        return as_vector(x, self.dim, "x")

    def _f(self, x):
        return self._compiled("f", x)

    def _grad(self, x):
        return self._compiled("grad", x)

    def _hess(self, x):
        return self._compiled("hess", x)

    def _hess_vec(self, x, v):
        return self._compiled("hvp" if v.ndim == 1 else "hvps", x, v)

    def _third(self, x):
        return Problem._third(self, x)

    def _third_contract(self, x, u, v):
        return self._compiled("third", x, u, v)

    def _trace_hess(self, x):
        return self._compiled.over_basis("trace", x)

    def _grad_trace_hess(self, x):
        return self._compiled.over_basis("grad_trace", x)


class JaxTrainingLoss(JaxProblem, TrainingLoss):
    """Setting 1 with your model: ``f(x) = (1/n) Σ_i w (p_i(x) − y_i)²/2`` for JAX outputs ``p(x) ∈ R^n``.

    Args:
        outputs: ``outputs(x) -> array of shape (n,)`` (or ``(n, K)``), the model's outputs on the ``n``
            training samples.
        y: the labels, shape ``(n,)`` (or ``(n, K)``: ``K`` outputs per sample, see :class:`TrainingLoss`).
        dim: the dimension ``d``.
        loss: the squared loss (default weight ``w = 1``).
        chunk: as for :class:`JaxProblem`.

    The output Jacobian is a reverse-mode Jacobian (``n`` backward passes); a sample gradient
    ``(1/|B|) Σ_{i∈B} ℓ′_i ∇p_i`` is one vector–Jacobian product with ``ℓ′`` scattered over the
    batch; ``∇²p_i`` (needed only by generic dense code) is ``jax.hessian`` of the outputs.

    Examples:
        >>> import jax.numpy as jnp                                                          # doctest: +SKIP
        >>> problem = JaxTrainingLoss(lambda x: jnp.array([x[0] * x[1]]), [1.0], 2)          # doctest: +SKIP
        >>> problem.project_to_minima([2.0, 0.6]).prod().round(12)                           # doctest: +SKIP
        np.float64(1.0)
    """

    def __init__(self, outputs, y, dim: int, *, loss: SquaredLoss | None = None, chunk: int = CHUNK):
        _check_function(outputs, "outputs")
        jax, jnp = _jax()
        y = as_array(y, "y")
        loss = SquaredLoss() if loss is None else loss
        weight = loss.weight

        def f(x):  # y stays a NumPy float64 array: a jnp array made outside the float64 context would be float32
            r = outputs(x) - jnp.asarray(y, dtype=x.dtype)
            return weight * jnp.sum(r * r) / (2 * r.shape[0])

        TrainingLoss.__init__(self, dim, y, loss)
        self._compiled = _Compiled(f, self.dim, as_int(chunk, "chunk", minimum=1))
        self._compiled.functions.update(
            outputs=jax.jit(outputs),
            jacobian=jax.jit(jax.jacrev(outputs)),
            output_hessians=jax.jit(jax.hessian(outputs)),
            vjp=jax.jit(lambda x, w: jax.vjp(outputs, x)[1](w)[0]),
        )
        shape = self._compiled("outputs", np.zeros(self.dim)).shape
        if shape != self.y.shape:
            raise ValueError(f"outputs must return shape {self.y.shape} to match y, got {shape} at x = 0")

    def __repr__(self) -> str:
        return f"JaxTrainingLoss(n_samples={self.n_samples}, dim={self.dim})"

    def _outputs(self, x, idx=slice(None)):
        return self._compiled("outputs", x)[idx].reshape(-1)

    def _output_jacobian(self, x, idx=slice(None)):
        return self._compiled("jacobian", x)[idx].reshape(-1, self.dim)

    def _output_hessians(self, x, idx=slice(None)):
        return self._compiled("output_hessians", x)[idx].reshape(-1, self.dim, self.dim)

    def _output_thirds(self, x, idx=slice(None)):
        raise NotImplementedError("JaxTrainingLoss differentiates f itself; it has no use for ∇³p_i")

    def _sample_grad(self, x, idx, labels=None):
        rows = self._rows(idx)
        y = self._y[rows] if labels is None else labels
        w = np.zeros(self._y.size)
        np.add.at(w, rows, self.loss.d1(self._outputs(x)[rows], y) / len(idx))
        return self._compiled("vjp", x, w.reshape(self.y.shape))
