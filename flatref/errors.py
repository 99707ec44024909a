"""Exceptions raised by flatref.

Bad input raises the built-in ``ValueError``/``TypeError`` with a message naming
the argument. Numerical failure is reported in a result's ``status``
(:mod:`flatref.status`); it raises a subclass of :class:`FlatrefError` only where
no result makes sense, or when the caller asked for it with ``throw=True``.
"""


class FlatrefError(Exception):
    """Base class of flatref's own exceptions.

    Bad input is not one of them: it raises the built-in ``ValueError``/``TypeError``.

    Examples:
        >>> from flatref.errors import ConvergenceError, LimitMapError, NonFiniteError, StatusError
        >>> [issubclass(e, FlatrefError) for e in (ConvergenceError, NonFiniteError, StatusError, LimitMapError)]
        [True, True, True, True]
        >>> issubclass(ValueError, FlatrefError)
        False
    """


class ConvergenceError(FlatrefError):
    """An inner iteration (e.g. a Gauss–Newton projection) did not converge.

    Examples:
        >>> from flatref.problems import Example1, Problem
        >>> try:                                   # ∇²f(1, −1) = 2[[1, −3], [−3, 1]] has eigenvalue −4: no minimum near
        ...     Problem.project_to_minima(Example1(), [1.0, -1.0])
        ... except ConvergenceError as err:
        ...     print(type(err).__name__, isinstance(err, FlatrefError))
        ConvergenceError True
    """


class NonFiniteError(FlatrefError):
    """A computation at a finite input gave ``inf`` or NaN: the input is beyond float64's range there.

    flatref's problems support every finite point whose derivatives are finite in float64;
    how far that reaches depends on the family (a degree-4 loss overflows near
    ``|x| ≈ 1e77``, Example 1's Hessian at ``x1 ≈ 1e154``). A problem's public methods
    check their results and raise this error rather than return ``inf`` or NaN.

    Examples:
        >>> from flatref.problems import Example1
        >>> try:                                   # a minimum (x1 x2 = 1) whose Hessian holds x1² = 2^1200
        ...     Example1().hess([2.0**600, 2.0**-600])
        ... except NonFiniteError as err:
        ...     print(str(err)[:48])
        Example1.hess is not finite at this x (max |x_i|
    """


class StatusError(FlatrefError):
    """A result ended without success and the caller asked to raise (``throw=True``).

    Attributes:
        result: the result object (its ``status`` and ``message`` say what happened).

    Examples:
        >>> from flatref import GD, run
        >>> from flatref.problems import Example1
        >>> try:                                   # η = 1 is far above 2/λ_max(∇²f(2, 1)) ≈ 0.17: the run blows up
        ...     run(Example1(), GD(1.0), [2.0, 1.0], steps=50, throw=True)
        ... except StatusError as err:
        ...     print(err.result.status, err.result.success)
        diverged False
    """

    def __init__(self, result):
        self.result = result
        super().__init__(f"{result.status}: {result.message}")

    def __reduce__(self):
        # rebuilt from the result, so the error survives a worker process (joblib pickles it)
        return type(self), (self.result,)


class LimitMapError(StatusError):
    """A value needs ``Φ(x)``, but the flow from ``x`` did not converge to a minimum.

    Attributes:
        result, limit_point: the :class:`~flatref.flow.LimitPoint` of the failed flow.

    Examples:
        >>> from flatref import stationarity_metric
        >>> from flatref.problems import Example1
        >>> try:                                   # from (1, −1) the flow runs into the saddle (0, 0)
        ...     stationarity_metric(Example1(), [1.0, -1.0])
        ... except LimitMapError as err:
        ...     print(err.limit_point.status, isinstance(err, StatusError))
        saddle True
    """

    def __init__(self, limit_point):
        super().__init__(limit_point)
        self.args = (f"the limit map is not defined here: {limit_point.status} ({limit_point.message})",)

    @property
    def limit_point(self):
        return self.result


class MissingExtraError(ImportError, NotImplementedError):
    """An optional dependency is not installed; the message names the extra that installs it.

    It is also a ``NotImplementedError``: an answer that needs the extra is then unknown,
    as where no closed form exists, so :func:`~flatref.flatness.flattest_trace` returns
    ``None`` rather than failing in an environment without the extra.

    Examples:
        >>> err = MissingExtraError("needs cvxpy: pip install 'flatref[sdp]'", name="cvxpy")
        >>> isinstance(err, ImportError), isinstance(err, NotImplementedError), err.name
        (True, True, 'cvxpy')
    """


class CertificateError(FlatrefError, NotImplementedError):
    """A convex program did not certify a flattest minimum of the problem.

    Raised, e.g., by :meth:`~flatref.problems.MatrixSensing.flat_minima` when the
    semidefinite program's solution has rank above ``r`` (no factor ``U ∈ R^{n×r}``
    attains it), when it is infeasible, or when the computed duality gap is too large.
    It is also a ``NotImplementedError``: the flattest minimum is then not known, and
    :func:`~flatref.flatness.flattest_trace` returns ``None``.

    Examples:
        >>> issubclass(CertificateError, FlatrefError), issubclass(CertificateError, NotImplementedError)
        (True, True)
    """
