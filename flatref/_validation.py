"""Input checks shared by the whole package: one place for each rule.

Every check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (wrong
shape or value) with a message that names the argument and what was expected.
"""

from __future__ import annotations

import numbers

import numpy as np


def as_array(a, name: str, *, ndim: int | None = None, allow_complex: bool = False) -> np.ndarray:
    """Return ``a`` as a finite float64 (or complex128) array, without copying if possible.

    Complex input is accepted only where ``allow_complex`` (problem methods accept it
    so that complex-step differentiation works); integers and booleans become float.

    Examples:
        >>> as_array([1, 2], "a").dtype.name, as_array([1 + 2j], "a", allow_complex=True).dtype.name
        ('float64', 'complex128')
        >>> as_array([1.0, float("nan")], "a")
        Traceback (most recent call last):
        ...
        ValueError: a contains non-finite values (nan or inf)
    """
    arr = np.asarray(a)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        if not allow_complex:
            raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
        arr = arr.astype(np.complex128, copy=False)
    else:
        arr = arr.astype(np.float64, copy=False)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return arr


def as_vector(x, dim: int, name: str = "x", *, allow_complex: bool = False) -> np.ndarray:
    """Return ``x`` as a finite 1-D array of length ``dim``.

    Examples:
        >>> as_vector([1, 2, 3], 3).tolist()
        [1.0, 2.0, 3.0]
        >>> as_vector([[1.0, 2.0]], 2, "x_star")  # the message names the argument and both shapes
        Traceback (most recent call last):
        ...
        ValueError: x_star must have shape (2,), got shape (1, 2)
    """
    arr = as_array(x, name, allow_complex=allow_complex)
    if arr.shape != (dim,):
        raise ValueError(f"{name} must have shape ({dim},), got shape {arr.shape}")
    return arr


def bounded_norm(x: np.ndarray, name: str) -> float:
    """``‖x‖`` as a Python float; ``ValueError`` naming ``x`` where ``‖x‖²`` overflows float64.

    This is flatref's supported range for points: ``‖x‖ < 1.3e154``, the largest norm whose
    square (the inner product every method takes) is finite.

    Examples:
        >>> import numpy as np
        >>> bounded_norm(np.array([3.0, 4.0]), "x0")
        5.0
        >>> bounded_norm(np.full(2, 1e300), "x0")
        Traceback (most recent call last):
        ...
        ValueError: x0 is beyond flatref's range: its norm must be below 1.3e154, got max |x_i| = 1e+300
    """
    with np.errstate(over="ignore"):
        norm = float(np.linalg.norm(x))
    if not np.isfinite(norm):
        raise ValueError(f"{name} is beyond flatref's range: its norm must be below 1.3e154, "
                         f"got max |x_i| = {np.max(np.abs(x)):.3g}")  # fmt: skip
    return norm


def require_finite(value, name: str, what: str) -> None:
    """``ValueError`` naming ``name`` where ``what``, a quantity computed from it, overflowed float64.

    Examples:
        >>> import numpy as np
        >>> with np.errstate(over="ignore"):
        ...     trace = np.sum(np.full(2, 1e300) ** 2)
        >>> require_finite(trace, "Z", "the trace ‖Z‖_F²/n")
        Traceback (most recent call last):
        ...
        ValueError: Z is beyond flatref's range: computing the trace ‖Z‖_F²/n overflows float64
    """
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} is beyond flatref's range: computing {what} overflows float64")


def as_columns(v, dim: int, name: str = "v", *, allow_complex: bool = False) -> np.ndarray:
    """Return ``v`` as a finite array of shape ``(dim,)`` or ``(dim, k)``: one vector, or ``k`` in columns.

    Examples:
        >>> as_columns([[1, 2], [3, 4], [5, 6]], 3).shape
        (3, 2)
        >>> as_columns([1.0, 2.0], 3)
        Traceback (most recent call last):
            ...
        ValueError: v must have shape (3,) or (3, k), got shape (2,)
    """
    arr = as_array(v, name, allow_complex=allow_complex)
    if arr.shape[:1] != (dim,) or arr.ndim > 2:
        raise ValueError(f"{name} must have shape ({dim},) or ({dim}, k), got shape {arr.shape}")
    return arr


def as_int(n, name: str, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``n`` as a Python int in ``[minimum, maximum]`` (bools are rejected).

    Examples:
        >>> import numpy as np
        >>> as_int(np.int64(3), "n", minimum=1), type(as_int(np.int64(3), "n", minimum=1)).__name__
        (3, 'int')
        >>> as_int(True, "n", minimum=0)
        Traceback (most recent call last):
        ...
        TypeError: n must be an integer, got bool
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    if maximum is not None and n > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {n}")
    return int(n)


def as_positive(value, name: str) -> float:
    """Return ``value`` as a finite float ``> 0``.

    Examples:
        >>> as_positive(2, "eta")
        2.0
        >>> as_positive(0.0, "eta")  # zero is not positive
        Traceback (most recent call last):
        ...
        ValueError: eta must be positive and finite, got 0.0
    """
    value = _as_real(value, name)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value


def as_nonnegative(value, name: str) -> float:
    """Return ``value`` as a finite float ``>= 0``.

    Examples:
        >>> as_nonnegative(0, "sigma")  # zero is allowed, unlike as_positive
        0.0
        >>> as_nonnegative(float("inf"), "sigma")
        Traceback (most recent call last):
        ...
        ValueError: sigma must be non-negative and finite, got inf
    """
    value = _as_real(value, name)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be non-negative and finite, got {value}")
    return value


def as_gate(value, name: str) -> float:
    """Return a gate ``ε0`` as a float ``> 0``; ``inf`` (the gate that is always open) is allowed.

    Examples:
        >>> as_gate(float("inf"), "eps0"), as_gate(1, "eps0")
        (inf, 1.0)
        >>> as_gate(float("nan"), "eps0")
        Traceback (most recent call last):
        ...
        ValueError: eps0 must be positive (inf allowed), got nan
    """
    value = _as_real(value, name)
    if not value > 0:
        raise ValueError(f"{name} must be positive (inf allowed), got {value}")
    return value


def _as_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def check_problem(problem, name: str = "problem"):
    """Return ``problem`` if it is a :class:`~flatref.problems.Problem`, else raise ``TypeError`` naming it.

    Examples:
        >>> check_problem(None)
        Traceback (most recent call last):
            ...
        TypeError: problem must be a flatref Problem, got NoneType
    """
    from .problems.base import Problem  # here, not at the top: the problems import this module

    if not isinstance(problem, Problem):
        raise TypeError(f"{name} must be a flatref Problem, got {type(problem).__name__}")
    return problem


def frozen_copy(arr: np.ndarray) -> np.ndarray:
    """A read-only copy: problems keep their data safe from callers and from themselves.

    Examples:
        >>> import numpy as np
        >>> a = np.zeros(2)
        >>> b = frozen_copy(a)
        >>> a[0] = 1.0  # the copy does not follow the original, and cannot be written
        >>> b.tolist(), b.flags.writeable
        ([0.0, 0.0], False)
    """
    out = np.array(arr, copy=True)
    out.flags.writeable = False
    return out


def make_rng(rng) -> np.random.Generator:
    """``np.random.default_rng(rng)`` for ``None``, an int seed, a ``SeedSequence`` or a ``Generator`` (SPEC 7).

    A ``SeedSequence`` is copied first: the driver spawns child streams from it, and
    spawning mutates the sequence, so the same ``SeedSequence`` would otherwise give
    different bits on its second use. A negative seed raises ``ValueError`` naming ``rng``.

    Examples:
        >>> import numpy as np
        >>> make_rng(0).random(3).tolist() == make_rng(0).random(3).tolist()  # a seed fixes the draws
        True
        >>> g = np.random.default_rng(1)
        >>> make_rng(g) is g  # a Generator is used as is, so its stream continues
        True
    """
    if isinstance(rng, bool) or not (
        rng is None or isinstance(rng, (numbers.Integral, np.random.Generator, np.random.SeedSequence))
    ):
        raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")
    if isinstance(rng, numbers.Integral) and rng < 0:
        raise ValueError(f"rng must be a non-negative seed, got {rng}")
    if isinstance(rng, np.random.SeedSequence):
        rng = np.random.SeedSequence(rng.entropy, spawn_key=rng.spawn_key, pool_size=rng.pool_size,
                                     n_children_spawned=rng.n_children_spawned)  # fmt: skip
    return np.random.default_rng(rng)
