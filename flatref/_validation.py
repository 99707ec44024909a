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
    """Return ``x`` as a finite 1-D array of length ``dim``."""
    arr = as_array(x, name, allow_complex=allow_complex)
    if arr.shape != (dim,):
        raise ValueError(f"{name} must have shape ({dim},), got shape {arr.shape}")
    return arr


def as_int(n, name: str, *, minimum: int) -> int:
    """Return ``n`` as a Python int ``>= minimum`` (bools are rejected)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return int(n)


def as_positive(value, name: str) -> float:
    """Return ``value`` as a finite float ``> 0``."""
    value = _as_real(value, name)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value


def as_nonnegative(value, name: str) -> float:
    """Return ``value`` as a finite float ``>= 0``."""
    value = _as_real(value, name)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be non-negative and finite, got {value}")
    return value


def _as_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def frozen_copy(arr: np.ndarray) -> np.ndarray:
    """A read-only copy: problems keep their data safe from callers and from themselves."""
    out = np.array(arr, copy=True)
    out.flags.writeable = False
    return out


def make_rng(rng) -> np.random.Generator:
    """``np.random.default_rng(rng)`` for ``None``, an int seed or a ``Generator`` (SPEC 7)."""
    if isinstance(rng, bool) or not (
        rng is None or isinstance(rng, (numbers.Integral, np.random.Generator, np.random.SeedSequence))
    ):
        raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")
    return np.random.default_rng(rng)
