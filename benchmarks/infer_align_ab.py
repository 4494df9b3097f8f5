"""``predict`` with the inference scratch 64-byte aligned against the same code with it shifted
by 16 and 32 bytes, and onnxruntime, call by call in one process (``bench_speed.py``'s pattern:
a 10 ms pause, an untimed call, the timed call; the order reversed every round).

    python benchmarks/infer_align_ab.py --configs C,A --rounds 30 [--threads 1]

``lstm_fm`` takes its step buffers (``XH``, ``Z``, ``Cb``) from ``common.aligned_empty``; here that
function is swapped for one that starts them ``off`` bytes past a cache line, which is what
``np.empty`` gave them before (16 bytes past a page for a fresh mmap, anywhere 16-aligned from
the heap). Prints the median wall ms of each and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def shifted(off):
    """``aligned_empty`` with the data ``off`` bytes past a 64-byte boundary."""
    import numpy as np

    def empty(shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        raw = np.empty(nbytes + 128, np.uint8)
        skip = -raw.ctypes.data % 64 + off
        return raw[skip : skip + nbytes].view(dtype).reshape(shape)

    return empty


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="C,A")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=30)
    args = p.parse_args(argv)
    import bench_speed as bs

    bs.set_threads(args.threads)
    import numpy as np

    from lstmkit.ops import backend
    from lstmkit.ops.fast import lstm_fm

    backend.set_backend("numba")
    real = lstm_fm.aligned_empty
    modes = {"aligned": real, "+16 B": shifted(16), "+32 B": shifted(32)}
    for name in args.configs.split(","):
        model, x, _ = bs.build(name)
        ort = bs.ort_contender(model, x, args.threads)

        def predict(model=model, x=x):
            return model.predict(x, batch_size=len(x))

        res = {k: [] for k in [*modes, "onnxruntime"]}
        for r in range(args.rounds):
            for k in list(res) if r % 2 == 0 else list(res)[::-1]:
                lstm_fm.aligned_empty = modes.get(k, real)
                f = ort if k == "onnxruntime" else predict
                time.sleep(0.01)
                f()
                t0 = time.perf_counter()
                f()
                res[k].append(time.perf_counter() - t0)
        lstm_fm.aligned_empty = real
        cells = ", ".join(f"{k} {1e3 * np.median(v):.3f}" for k, v in res.items())
        print(f"{name} ({args.threads} thread(s)): {cells} ms (wall medians)")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
