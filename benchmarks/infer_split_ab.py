"""LSTM inference on two threads three ways, call by call in one process: the whole batch on one
thread, the batch split into two slices (``lstm_fm``'s hand-over), the hidden units split (the
threads meeting once per step); ``bench_speed.py``'s pattern (10 ms pause, untimed call, timed
call), the order reversed every round. Outputs checked equal first.

    python benchmarks/infer_split_ab.py --shapes 200x16x16x32,100x16x32x128 --rounds 40

Shapes are ``TxBxDxH`` (config D is 200x16x16x32). Prints the median and lower quartile of each
way's wall ms and the load average: what ``lstm_fm.infer_rows`` and ``lstm_infer_fm``'s fall-back
should pick on this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def ways(lstm_fm):
    """Settings of ``lstm_fm`` that force each way: ``{name: (infer_rows, PARALLEL_STEP_MACS)}``."""

    def one(B, macs, itemsize):
        return [(0, B)]

    def two(B, macs, itemsize):
        return [(0, B // 2), (B // 2, B)]

    return {"one thread": (one, 2**62), "batch split": (two, 0), "unit split": (one, 0)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="200x16x16x32")
    p.add_argument("--rounds", type=int, default=40)
    args = p.parse_args(argv)
    import bench_speed as bs

    bs.set_threads(2)
    import numpy as np

    from lstmkit.ops.fast import lstm_fm

    forced = ways(lstm_fm)
    for shape in args.shapes.split(","):
        T, B, D, H = (int(v) for v in shape.split("x"))
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, B, D)).astype(np.float32)
        h0 = np.zeros((B, H), np.float32)
        k, U = (0.2 * rng.standard_normal((n, 4 * H)).astype(np.float32) for n in (D, H))
        b = 0.1 * rng.standard_normal(4 * H).astype(np.float32)

        def call(name, a=(x, h0, h0, k, U, b)):
            lstm_fm.infer_rows, lstm_fm.PARALLEL_STEP_MACS = forced[name]
            return lstm_fm.lstm_infer_fm(*a)[0]

        first = call("one thread")
        for name in forced:
            np.testing.assert_allclose(call(name), first, atol=1e-5)
        res = {name: [] for name in forced}
        for r in range(args.rounds):
            for name in list(res) if r % 2 == 0 else list(res)[::-1]:
                time.sleep(0.01)
                call(name)
                t0 = time.perf_counter()
                call(name)
                res[name].append(time.perf_counter() - t0)
        cells = ", ".join(
            f"{n} {1e3 * np.median(v):.3f} (p25 {1e3 * np.percentile(v, 25):.3f})"
            for n, v in res.items()
        )
        print(f"T {T}, B {B}, D {D}, H {H} ({B * 4 * H * (1 + D + H)} MACs a step): {cells} ms")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
