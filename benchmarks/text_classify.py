"""Sentiment (Rotten Tomatoes snippets) and speaker identification (Japanese Vowels): the tables of
docs/text.md, produced by the very CLI commands the docs show.

For each seed it runs::

    lstmkit classify train ../shared/data/sentiment/rt_snippets.csv --text-column text \
        --label-column label --seed S --out OUT/rt-S.lstmkit
    lstmkit classify train ../shared/data/japanese_vowels/train.csv --sequence-column utterance \
        --time-column frame --label-column label --test ../shared/data/japanese_vowels/test.csv \
        --units 32 --epochs 30 --batch-size 16 --patience 5 --val-fraction 0.15 --seed S \
        --out OUT/jv-S.lstmkit

and prints one Markdown table per task (accuracy / F1 on the test split of each seed, from the
results saved in each model's metadata), plus the mean over seeds::

    python benchmarks/text_classify.py [--seeds 0,1,2] [--out out/bench/classify] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "benchmarks"))

from text_charlm import set_threads


def commands(data: Path, out: Path, seed: int) -> dict:
    rt = [
        "train", str(data / "sentiment" / "rt_snippets.csv"), "--text-column", "text",
        "--label-column", "label", "--seed", str(seed), "--out", str(out / f"rt-{seed}.lstmkit"),
    ]  # fmt: skip
    jv = [
        "train", str(data / "japanese_vowels" / "train.csv"), "--sequence-column", "utterance",
        "--time-column", "frame", "--label-column", "label",
        "--test", str(data / "japanese_vowels" / "test.csv"), "--units", "32", "--epochs", "30",
        "--batch-size", "16", "--patience", "5", "--val-fraction", "0.15", "--seed", str(seed),
        "--out", str(out / f"jv-{seed}.lstmkit"),
    ]  # fmt: skip
    return {"rt": rt, "jv": jv}


def table(rows: dict) -> str:
    methods = list(next(iter(rows.values())))
    lines = ["| method | " + " | ".join(f"seed {s}" for s in rows) + " | mean |"]
    lines.append("|---" * (len(rows) + 2) + "|")
    for m in methods:
        cells, accs = [], []
        for r in rows.values():
            cells.append(f"{100 * r[m]['accuracy']:.1f} / {r[m]['f1']:.3f}")
            accs.append(r[m]["accuracy"])
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {100 * sum(accs) / len(accs):.1f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default="out/bench/classify")
    ap.add_argument("--tasks", default="rt,jv")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    import lstmkit
    from lstmkit.cli import classify as cli

    out = Path(args.out)
    results = {}
    for task in args.tasks.split(","):
        rows = {}
        for seed in (int(s) for s in args.seeds.split(",")):
            cmd = commands(Path(args.data), out, seed)[task]
            print("$ lstmkit classify " + " ".join(cmd), flush=True)
            t0 = time.perf_counter()
            if cli.main(cmd) != 0:
                raise SystemExit(f"{task} seed {seed} failed")
            print(f"({time.perf_counter() - t0:.0f} s)\n", flush=True)
            model = lstmkit.load_model(cmd[cmd.index("--out") + 1], compile=False)
            rows[seed] = model.metadata["results"]
        results[task] = rows
        print(f"{task}: accuracy % / F1 on the test split\n{table(rows)}\n", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
