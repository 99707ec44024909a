"""Shared test configuration: the hypothesis profiles.

Profiles: ``ci`` (derandomized, no deadline) is selected when ``CI=true``; ``dev``
(random, no deadline: scipy calls have uneven first-call times) otherwise;
``thorough`` (1000 examples) on request: ``pytest --hypothesis-profile=thorough``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
