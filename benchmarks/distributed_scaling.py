"""Data-parallel training and panel prediction on Ray: the measurements behind docs/distributed.md.

Four measurements, each printed as JSON lines (and all written to ``--out``):

- ``compute``: seconds of one local gradient step (forward + backward + Adam) of the char-LM
  shaped model (``Embedding(65, 64) -> LSTM(128) x 2 -> Dense(65)`` on 50-character windows, the
  ``benchmarks/text_charlm.py`` network without TBPTT, 243k parameters) against the batch size,
  one thread: the ``c0 + c1 * b`` of the scaling model.
- ``exchange``: seconds of one synchronous step whose compute is negligible (a ``Dense(k)``
  model with ``P = k^2 + k`` parameters, one row per worker, SGD) for each reduction
  (tree / ring / collective) against ``P`` and the number of workers, minus the same step
  in-process: the gradient exchange plus Ray's per-call overhead.
- ``throughput``: samples per second training the char-LM model for one epoch: in-process with
  1 and 2 lstmkit threads, and with ``RayStrategy(2)`` for each reduction.
- ``panel``: forecasts per second of ``lstmkit.distributed.predict_panel`` (2 workers) against
  ``GlobalForecaster.predict`` in-process, on a synthetic panel of ``--series`` series.

Run on a quiet machine (it uses every core)::

    PYTHONPATH=src python benchmarks/distributed_scaling.py --out out/bench/distributed.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("LSTMKIT_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np

V, T = 65, 50  # characters of the Shakespeare corpus, window length (benchmarks/text_charlm.py)


def emit(results, **row):
    print(json.dumps(row), flush=True)
    results.append(row)


def charlm(seed=0):
    import lstmkit
    from lstmkit.layers import LSTM, Dense, Embedding
    from lstmkit.models import Sequential
    from lstmkit.optimizers import Adam

    lstmkit.set_random_seed(seed)
    m = Sequential([Embedding(V, 64, input_shape=(T,)), LSTM(128, return_sequences=True),
                    LSTM(128, return_sequences=True), Dense(V)])  # fmt: skip
    m.compile(optimizer=Adam(3e-3, global_clipnorm=5.0), loss="sparse_categorical_crossentropy",
              seed=seed)  # fmt: skip
    return m


def charlm_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, size=(n, T + 1))
    return x[:, :T].astype(np.float32), x[:, 1:]


def best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure_compute(results, batches, repeat):
    from lstmkit.models.training import MetricState

    m = charlm()
    x, y = charlm_data(max(batches))
    m.train_on_batch(x[:2], y[:2])  # build, compile the kernels
    n_params = sum(p.size for p in m.trainable_params.values())
    for b in batches:

        def step(b=b):
            _, grads, _ = m._gradients([x[:b]], [y[:b]], np.random.default_rng(0), None,
                                          MetricState(m._metric_specs))  # fmt: skip
            m._apply_gradients(grads)

        emit(results, kind="compute", params=n_params, batch=b, seconds=best_of(step, repeat))


def dense(k):
    import lstmkit
    from lstmkit.layers import Dense
    from lstmkit.models import Sequential

    lstmkit.set_random_seed(0)
    m = Sequential([Dense(k, input_shape=(k,))])
    m.compile(optimizer="sgd", loss="mse", seed=0)
    return m


def measure_exchange(results, ks, workers, reduces, steps):
    import ray

    from lstmkit.distributed import RayStrategy
    from lstmkit.distributed.train import _parts
    from lstmkit.distributed.worker import model_bytes

    for k in ks:
        m = dense(k)
        x = np.ones((max(workers), k), np.float32)
        m.train_on_batch(x[:1], x[:1])
        local = best_of(lambda m=m, x=x: m.train_on_batch(x[:1], x[:1]), steps)
        for n in workers:
            for red in reduces:
                s = RayStrategy(n, reduce=red)
                shards = [ray.put(([x[r::n]], [x[r::n]])) for r in range(n)]
                s.start_workers(ray, model_bytes(m), shards, n, m.losses_per_output, k * k + k)
                parts = _parts(np.arange(n), n)
                for b in range(3):  # warm up
                    s.step(ray, 0, b, None, parts, n)
                t = time.perf_counter()
                for b in range(steps):
                    s.step(ray, 0, b, None, parts, n)
                step = (time.perf_counter() - t) / steps
                s.stop_workers(ray)
                emit(results, kind="exchange", params=k * k + k, workers=n, reduce=red,
                     step_seconds=step, local_seconds=local, exchange_seconds=step - local)  # fmt: skip


class _Clock:
    """The times of the first and the last batch's end."""

    def __new__(cls):
        from lstmkit.callbacks import Callback

        class Clock(Callback):
            first = last = None

            def on_batch_end(self, batch, logs=None):
                self.last = time.perf_counter()
                self.first = self.first or self.last

        return Clock()


def measure_throughput(results, n, batch, reduces, threads):
    from lstmkit.distributed import RayStrategy
    from lstmkit.ops.fast import common

    x, y = charlm_data(n)
    runs = [("local", t, None) for t in threads] + [("ray", 2, r) for r in reduces]
    for engine, count, red in runs:
        m = charlm()
        m.train_on_batch(x[:2], y[:2])  # compile outside the timing
        m = charlm()
        common.set_num_threads(1 if engine == "ray" else count)  # workers: 1 thread each
        strategy = RayStrategy(count, reduce=red) if engine == "ray" else None
        clock = _Clock()
        t = time.perf_counter()
        m.fit(x, y, epochs=1, batch_size=batch, verbose=0, distribute=strategy, callbacks=[clock])
        took = time.perf_counter() - t
        steady = (n - batch) / (clock.last - clock.first)  # after the first step: no start-up
        emit(results, kind="throughput", engine=engine, workers=count, reduce=red, samples=n,
             batch=batch, seconds=took, samples_per_second=n / took,
             steady_samples_per_second=steady)  # fmt: skip
    common.set_num_threads(1)


def measure_panel(results, series, workers):
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import fit_global
    from lstmkit.apps.forecast_run import forecast_table
    from lstmkit.apps.panel import Panel
    from lstmkit.data import write_csv_atomic
    from lstmkit.distributed import RayStrategy, predict_panel

    rng = np.random.default_rng(0)
    t = np.arange(60)
    season = 1 + 0.3 * np.sin(2 * np.pi * t / 12)
    ys = (
        np.exp(rng.normal(3, 1, size=(series, 1)))
        * season
        * np.exp(rng.normal(0, 0.05, (series, 60)))
    )
    panel = Panel.from_arrays(list(ys), season=12)
    cfg = ForecastConfig(units=32, epochs=2, ensemble=5, refit=False)  # the default ensemble
    model = fit_global(panel.subset(np.arange(200)), cfg)
    model.predict(panel.subset(np.arange(10)))
    out = Path("out/bench/panel_forecast.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    point, intervals = model.predict(panel)
    local = time.perf_counter() - start
    header, rows = forecast_table(panel, point, intervals, (), time_header="step", single=False)
    write_csv_atomic(out, header, rows)
    local_csv = time.perf_counter() - start
    start = time.perf_counter()
    rows = predict_panel(model, panel, out, strategy=RayStrategy(workers), time_header="step")
    dist = time.perf_counter() - start
    emit(results, kind="panel", series=series, horizon=int(point.shape[1]), rows=rows,
         local_predict_seconds=local, local_seconds_with_csv=local_csv,
         ray_seconds_with_csv=dist, workers=workers)  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=["compute", "exchange", "throughput", "panel"])
    ap.add_argument("--reduces", nargs="+", default=["tree", "ring", "collective"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="local runs")
    ap.add_argument("--samples", type=int, default=2048, help="throughput: training windows")
    ap.add_argument("--batch", type=int, default=64, help="throughput: global batch")
    ap.add_argument("--series", type=int, default=20000, help="panel: series")
    ap.add_argument("--out", default="out/bench/distributed.json")
    args = ap.parse_args(argv)
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    results = []
    if "compute" in args.only:
        measure_compute(results, [8, 16, 32, 64, 128], repeat=5)
    if "exchange" in args.only:
        measure_exchange(results, [100, 316, 1000, 2000], [2, 3, 4], args.reduces, steps=20)
    if "throughput" in args.only:
        measure_throughput(results, args.samples, args.batch, args.reduces, args.threads)
    if "panel" in args.only:
        measure_panel(results, args.series, 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
