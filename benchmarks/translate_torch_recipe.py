"""The translation recipe of ``lstmkit translate train`` trained in PyTorch for the same time,
through the SAME data pipeline, scored on the SAME validation pairs.

- data: :func:`lstmkit.apps.translate.prepare` (read_pairs, split_validation with the same seed,
  the same tokenizers and ids, the same per-epoch BLEU subset);
- model: ``tests/translate_torch.py`` (the independent PyTorch model of the same architecture),
  started from the same initial weights as lstmkit's (``copy_into``);
- training: the same length-sorted batches (``translate_train.length_sorted_batches``, same seed),
  Adam, global-norm clipping, dropout, label smoothing, the same wall-clock deadline (checked after
  every batch, validation included) and the best epoch by greedy validation BLEU on the subset;
- scores: the best weights are copied back into an lstmkit ``Translator`` and decoded by lstmkit's
  own greedy and beam search (the same decoder for both sides: only the training differs), then
  :func:`lstmkit.apps.translate_data.scores` on every distinct validation source with all its
  references; plus the copy baseline.

The lstmkit run of the same recipe is the command line (see ``docs/translate.md``)::

    lstmkit translate train PAIRS.csv --out M.lstmkit --max-minutes 30 --seed 0
    lstmkit translate evaluate M.lstmkit M.lstmkit.valid.csv --beam 1
    lstmkit translate evaluate M.lstmkit M.lstmkit.valid.csv --beam 5

and this script, with the same ``--seed`` and ``--max-minutes``::

    python benchmarks/translate_torch_recipe.py PAIRS.csv --max-minutes 30 --threads 2 --seed 0

Both score the pairs of ``M.lstmkit.valid.csv`` (pass ``--valid-csv`` to check that this
script's validation part is that file's).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", help="CSV/TSV of sentence pairs")
    ap.add_argument("--source-column", default="source")
    ap.add_argument("--target-column", default="target")
    ap.add_argument("--max-minutes", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--valid-csv", default=None, help="check the split against MODEL.valid.csv")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return ap.parse_args(argv)


def set_threads(n: int) -> None:
    """BLAS and numba read these once, at import: call before importing numpy."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ["LSTMKIT_NUM_THREADS"] = str(n)


def copy_back(tm, model) -> None:
    """torch weights -> lstmkit ``model.params`` (the inverse of ``copy_into``: lstmkit's one
    LSTM bias is torch's ``bias_ih + bias_hh``)."""
    from translate_torch import _linear_names, _lstm_names

    p = model.params

    def put(name, t):
        p[name][...] = t.detach().numpy().astype(p[name].dtype)

    put("src_embedding.embeddings", tm.src_emb.weight)
    put("tgt_embedding.embeddings", tm.tgt_emb.weight)
    for layer in ("encoder_fwd", "encoder_bwd", "decoder"):
        mod, sfx = _lstm_names(layer)
        m = getattr(tm, mod)
        tail = "_l0" + sfx if mod == "enc" else ""
        put(f"{layer}.kernel", getattr(m, f"weight_ih{tail}").T)
        put(f"{layer}.recurrent_kernel", getattr(m, f"weight_hh{tail}").T)
        put(f"{layer}.bias", getattr(m, f"bias_ih{tail}") + getattr(m, f"bias_hh{tail}"))
    for layer, mod in _linear_names().items():
        put(f"{layer}.kernel", getattr(tm, mod).weight.T)
        if f"{layer}.bias" in p:
            put(f"{layer}.bias", getattr(tm, mod).bias)


def check_valid_csv(path, split) -> None:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    got = ([r[0] for r in rows], [r[1] for r in rows])
    if got != (split.valid_sources, split.valid_targets):
        sys.exit(f"--valid-csv {path}: not the validation part of this split (other seed?)")


def train_torch(prep, model, cfg, deadline, say):
    """Train the PyTorch twin of ``model`` until ``deadline``; returns its best state dict."""
    import numpy as np
    import torch

    from lstmkit.apps.translate_train import _check_pairs, length_sorted_batches, padded
    from translate_torch import TorchTranslator, copy_into

    c = cfg.model
    tm = TorchTranslator(
        model.src_vocab, model.tgt_vocab, c.embedding_dim, c.encoder_units, c.decoder_units,
        dropout=c.dropout, smoothing=c.label_smoothing,
    )  # fmt: skip
    copy_into(tm, model.params, np.random.default_rng(c.seed))
    opt = torch.optim.Adam(tm.parameters(), lr=c.learning_rate)
    src, tgt = _check_pairs("train", prep.train_ids, c.max_len)
    rng = np.random.default_rng(c.seed)
    best, best_state, waited = -math.inf, None, 0
    for epoch in range(1, c.epochs + 1):
        tm.train()
        batches = length_sorted_batches(
            [len(s) for s in src], [len(t) for t in tgt], c.batch_size, c.pool_batches, rng
        )
        t0, tokens, loss_sum, late = time.monotonic(), 0, 0.0, False
        for idx in batches:
            s = torch.from_numpy(padded([src[j] for j in idx]))
            t = padded([tgt[j] for j in idx], bos_eos=True)
            n = int((t[:, 1:] != 0).sum())
            opt.zero_grad()
            loss = tm(s, torch.from_numpy(t))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tm.parameters(), c.clipnorm)
            opt.step()
            tokens, loss_sum = tokens + n, loss_sum + loss.item() * n
            if time.monotonic() >= deadline:
                late = True
                break
        rate = tokens / (time.monotonic() - t0)
        tm.eval()
        copy_back(tm, model)
        v = prep.bleu(model)
        improved = v["val_bleu"] > best
        if improved:
            best, waited = v["val_bleu"], 0
            best_state = {k: x.detach().clone() for k, x in tm.state_dict().items()}
        else:
            waited += 1
        say(f"torch epoch {epoch}: loss {loss_sum / tokens:.4f}, val_bleu {v['val_bleu']:.2f}, "
            f"val_chrf {v['val_chrf']:.2f}, {rate:,.0f} target tokens/s"
            f"{' (best)' if improved else ''}")  # fmt: skip
        if late or waited >= c.patience:
            break
    tm.load_state_dict(best_state)
    copy_back(tm, model)
    return best


def main(argv=None):
    args = parse(argv)
    set_threads(args.threads)
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "src"))
    import torch

    from lstmkit.apps.translate import TranslateConfig, pairs_by_source, prepare, translate
    from lstmkit.apps.translate_data import scores
    from lstmkit.apps.translate_model import Translator, TranslatorConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.monotonic()
    model_cfg = TranslatorConfig(seed=args.seed)
    if args.epochs:
        model_cfg = TranslatorConfig(seed=args.seed, epochs=args.epochs)
    cfg = TranslateConfig(source_column=args.source_column, target_column=args.target_column,
                          model=model_cfg)  # fmt: skip
    prep = prepare(args.pairs, cfg, log=print)
    if args.valid_csv:
        check_valid_csv(args.valid_csv, prep.split)
    model = Translator(
        prep.source_tokenizer.vocab_size, prep.target_tokenizer.vocab_size, cfg.model
    )
    model.metadata = {
        "source_tokenizer": prep.source_tokenizer.to_json(),
        "target_tokenizer": prep.target_tokenizer.to_json(),
        "target_level": prep.levels[1],
    }
    # the same clock as lstmkit's: from the start of training
    deadline = time.monotonic() + 60 * args.max_minutes
    print(f"prepared in {time.monotonic() - start:.0f} s; training for {args.max_minutes} min "
          f"on {args.threads} threads", flush=True)  # fmt: skip
    train_torch(prep, model, cfg, deadline, lambda line: print(line, flush=True))
    sources, refs = pairs_by_source(prep.split.valid_sources, prep.split.valid_targets)
    out = {"threads": args.threads, "seed": args.seed, "max_minutes": args.max_minutes}
    for beam in (1, 5):
        t0 = time.monotonic()
        hyps = translate(model, sources, beam)
        s = scores(hyps, refs, prep.levels[1])
        out[f"beam{beam}"] = {k: s[k] for k in ("bleu", "chrf", "exact")}
        print(f"torch-trained, {'greedy' if beam == 1 else 'beam 5'} on {len(sources)} sources: "
              f"BLEU {s['bleu']:.2f}, chrF {s['chrf']:.2f}, exact {s['exact']:.4f} "
              f"({time.monotonic() - t0:.0f} s to decode)", flush=True)  # fmt: skip
    copy = scores(sources, refs, prep.levels[1])
    out["copy"] = {k: copy[k] for k in ("bleu", "chrf", "exact")}
    print(f"copy baseline: BLEU {copy['bleu']:.2f}, chrF {copy['chrf']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
