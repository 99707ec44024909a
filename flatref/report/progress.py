"""Progress printers: objects passed to the core and the experiments as callbacks (pymanopt's printer).

The core never prints; the command line hands these in.
"""

from __future__ import annotations

import sys


class RunProgress:
    """A :func:`flatref.run` callback that prints ``f(x_t)`` about every tenth of the run.

    Examples:
        >>> import io, flatref as fr
        >>> from flatref.problems import Example1
        >>> stream = io.StringIO()
        >>> progress = RunProgress(Example1(), "GD", steps=20, every=10, stream=stream)
        >>> _ = fr.run(Example1(), fr.GD(0.05), [2.0, 0.6], steps=20, callback=progress)
        >>> print(stream.getvalue().splitlines()[0])
        GD: step 10/20, f = 7.586e-07
    """

    def __init__(self, problem, label: str, steps: int, *, every: int | None = None, stream=None):
        self.problem, self.label, self.steps = problem, label, steps
        self.every = every or max(1, steps // 10)
        self.stream = stream if stream is not None else sys.stderr

    def __call__(self, t, x) -> bool:
        if t % self.every == 0:
            print(f"{self.label}: step {t}/{self.steps}, f = {self.problem.f(x):.3e}", file=self.stream, flush=True)
        return False


class SweepProgress:
    """An ``on_done`` for the sweeps: one line per finished task, ``[k/N] label (seconds)``
    (``N``: ``total``, if given).

    Examples:
        >>> import io
        >>> from flatref.experiments.parallel import parallel_map
        >>> stream = io.StringIO()
        >>> progress = SweepProgress(3, lambda task: f"task {task}", stream=stream)
        >>> parallel_map(abs, [-1, 2, -3], jobs=1, on_done=progress)
        [1, 2, 3]
        >>> sorted(line.split(" (")[0] for line in stream.getvalue().splitlines())   # counted in finishing order
        ['  [1/3] task -1', '  [2/3] task 2', '  [3/3] task -3']
    """

    def __init__(self, total: int | None, describe=str, *, stream=None):
        self.total, self.describe, self.count = total, describe, 0
        self.stream = stream if stream is not None else sys.stderr

    def __call__(self, index, task, result, seconds) -> None:
        self.count += 1
        count = self.count if self.total is None else f"{self.count}/{self.total}"
        print(f"  [{count}] {self.describe(task)} ({seconds:.0f} s elapsed)", file=self.stream, flush=True)


def log(message: str, *, stream=None) -> None:
    """One line of progress on stderr.

    Examples:
        >>> import io
        >>> stream = io.StringIO()
        >>> log("measuring 8 cases", stream=stream)
        >>> stream.getvalue()
        'measuring 8 cases\\n'
    """
    print(message, file=stream if stream is not None else sys.stderr, flush=True)
