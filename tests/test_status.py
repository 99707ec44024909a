"""One status vocabulary (``flatref.status``): every value has a message, success is what it says."""

import pytest

from flatref import Status
from flatref.status import MESSAGES, describe


def test_every_status_has_a_message_and_a_success_flag():
    assert set(MESSAGES) == set(Status)
    assert {s for s in Status if s.success} == {Status.CONVERGED, Status.COMPLETED, Status.STOPPED, Status.REACHED}
    for status in Status:
        assert status.message and status == status.value and str(status) == status.value


def test_describe_adds_the_detail_after_the_message():
    assert describe(Status.BUDGET) == Status.BUDGET.message
    assert describe(Status.DIVERGED, "at step 3") == f"{Status.DIVERGED.message}: at step 3"


def test_unknown_values_are_rejected():
    with pytest.raises(ValueError):
        Status("finished")


def test_flatref_errors_survive_pickling_as_in_a_worker_process():
    # joblib returns a worker's exception pickled; a StatusError rebuilt from its message string failed
    import pickle

    from flatref import LimitMapError, GD, limit_map, run
    from flatref.errors import StatusError
    from flatref.problems import Example1

    saddle = limit_map(Example1(), [1.0, -1.0])
    diverged = run(Example1(), GD(1.0), [2.0, 1.0], steps=50)
    for err in (LimitMapError(saddle), StatusError(diverged)):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err) and copy.result.status == err.result.status
