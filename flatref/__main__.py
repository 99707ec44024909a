"""The command line: ``python -m flatref demo``."""

from __future__ import annotations

import argparse
import sys

from .problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing
from .testing import check_derivatives


def demo_problems():
    """One small instance of every family, with a non-trivial point for each."""
    return [
        (Example1(), [0.7, -1.3]),
        (LinearRegression.random(10, 30, rng=0), None),
        (DiagonalLinearNetwork.random(10, 20, sparsity=2, rng=0), None),
        (MatrixSensing.random(6, 3, 1, 12, rng=0), None),
    ]


def demo(args) -> int:
    """Check the exact derivatives of every family against Taylor remainders and finite differences."""
    ok = True
    for problem, x in demo_problems():
        for label, point in (("a random point", x), ("a point of the minima set", problem.random_minimum(0))):
            check = check_derivatives(problem, point, rng=0)
            print(f"[{label}] {check}\n")
            ok &= check.passed
    print("all derivative checks passed" if ok else "SOME DERIVATIVE CHECKS FAILED")
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="flatref", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help=demo.__doc__.splitlines()[0], description=demo.__doc__).set_defaults(run=demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
