"""Short training runs of the translation recipe with one thing changed, to compare how fast the
validation loss falls (issue 16's quality gap: is it the initialisation, the dropout placement?).

Each run: ``lstmkit.apps.translate.prepare`` on the Tatoeba pairs (the split and the tokenizers
of ``lstmkit translate train``), the recipe's model and trainer step (``train_step``: Adam,
clipping, dropout, label smoothing), the same seed and the same batches for every variant; the
validation NLL per target token (no smoothing, no dropout) on the first ``--valid-pairs``
validation pairs every ``--every`` steps. One thread; run the variants side by side.

Variants:

- ``default``: lstmkit's initialisation (PyTorch's defaults: embeddings N(0, 1), LSTM and Linear
  U(±1/sqrt(fan)), ``translate_model._init_params``) and dropout on both embeddings and on h~;
- ``keras-init``: Keras' defaults instead (glorot-uniform kernels, orthogonal recurrent kernels,
  zero biases with the forget gate's at 1, embeddings U(±0.05));
- ``htilde-dropout``: dropout on h~ only (none on the embeddings).

    python benchmarks/translate_short_runs.py ../shared/data/translation/tatoeba_en_zh/train.csv \\
        --variant default --steps 300
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("default", "keras-init", "htilde-dropout")


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs")
    ap.add_argument("--variant", choices=VARIANTS, default="default")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--valid-pairs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def keras_init(model, rng) -> None:
    """Keras 3's default initialisers, in place."""
    import numpy as np

    p = model.params
    for name, w in p.items():
        layer, role = name.split(".")
        if role == "embeddings":
            v = rng.uniform(-0.05, 0.05, w.shape)
            v[0] = 0
        elif role == "bias":
            v = np.zeros(w.shape)
            if layer.startswith(("encoder", "decoder")):
                H = w.shape[0] // 4
                v[H : 2 * H] = 1.0  # unit_forget_bias
        elif role == "recurrent_kernel":
            H = w.shape[0]
            v = np.concatenate([_orthogonal(rng, H) for _ in range(4)], axis=1)
        else:
            limit = np.sqrt(6 / (w.shape[0] + w.shape[1]))
            v = rng.uniform(-limit, limit, w.shape)
        w[...] = v


def _orthogonal(rng, n):
    import numpy as np

    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def main(argv=None):
    args = parse(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    sys.path.insert(0, str(REPO / "src"))
    import numpy as np

    from lstmkit.apps import translate_model
    from lstmkit.apps.translate import TranslateConfig, prepare
    from lstmkit.apps.translate_train import (
        _check_pairs,
        length_sorted_batches,
        padded,
        train_step,
        validation_loss,
    )
    from lstmkit.optimizers import Adam

    cfg = TranslateConfig()
    prep = prepare(args.pairs, cfg)
    model = translate_model.Translator(
        prep.source_tokenizer.vocab_size, prep.target_tokenizer.vocab_size, cfg.model
    )
    if args.variant == "keras-init":
        keras_init(model, np.random.default_rng(args.seed))
    if args.variant == "htilde-dropout":
        plain, E = translate_model._dropout, cfg.model.embedding_dim
        translate_model._dropout = lambda shape, rate, rng, dtype: (
            None if shape[-1] == E else plain(shape, rate, rng, dtype)
        )
    src, tgt = _check_pairs("train", prep.train_ids, cfg.model.max_len)
    vs, vt = _check_pairs("valid", prep.valid_ids, cfg.model.max_len)
    valid = (vs[: args.valid_pairs], vt[: args.valid_pairs])
    rng = np.random.default_rng(args.seed)
    opt = Adam(learning_rate=cfg.model.learning_rate)
    batches = length_sorted_batches(
        [len(s) for s in src], [len(t) for t in tgt], 64, cfg.model.pool_batches, rng
    )
    t0, loss_sum, tokens = time.process_time(), 0.0, 0
    print(f"{args.variant}: step 0 val_nll {validation_loss(model, valid):.4f}", flush=True)
    for step, idx in enumerate(batches[: args.steps], 1):
        loss, n = train_step(model, opt, padded([src[j] for j in idx]),
                             padded([tgt[j] for j in idx], True), rng)  # fmt: skip
        loss_sum, tokens = loss_sum + loss * n, tokens + n
        if step % args.every == 0:
            print(f"{args.variant}: step {step} train_loss {loss_sum / tokens:.4f} val_nll "
                  f"{validation_loss(model, valid):.4f} ({time.process_time() - t0:.0f} cpu-s)",
                  flush=True)  # fmt: skip
            loss_sum, tokens = 0.0, 0


if __name__ == "__main__":
    main()
