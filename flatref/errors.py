"""Exceptions raised by flatref.

Bad input raises the built-in ``ValueError``/``TypeError`` with a message naming
the argument. Numerical failure is reported in a result's ``status``
(:mod:`flatref.status`); it raises a subclass of :class:`FlatrefError` only where
no result makes sense, or when the caller asked for it with ``throw=True``.
"""


class FlatrefError(Exception):
    """Base class of flatref's own exceptions."""


class ConvergenceError(FlatrefError):
    """An inner iteration (e.g. a Gauss–Newton projection) did not converge."""


class StatusError(FlatrefError):
    """A result ended without success and the caller asked to raise (``throw=True``).

    Attributes:
        result: the result object (its ``status`` and ``message`` say what happened).
    """

    def __init__(self, result):
        self.result = result
        super().__init__(f"{result.status}: {result.message}")


class LimitMapError(StatusError):
    """A value needs ``Φ(x)``, but the flow from ``x`` did not converge to a minimum.

    Attributes:
        result, limit_point: the :class:`~flatref.flow.LimitPoint` of the failed flow.
    """

    def __init__(self, limit_point):
        super().__init__(limit_point)
        self.args = (f"the limit map is not defined here: {limit_point.status} ({limit_point.message})",)

    @property
    def limit_point(self):
        return self.result
