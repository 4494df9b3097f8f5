"""The long-time-lag experiments of ``docs/lab.md``, one preset per table row.

    python benchmarks/lab_adding.py --list
    python benchmarks/lab_adding.py t100 t100-rnn --seeds 0,1,2   # 1-5 min each on 2 cores
    python benchmarks/lab_adding.py t500 --out out/lab     # 5-15 min
    python benchmarks/lab_adding.py t1000                  # 35 min to over an hour
    python benchmarks/lab_adding.py compare-adding compare-adding-gru   # the variants tables

Each preset is exactly the ``lstmkit lab`` command quoted in the docs (printed before it runs);
results land in ``--out`` as JSON and a learning-curve PNG. Set ``OMP_NUM_THREADS=1`` for runs
side by side: the matrices are small, BLAS threads only add contention.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from lstmkit.cli.lab import main as lab_main

CELLS = "lstm,lstm-peephole,lstm-cifg,lstm-nofg,lstm-ln,gru,rnn"
PRESETS = {
    "t100": "adding --length 100 --cell lstm --seed {seed} --budget 400000",
    "t100-ib": "adding --length 100 --cell lstm --seed {seed} --input-bias -3 --budget 400000",
    "t100-rnn": "adding --length 100 --cell rnn --seed {seed} --budget 400000",
    "t500": (
        "adding --length 500 --cell lstm --seed {seed} --forget-bias 7 --input-bias -3 "
        "--budget 1000000 --check-every 6400"
    ),
    "t1000": (
        "adding --length 1000 --cell lstm --seed {seed} --forget-bias 8 --input-bias -3 "
        "--budget 2000000 --check-every 12800"
    ),
    "compare-adding": (
        f"compare --task adding --length 50 --cells {CELLS} --seeds 0,1,2 --input-bias -3 "
        "--budget 100000"
    ),
    "compare-temporal100": (
        f"compare --task temporal-order --length 100 --cells {CELLS} --seeds 0,1,2 "
        "--input-bias -3 --budget 100000 --check-every 1600"
    ),
    "compare-temporal50": (
        f"compare --task temporal-order --length 50 --cells {CELLS} --seeds 0,1,2 "
        "--input-bias -3 --budget 100000"
    ),
    # the GRU with its update gate started at 5 (written to <out>-gru: same file names)
    "compare-adding-gru": (
        "compare --task adding --length 50 --cells gru --seeds 0,1,2 --update-bias 5 "
        "--budget 100000"
    ),
    "compare-temporal100-gru": (
        "compare --task temporal-order --length 100 --cells gru --seeds 0,1,2 --update-bias 5 "
        "--budget 100000 --check-every 1600"
    ),
    "compare-temporal50-gru": (
        "compare --task temporal-order --length 50 --cells gru --seeds 0,1,2 --update-bias 5 "
        "--budget 100000"
    ),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("presets", nargs="*", choices=[[], *PRESETS], metavar="PRESET")
    p.add_argument("--out", default="out/lab")
    p.add_argument("--seeds", default="0", help="single-run presets: comma-separated seeds")
    p.add_argument("--list", action="store_true", help="print the commands and exit")
    args = p.parse_args(argv)
    if args.list or not args.presets:
        for name, cmd in PRESETS.items():
            print(f"{name:<24} lstmkit lab {cmd}")
        return 0
    for name in args.presets:
        out = args.out + "-gru" if name.endswith("-gru") else args.out
        seeds = args.seeds.split(",") if "{seed}" in PRESETS[name] else [None]
        for seed in seeds:
            argv = [*shlex.split(PRESETS[name].format(seed=seed)), "--out", out]
            print(f"$ lstmkit lab {shlex.join(argv)}", flush=True)
            rc = lab_main(argv)
            if rc:
                return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
