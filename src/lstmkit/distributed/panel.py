"""Forecasts of a whole panel by Ray tasks, streamed into one CSV (or one CSV per shard).

The fitted :class:`~lstmkit.apps.forecast_global.GlobalForecaster` is saved to the bytes of its
model file and put in the object store once; each task reads it (a worker process keeps the last
one it read, keyed by its SHA-256) and forecasts one part of the panel: a group of consecutive
series of an in-memory panel, or one CSV shard of a directory, read inside the task so that no
process ever holds the whole panel. The driver collects the parts in order, at most ``2 x
workers`` in flight, and copies their CSV lines (formatted by the tasks as
:func:`lstmkit.data.write_csv_atomic` formats them) into the output as they arrive, through
:func:`lstmkit._atomic.atomic_write`: a failure leaves no partial file, and the rows are those
``lstmkit forecast predict`` writes locally, in the same order. A shard directory's series must
not be split across shards (a repeated series id is an error).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import tempfile
from collections import deque
from pathlib import Path

_CACHE: dict = {}  # per worker process: {sha256: GlobalForecaster}, the last one read


def _forecaster(key: str, data: bytes):
    from ..apps.forecast_global import GlobalForecaster

    if key not in _CACHE:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.lstmkit")
            with open(path, "wb") as f:
                f.write(data)
            _CACHE.clear()
            _CACHE[key] = GlobalForecaster.load(path)
    return _CACHE[key]


def csv_text(rows) -> str:
    """``rows`` as the lines :func:`lstmkit.data.write_csv_atomic` writes (floats by ``repr``):
    the tasks format their own rows, so the driver only copies text."""
    from ..data.csvio import _cell

    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return stream.getvalue()


def predict_part(key, data, part, levels, read, time_header):
    """One task: ``part`` is a Panel or a CSV path (read with ``read = (config, time_column,
    fill)``) -> ``(series ids, number of rows, their CSV lines)`` as ``forecast predict``
    writes them."""
    from ..apps.forecast_run import forecast_table, read_data

    model = _forecaster(key, data)
    if not hasattr(part, "values"):
        config, tcol, fill = read
        part = read_data(part, config, time_column=tcol, fill=fill)
    point, intervals = model.predict(part, levels=tuple(levels))
    _, rows = forecast_table(part, point, intervals, levels, time_header=time_header, single=False)
    return [str(i) for i in part.ids], len(rows), csv_text(rows)


def forecaster_bytes(forecaster) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.lstmkit")
        forecaster.save(path)
        with open(path, "rb") as f:
            return f.read()


def _parts(data, workers, series_per_task):
    """``[(name, part)]``: CSV shards of a directory (sorted), a CSV path, or groups of
    ``series_per_task`` consecutive series of a Panel (None: about 4 groups per worker)."""
    import numpy as np

    if hasattr(data, "values"):
        n = data.n_series
        size = series_per_task or max(1, math.ceil(n / (4 * workers)))
        return [
            (f"part-{i // size:05d}.csv", data.subset(np.arange(i, min(n, i + size))))
            for i in range(0, n, size)
        ]
    p = Path(data)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix == ".csv" and f.is_file())
        if not files:
            raise ValueError(f"predict_panel: argument 'data' got {str(p)!r}, a directory "
                             "without *.csv shards")  # fmt: skip
        return [(f.name, str(f)) for f in files]
    return [(p.name, str(p))]


def _results(ray, task, parts, args, inflight):
    """Yield ``(name, result)`` in the order of ``parts``, at most ``inflight`` tasks queued."""
    todo, queued = iter(parts), deque()
    while True:
        for name, part in todo:
            queued.append((name, task.remote(*args[:2], part, *args[2:])))
            if len(queued) >= inflight:
                break
        if not queued:
            return
        name, ref = queued.popleft()
        yield name, ray.get(ref)


def predict_panel(forecaster, data, out, levels=(), strategy=None, series_per_task=None,
                  read=None, time_header="ds"):  # fmt: skip
    """Forecast every series of ``data`` on Ray and write the rows to ``out``.

    ``data``: a :class:`~lstmkit.apps.panel.Panel`, a CSV file or a directory of CSV shards
    (``read = (ForecastConfig, time column, fill)`` says how to read them). ``out``: a CSV file,
    or an existing directory (one CSV per part, named after its shard). ``strategy``: a
    :class:`RayStrategy` (its address and number of workers; None: a local Ray instance).
    Returns the number of rows written."""
    from .._atomic import atomic_write
    from ..apps.forecast_run import interval_columns
    from .strategy import RayStrategy

    strategy = strategy or RayStrategy()
    ray = strategy.connect()
    workers = strategy.workers_wanted(ray)
    blob = forecaster_bytes(forecaster)
    key = hashlib.sha256(blob).hexdigest()
    task = ray.remote(predict_part).options(
        num_cpus=1, runtime_env={"env_vars": {"LSTMKIT_NUM_THREADS": "1"}}
    )
    parts = _parts(data, workers, series_per_task)
    header = ["unique_id", time_header, "forecast", *interval_columns(levels)]
    args = (key, ray.put(blob), tuple(levels), read, time_header)  # the model put once
    results = _results(ray, task, parts, args, 2 * workers)
    seen, count = set(), [0]

    def text(ids, n_rows, lines):
        repeated = seen.intersection(ids)
        if repeated:
            raise ValueError(f"predict_panel: series {sorted(repeated)[:5]} appear in more than "
                             "one shard; each series must be whole in one shard")  # fmt: skip
        seen.update(ids)
        count[0] += n_rows
        return lines

    def write(chunks):
        def fn(tmp):
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                f.write(csv_text([header]))
                f.writelines(chunks)  # consumed as the parts arrive

        return fn

    if Path(out).is_dir():
        for name, result in results:
            atomic_write(Path(out) / name, write([text(*result)]))
    else:
        atomic_write(out, write(text(*result) for _, result in results))
    return count[0]
