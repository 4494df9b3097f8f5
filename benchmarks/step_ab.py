"""``step_overhead.py`` on two source trees, interleaved (A B A B ...), medians per phase.

    PYTHONPATH=src python benchmarks/step_ab.py --before /tmp/base/src [--rounds 4] [--steps 1000]

Each round runs ``benchmarks/step_overhead.py --no-torch`` once with ``PYTHONPATH`` set to the
``--before`` tree, then once to this one (``--after``, default ``src``), in fresh processes: on a
shared machine the two see the same neighbours, round by round. Prints each phase's median
microseconds per step (each run's own figure is already the least of 20 blocks), the rounds'
spread of the step's sum, and the load averages before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(tree, steps):
    """``{phase: us per step}`` of one ``step_overhead.py`` run on ``tree``."""
    env = {**os.environ, "PYTHONPATH": tree}
    cmd = [sys.executable, os.path.join(HERE, "step_overhead.py"), "--no-torch"]
    out = subprocess.run(cmd + ["--steps", str(steps)], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    phases = {}
    for line in out.splitlines()[1:]:
        if ":" in line:  # the kernels' share, the fit: "<what>: <us> us..."
            what, value = line.split(":", 1)
            phases[what.strip().split(" (")[0]] = float(value.split()[0])
        else:  # a phase: "<name> <calls> <us>"
            phases[line[:22].strip()] = float(line.split()[-1])
    return phases


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the base tree's src directory")
    ap.add_argument("--after", default="src")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args(argv)
    load = os.getloadavg()
    runs = {"before": [], "after": []}
    for _ in range(args.rounds):
        for side in ("before", "after"):
            runs[side].append(run(os.path.abspath(getattr(args, side)), args.steps))
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
    print(f"{'phase':<34}{'before':>10}{'after':>10}")
    for name in runs["before"][0]:
        a, b = (statistics.median(r[name] for r in runs[s]) for s in ("before", "after"))
        print(f"{name:<34}{a:>10.1f}{b:>10.1f}")
    for side in ("before", "after"):
        sums = sorted(r["step (sum)"] for r in runs[side])
        print(f"step (sum), {side}, each round: {' '.join(f'{v:.0f}' for v in sums)}")


if __name__ == "__main__":
    main()
