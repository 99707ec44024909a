"""The README's one-seed speed-ups of SA over RS at two η′ (slow: about 300 000 RS steps at d = 128)."""

from pathlib import Path

import pytest

from flatref import RS, SA
from flatref.experiments.passages import first_hits
from flatref.experiments.registry import network_of_dim
from flatref.spectrum import top_eigenvalue_step

README = Path(__file__).resolve().parents[2] / "README.md"


def _ratio_over_d(dim, eta_prime):
    """RS's steps to halve the trace gap over SA's, divided by ``d`` (seed 0, ρ = 0.1, η = 1/λ_max).

    ``ε = 1`` makes the flat event trivial (the metric starts below 1), so each run stops when the gap halves.
    """
    problem = network_of_dim(dim)
    x0 = problem.sharp_minimum()
    eta = top_eigenvalue_step(problem, x0)
    steps = [first_hits(problem, rule(eta, eta_prime, 0.1), x0, 1.0, max_steps=1_000_000, rng=0).to_half
             for rule in (RS, SA)]  # fmt: skip
    return steps[0] / steps[1] / dim


@pytest.mark.slow
def test_the_readme_quotes_the_one_seed_speedups():
    values = {(d, e): _ratio_over_d(d, e) for d in (128, 32) for e in (0.05, 0.0125)}
    quoted = (
        f"at `d = 128` the ratio is `{values[128, 0.05]:.2f}·d` at `η′ = 0.05` and `{values[128, 0.0125]:.2f}·d` at "
        f"`η′ = 0.0125` (`d = 32`: `{values[32, 0.05]:.2f}·d` and `{values[32, 0.0125]:.2f}·d`"
    )
    assert quoted in " ".join(README.read_text(encoding="utf-8").split())
    assert values[128, 0.0125] < values[128, 0.05]  # the excess over d shrinks with η′
