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
