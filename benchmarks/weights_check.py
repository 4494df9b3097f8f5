"""The cost of ``TerminateOnNaN(check_weights=True)`` a batch on the forecaster's network.

    PYTHONPATH=src python benchmarks/weights_check.py [--calls 2000]

The model of ``step_overhead.py`` (``forecast_network.build_network`` at the ``arrivals``
shapes, built by one short ``fit``); the callback's ``on_batch_end`` with a finite loss, what
``fit`` calls after every batch: microseconds a call, the least of 20 blocks. Run it on two
trees, alternating, for an A/B (``PYTHONPATH=/tmp/base/src python ...``).
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args(argv)
    os.environ.setdefault("LSTMKIT_NUM_THREADS", "1")
    import numpy as np
    from step_overhead import _model

    from lstmkit.callbacks import TerminateOnNaN

    model, config, x, y = _model(np)
    model.fit(x, y, epochs=1, batch_size=config.batch_size, verbose=0)
    cb = TerminateOnNaN(raise_error=True, check_weights=True)
    cb.set_model(model)
    logs = {"loss": 0.5}

    def block(n):
        t = time.perf_counter()
        for b in range(n):
            cb.on_batch_end(b, logs)
        return (time.perf_counter() - t) / n

    block(200)
    us = 1e6 * min(block(args.calls // 20) for _ in range(20))
    print(f"TerminateOnNaN(check_weights=True).on_batch_end: {us:.1f} us/call "
          f"({len(model.params)} parameters, {sum(v.size for v in model.params.values())} values)")  # fmt: skip


if __name__ == "__main__":
    main()
