"""One status vocabulary for every result that can fail: limit maps, runs, first passages.

Every result object with a ``status`` field (:class:`~flatref.flow.LimitPoint`,
:class:`~flatref.driver.Trajectory`, :class:`~flatref.experiments.passages.Hits`)
takes it from :class:`Status`, has ``success`` and a ``message`` that starts with
the status's own message. One rule decides between raising and reporting (as
optimistix's ``throw=``): a function that returns such a result reports failure in
it, and raises :class:`~flatref.errors.StatusError` instead only when called with
``throw=True``; a function that returns a bare number computed from ``Φ`` (which
has no room for a status) raises :class:`~flatref.errors.LimitMapError`.

Examples:
    >>> Status.CONVERGED.success, Status.SADDLE.success
    (True, False)
    >>> Status.STALLED.message
    'the flow stopped making progress before reaching a stationary point'
    >>> Status("diverged") is Status.DIVERGED and Status.DIVERGED == "diverged"
    True
"""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """How a computation ended; a ``str`` (it compares equal to its value) with a message."""

    #: limit map: the flow reached a minimum.
    CONVERGED = "converged"
    #: limit map: the flow ended at a stationary point with a negative Hessian eigenvalue.
    SADDLE = "saddle"
    #: limit map or run: the iterates blew up or became non-finite.
    DIVERGED = "diverged"
    #: limit map: the flow time ran out before a stationary point.
    MAX_TIME = "max_time"
    #: limit map: the gradient-evaluation budget was spent.
    BUDGET = "budget"
    #: limit map: ``‖∇f‖`` stopped falling and the finish was rejected.
    STALLED = "stalled"
    #: limit map: ``‖∇f‖`` became small, but on a path of infinite length: no minimum along the flow.
    NO_MINIMUM = "no_minimum"
    #: limit map: the flow reached a stationary point, but its smallest Hessian eigenvalue did not converge.
    UNCLASSIFIED = "unclassified"
    #: run: every step was taken.
    COMPLETED = "completed"
    #: run: the callback asked to stop.
    STOPPED = "stopped"
    #: first passages: every event was reached.
    REACHED = "reached"
    #: first passages: the step cap came first.
    CAPPED = "capped"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return repr(self.value)

    @property
    def message(self) -> str:
        """What the status means, in a sentence.

        Examples:
            >>> Status.SADDLE.message
            'the flow ended at a stationary point with a negative Hessian eigenvalue'
            >>> all(status.message for status in Status)      # every status has one
            True
        """
        return MESSAGES[self]

    @property
    def success(self) -> bool:
        """True when the computation ended as asked: a minimum, every step, a requested stop, every event.

        Examples:
            >>> [str(status) for status in Status if status.success]
            ['converged', 'completed', 'stopped', 'reached']
            >>> Status.CAPPED.success, Status.DIVERGED.success
            (False, False)
        """
        return self in _SUCCESS


MESSAGES = {
    Status.CONVERGED: "the flow reached a minimum",
    Status.SADDLE: "the flow ended at a stationary point with a negative Hessian eigenvalue",
    Status.DIVERGED: "the iterates blew up or became non-finite",
    Status.MAX_TIME: "the flow did not reach a stationary point within its time",
    Status.BUDGET: "the gradient-evaluation budget was spent before a stationary point",
    Status.STALLED: "the flow stopped making progress before reaching a stationary point",
    Status.NO_MINIMUM: "the gradient decays no faster than 1/t along the flow: it runs off to no minimum",
    Status.UNCLASSIFIED: "the flow reached a stationary point, but whether it is a minimum or a saddle is unknown",
    Status.COMPLETED: "every step was taken",
    Status.STOPPED: "the callback stopped the run",
    Status.REACHED: "every event was reached",
    Status.CAPPED: "the step cap was reached before every event",
}

_SUCCESS = frozenset({Status.CONVERGED, Status.COMPLETED, Status.STOPPED, Status.REACHED})


def describe(status: Status, detail: str = "") -> str:
    """``status.message``, followed by ``": detail"`` when there is one.

    Examples:
        >>> describe(Status.COMPLETED, "200 steps")
        'every step was taken: 200 steps'
        >>> describe(Status.COMPLETED) == Status.COMPLETED.message
        True
    """
    return f"{status.message}: {detail}" if detail else status.message
