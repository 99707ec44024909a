"""Exceptions raised by flatref.

Bad input raises the built-in ``ValueError``/``TypeError`` with a message naming
the argument. Numerical failure where no result object makes sense raises a
subclass of :class:`FlatrefError`.
"""


class FlatrefError(Exception):
    """Base class of flatref's own exceptions."""


class ConvergenceError(FlatrefError):
    """An inner iteration (e.g. a Gauss–Newton projection) did not converge."""
