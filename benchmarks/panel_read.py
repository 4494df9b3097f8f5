"""Memory and time of ``read_panel`` on a generated long-format file (issue 18: 10^5 series of a
few hundred points must fit on this machine).

    python benchmarks/panel_read.py                          # 100000 series x 300 months
    python benchmarks/panel_read.py --series 1000 --points 300 --keep /tmp/p.csv
    python benchmarks/panel_read.py --read /tmp/p.csv         # read a kept file again

Writes ``unique_id,ds,y`` rows (ids ``s000000``..., monthly dates ``YYYY-MM-01``, values with 6
decimals; the series have 300 points each unless ``--ragged``, which draws lengths in
[points/2, points]), then reads the file in a fresh interpreter and reports its wall-clock
seconds, peak RSS (``ru_maxrss``), the RSS before reading (the interpreter and NumPy) and the
size of the result (``values`` + ``times`` + ``offsets``). The machine is shared: times vary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np
from lstmkit.apps.panel_io import read_panel
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t, cpu = time.perf_counter(), time.process_time()
panel = read_panel(sys.argv[1])
seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
result = panel.values.nbytes + panel.times.nbytes + panel.offsets.nbytes
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_rss": peak, "rss_before": before,
                  "result_bytes": result, "n_series": panel.n_series,
                  "n_values": int(panel.values.size), "freq": panel.freq}))
"""


def write_file(path: str, n_series: int, points: int, ragged: bool, seed: int = 0) -> int:
    """Write the panel in blocks of series (the text of one block at a time); returns rows."""
    rng = np.random.default_rng(seed)
    months = np.arange(np.datetime64("1990-01"), np.datetime64("1990-01") + points)
    dates = np.char.add(months.astype(str), "-01")
    rows = 0
    with open(path, "w") as f:
        f.write("unique_id,ds,y\n")
        for start in range(0, n_series, 1000):
            lines = []
            for k in range(start, min(start + 1000, n_series)):
                n = int(rng.integers(points // 2, points + 1)) if ragged else points
                y = np.round(100 + np.cumsum(rng.normal(size=n)), 6).astype(str)
                sid = f"s{k:06d},"
                lines.append(
                    "\n".join(np.char.add(np.char.add(sid, dates[:n]), np.char.add(",", y)))
                )
                rows += n
            f.write("\n".join(lines) + "\n")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--points", type=int, default=300)
    ap.add_argument("--ragged", action="store_true")
    ap.add_argument("--keep", help="write the file here and keep it")
    ap.add_argument("--read", help="read this file (kept) instead of writing one")
    args = ap.parse_args(argv)
    path = args.read or args.keep or os.path.join(tempfile.mkdtemp(), "panel.csv")
    if args.read is None:
        t = time.perf_counter()
        rows = write_file(path, args.series, args.points, args.ragged)
        took = time.perf_counter() - t
        print(f"wrote {rows:,} rows, {os.path.getsize(path) / 1e6:,.0f} MB in {took:.0f} s: {path}")
    size = os.path.getsize(path)
    try:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        out = subprocess.run([sys.executable, "-c", CHILD, path], env=env, check=True,
                             capture_output=True, text=True)  # fmt: skip
        r = json.loads(out.stdout)
    finally:
        if not (args.keep or args.read):
            os.unlink(path)
    print(
        f"read_panel: {r['n_series']:,} series, {r['n_values']:,} values ({r['freq']}) in "
        f"{r['seconds']:.1f} s ({r['cpu']:.1f} s CPU); peak RSS {r['peak_rss'] / 1e6:,.0f} MB (before reading "
        f"{r['rss_before'] / 1e6:,.0f} MB; the result holds {r['result_bytes'] / 1e6:,.0f} MB; "
        f"the file is {size / 1e6:,.0f} MB)"
    )


if __name__ == "__main__":
    main()
