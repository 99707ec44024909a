"""Run the fuzz suite (tests/test_fuzz.py) under the CI profile and print the calls tried and each outcome.

    python benchmarks/fuzz_counts.py
"""

import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
with tempfile.TemporaryDirectory() as folder:
    counts = Path(folder) / "counts.json"
    env = {**os.environ, "CI": "true", "FLATREF_FUZZ_COUNTS": str(counts)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py"],
                            cwd=root, env=env, capture_output=True, text=True)  # fmt: skip
    print(result.stdout.strip().splitlines()[-1])
    data = json.loads(counts.read_text(encoding="utf-8"))
outcomes = collections.Counter()
for row in data["counts"]:
    outcomes[row["outcome"]] += row["calls"]
print(f"calls tried: {data['calls']}")
for outcome, calls in outcomes.most_common():
    print(f"  {outcome:<18}{calls:>6}")
