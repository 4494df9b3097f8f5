"""Character language model on the Shakespeare corpus with lstmkit: validation loss vs time.

Trains ``Embedding(V, 64) -> LSTM(128) x 2 -> Dense(V)`` (truncated BPTT, 32 streams x 50
steps, Adam 3e-3 for 15 epochs then x0.85 per epoch, 40 epochs, global clip 5) with ``lstmkit.apps.text.train_language_model`` and writes

- ``--init``: the model *before* training (``benchmarks/text_charlm_torch.py`` copies these
  weights into ``nn.LSTM`` so both libraries start from the same point),
- ``--model``: the trained model (best validation epoch),
- ``--out``: JSON with the settings, one row per epoch (steps, training seconds, train and
  validation nats, validation bits per character) and the mean seconds per step.

Early stopping is off by default (``--patience`` = epochs) so the PyTorch run can take exactly
the same steps. Thread counts are fixed before NumPy loads (``--threads``)::

    python benchmarks/text_charlm.py --threads 1     # -> out/bench/charlm{,_init}.lstmkit, .json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "shakespeare" / "corpus.txt"


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="corpus (default ../shared/data/...)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--patience", type=int, default=None, help="default: --epochs (no early stop)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=50)
    ap.add_argument("--embed-dim", type=int, default=64)
    ap.add_argument("--units", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--clipnorm", type=float, default=5.0)
    ap.add_argument("--eps", type=float, default=1e-12, help="Adam's epsilon")
    ap.add_argument("--lr-decay", type=float, default=0.85, help="per epoch after --decay-after")
    ap.add_argument("--decay-after", type=int, default=15)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default="out/bench/charlm_init.lstmkit")
    ap.add_argument("--model", default="out/bench/charlm.lstmkit")
    ap.add_argument("--out", default="out/bench/charlm_lstmkit.json")
    return ap.parse_args(argv)


def set_threads(n: int) -> None:
    """BLAS and numba thread pools read these once, at import: call before importing numpy."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ["LSTMKIT_NUM_THREADS"] = str(n)  # lstmkit's own threads: the same count


def main(argv=None):
    args = parse(argv)
    set_threads(args.threads)
    import lstmkit
    from lstmkit.apps.text import LMConfig, build_language_model, lm_data, train_language_model
    from lstmkit.ops import backend

    text = Path(args.data).read_text(encoding="utf-8")
    cfg = LMConfig(
        level="char", embed_dim=args.embed_dim, units=args.units, layers=args.layers,
        seq_len=args.seq_len, batch_size=args.batch_size, learning_rate=args.lr, epsilon=args.eps,
        clipnorm=args.clipnorm, lr_decay=args.lr_decay, decay_after=args.decay_after, epochs=args.epochs, patience=args.patience or args.epochs,
        val_fraction=args.val_fraction, seed=args.seed, max_steps=args.max_steps,
    )  # fmt: skip
    vocab, _, _ = lm_data(text, cfg)  # what train_language_model will build
    lstmkit.set_random_seed(args.seed)
    model = build_language_model(len(vocab), cfg.embed_dim, cfg.units, cfg.layers)
    model.metadata = {"app": "text", "vocabulary": vocab.to_dict()}
    model.save(args.init)
    print(f"initial weights -> {args.init}; backend {backend.get_backend()}", flush=True)
    report = train_language_model(text, cfg, model=model, log=lambda s: print(s, flush=True))
    report.model.save(args.model)
    steps, seconds = report.history[-1]["steps"], report.history[-1]["seconds"]
    result = {
        "library": "lstmkit",
        "backend": backend.get_backend(),
        "threads": args.threads,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, python {sys.version.split()[0]}",
        "settings": vars(args),
        "vocab_size": len(vocab),
        "history": report.history,
        "seconds_per_step": seconds / steps,
        "best": report.best,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(report.format_table())
    print(f"{seconds / steps * 1e3:.1f} ms/step; wrote {args.out} and {args.model}")


if __name__ == "__main__":
    main()
