"""``predict`` of two source trees, interleaved: the same configs of ``bench_speed.py``, called as it
calls them (a 10 ms pause, an untimed call, the timed call), one worker process per tree, the
trees alternating every ``--calls`` calls (the order reversed every round), so that both see the
same minutes of a shared machine.

    python benchmarks/predict_ab.py --base /tmp/base/src --new src --threads 2 --configs A,C,D
    python benchmarks/predict_ab.py --base /tmp/base/src --new src --configs A --steps 4

Prints, per config, the median wall time of each tree, their ratio, the median CPU time of the
process (all threads) and the load average over the run. ``--steps``: every config with that
many time steps (a few: the Python and the set-up around the time loop dominate the call).
``--worker`` is internal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(threads: int, steps: int | None = None) -> None:
    """Read ``config calls`` lines, answer ``[wall seconds], [CPU seconds]`` as JSON; ``steps``:
    the configs' T replaced by it."""
    sys.path.insert(0, str(HERE))
    import bench_speed as bs

    bs.set_threads(threads)
    import numpy as np  # noqa: F401  (after the thread settings)

    from lstmkit.ops import backend

    calls = {}
    print("ready", flush=True)
    for line in sys.stdin:
        name, n = line.split()
        if name not in calls:
            if steps is not None:
                bs.CONFIGS[name] = (steps, *bs.CONFIGS[name][1:])
            model, x, _ = bs.build(name)

            def predict(model=model, x=x):
                backend.set_backend("numba")
                try:
                    return model.predict(x, batch_size=len(x))
                finally:
                    backend.set_backend("auto")

            predict(), predict()
            calls[name] = predict
        f, wall, cpu = calls[name], [], []
        for _ in range(int(n)):
            time.sleep(0.01)
            f()
            t0, c0 = time.perf_counter(), time.process_time()
            f()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(json.dumps([wall, cpu]), flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the base tree's src directory")
    p.add_argument("--new", required=True, help="the new tree's src directory")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", default="A,C")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--calls", type=int, default=10, help="timed calls per tree and round")
    p.add_argument("--steps", type=int, default=None,
                   help="T of every config replaced by this (a few steps: the set-up around the "
                        "loop dominates)")  # fmt: skip
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        worker(args.worker, args.steps)
        return
    import numpy as np

    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    trees = {"base": args.base, "new": args.new}
    procs = {}
    for k, src in trees.items():
        cmd = [sys.executable, __file__, "--base", "-", "--new", "-", "--worker", str(args.threads)]
        cmd += [] if args.steps is None else ["--steps", str(args.steps)]
        procs[k] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    env={**env, "PYTHONPATH": str(Path(src).resolve())})  # fmt: skip
        assert procs[k].stdout.readline().strip() == "ready"
    cfgs = args.configs.split(",")
    res = {(k, c): ([], []) for k in trees for c in cfgs}
    loads = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for c in cfgs:
            for k in list(trees) if r % 2 == 0 else list(trees)[::-1]:
                procs[k].stdin.write(f"{c} {args.calls}\n")
                procs[k].stdin.flush()
                wall, cpu = json.loads(procs[k].stdout.readline())
                res[(k, c)][0].extend(wall)
                res[(k, c)][1].extend(cpu)
        loads.append(os.getloadavg()[0])
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    steps = "" if args.steps is None else f", T = {args.steps}"
    print(f"threads {args.threads}{steps}, {args.rounds} rounds x {args.calls} calls per tree, "
          f"load average {min(loads):.1f}-{max(loads):.1f}")  # fmt: skip
    for c in cfgs:
        (bw, bc), (nw, nc) = res[("base", c)], res[("new", c)]
        mb, mn = 1e3 * np.median(bw), 1e3 * np.median(nw)
        print(f"  {c}: wall ms base {mb:.3f} new {mn:.3f} (new / base {mn / mb:.3f}); "
              f"CPU ms base {1e3 * np.median(bc):.3f} new {1e3 * np.median(nc):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
