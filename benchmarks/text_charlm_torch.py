"""The character language model of ``text_charlm.py`` trained with PyTorch ``nn.LSTM``.

Same data pipeline (lstmkit's vocabulary, 90/10 contiguous split and truncated-BPTT chunks: the
batches are identical), same architecture, same initial weights (copied from the lstmkit
``--init`` file), same optimizer settings and schedule (Adam 3e-3, betas 0.9/0.999, eps 1e-7,
global gradient norm clipped at 5, constant for 15 epochs then x0.85 per epoch), same number of
steps, same validation procedure. The remaining differences are float32 rounding and where
Adam's eps enters (Keras adds it before the bias correction, torch after; with eps 1e-12 in both
the first 60 updates agree to 1e-6).

Weight mapping (gate order i, f, g, o is the same in both): ``weight_ih_l{k} = kernel.T``,
``weight_hh_l{k} = recurrent_kernel.T``, ``bias_ih_l{k} = bias``, ``bias_hh_l{k} = 0`` and frozen
(trained, it would be a second copy of the bias that Adam moves too: twice the bias step);
``nn.Embedding.weight = embeddings``; ``nn.Linear.weight = kernel.T``.

Two modes::

    # full run; with --compare, a table against the lstmkit JSON
    python benchmarks/text_charlm_torch.py --init out/bench/charlm_init.lstmkit --threads 1 \
        --compare out/bench/charlm_lstmkit.json
    # the comparison table of two finished runs
    python benchmarks/text_charlm_torch.py --init out/bench/charlm_init.lstmkit \
        --report out/bench/charlm_lstmkit.json out/bench/charlm_torch.json
    # per-step time only: alternate blocks of lstmkit and torch training steps in one process
    # (same load), from the same weights on the same batches; --torch-threads to differ
    python benchmarks/text_charlm_torch.py --init out/bench/charlm_init.lstmkit --time-steps 100 \
        --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from text_charlm import DEFAULT_DATA, set_threads


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", required=True, help="lstmkit model file with the initial weights")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=50)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--clipnorm", type=float, default=5.0)
    ap.add_argument("--eps", type=float, default=1e-12, help="Adam's epsilon")
    ap.add_argument("--lr-decay", type=float, default=0.85, help="per epoch after --decay-after")
    ap.add_argument("--decay-after", type=int, default=15)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2, help="BLAS/numba threads (and torch's)")
    ap.add_argument("--torch-threads", type=int, default=None, help="torch's, if different")
    ap.add_argument("--out", default="out/bench/charlm_torch.json")
    ap.add_argument(
        "--model",
        default="out/bench/charlm_torch.lstmkit",
        help="the torch-trained weights (last epoch) as an lstmkit model file",
    )
    ap.add_argument("--compare", default=None, help="lstmkit JSON from text_charlm.py")
    ap.add_argument("--time-steps", type=int, default=0, help="only time N steps of each library")
    ap.add_argument("--block", type=int, default=10, help="steps per alternating timing block")
    ap.add_argument("--report", nargs=2, metavar=("LSTMKIT_JSON", "TORCH_JSON"), default=None)
    return ap.parse_args(argv)


def _t(a):
    import torch

    return torch.from_numpy(a.copy())


def torch_model(lk_model):
    """An ``nn.Module`` with lstmkit's architecture and a copy of its weights."""
    import torch
    from torch import nn

    emb = lk_model.layers[0]
    rnns = [layer for layer in lk_model.layers if type(layer).__name__ == "LSTM"]
    head = lk_model.layers[-1]
    V, E = emb.params["embeddings"].shape
    H = rnns[0].units

    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, E)
            self.lstm = nn.LSTM(E, H, num_layers=len(rnns), batch_first=True)
            self.out = nn.Linear(H, V)

        def forward(self, x, state=None):
            y, state = self.lstm(self.emb(x), state)
            return self.out(y), state

    m = CharLM()
    with torch.no_grad():
        m.emb.weight.copy_(_t(emb.params["embeddings"]))
        for k, layer in enumerate(rnns):
            p = layer.params
            getattr(m.lstm, f"weight_ih_l{k}").copy_(_t(p["kernel"].T))
            getattr(m.lstm, f"weight_hh_l{k}").copy_(_t(p["recurrent_kernel"].T))
            getattr(m.lstm, f"bias_ih_l{k}").copy_(_t(p["bias"]))
            # lstmkit has one bias; torch two, and Adam would move both (the sum twice as fast):
            # bias_hh stays 0 and frozen, so bias_ih is exactly lstmkit's bias
            getattr(m.lstm, f"bias_hh_l{k}").zero_()
            getattr(m.lstm, f"bias_hh_l{k}").requires_grad_(False)
        m.out.weight.copy_(_t(head.params["kernel"].T))
        m.out.bias.copy_(_t(head.params["bias"]))
    return m


def back_to_lstmkit(m, lk_model):
    """Copy the trained torch weights back into ``lk_model`` (the inverse of ``torch_model``)."""
    emb = lk_model.layers[0]
    rnns = [layer for layer in lk_model.layers if type(layer).__name__ == "LSTM"]
    head = lk_model.layers[-1]

    def np_(t):
        return t.detach().numpy().astype(emb.params["embeddings"].dtype)

    emb.params["embeddings"][...] = np_(m.emb.weight)
    for k, layer in enumerate(rnns):
        p = layer.params
        p["kernel"][...] = np_(getattr(m.lstm, f"weight_ih_l{k}")).T
        p["recurrent_kernel"][...] = np_(getattr(m.lstm, f"weight_hh_l{k}")).T
        p["bias"][...] = np_(getattr(m.lstm, f"bias_ih_l{k}") + getattr(m.lstm, f"bias_hh_l{k}"))
    head.params["kernel"][...] = np_(m.out.weight).T
    head.params["bias"][...] = np_(m.out.bias)
    return lk_model


def make_step(m, lr, clipnorm, eps=1e-7):
    """One truncated-BPTT update; the state is detached so gradients stop at the chunk edge."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(
        [p for p in m.parameters() if p.requires_grad],
        lr=lr,
        betas=(0.9, 0.999),
        eps=eps,
    )
    carry = {"state": None}

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        logits, state = m(x, carry["state"])
        carry["state"] = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), clipnorm)
        opt.step()
        return loss.item()

    def reset():
        carry["state"] = None

    return step, reset, opt


def stream_loss(m, ids, batch_size, seq_len):
    """Exactly ``lstmkit.apps.text.stream_loss``: B streams, chunks of T, state carried."""
    import torch
    import torch.nn.functional as F

    from lstmkit.data.text import stateful_chunks

    batch_size = max(1, min(batch_size, (len(ids) - 1) // max(seq_len, 1) or 1))
    xs, ys = stateful_chunks(ids, batch_size, seq_len, drop_remainder=False)
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for x, y in zip(xs, ys):
            logits, state = m(torch.from_numpy(x.astype("int64")), state)
            total += float(
                F.cross_entropy(
                    logits.double().reshape(-1, logits.shape[-1]),
                    torch.from_numpy(y.astype("int64")).reshape(-1),
                    reduction="sum",
                )
            )
            count += y.size
    return total / count


def data(args, vocab_size):
    from lstmkit.apps.text import LMConfig, lm_data
    from lstmkit.data.text import stateful_chunks

    text = Path(args.data).read_text(encoding="utf-8")
    vocab, train_ids, val_ids = lm_data(
        text, LMConfig(level="char", val_fraction=args.val_fraction)
    )
    if len(vocab) != vocab_size:
        raise SystemExit(
            f"vocabulary of {args.data} has {len(vocab)} entries; model has {vocab_size}"
        )
    x, y = stateful_chunks(train_ids, args.batch_size, args.seq_len)
    return x, y, val_ids


def train(args):
    import math

    import torch

    import lstmkit
    from lstmkit.apps.text import LMConfig, learning_rate_at

    lk = lstmkit.load_model(args.init, compile=False)
    m = torch_model(lk)
    x, y, val_ids = data(args, lk.layers[0].input_dim)
    X, Y = torch.from_numpy(x.astype("int64")), torch.from_numpy(y.astype("int64"))
    step, reset, opt = make_step(m, args.lr, args.clipnorm, args.eps)
    cfg = LMConfig(learning_rate=args.lr, lr_decay=args.lr_decay, decay_after=args.decay_after)
    rows, steps, seconds = [], 0, 0.0
    for epoch in range(args.epochs):
        reset()
        lr = learning_rate_at(cfg, epoch)  # the same schedule as lstmkit's run
        for group in opt.param_groups:
            group["lr"] = lr
        m.train()
        total, n = 0.0, 0
        t0 = time.perf_counter()
        for k in range(len(X)):
            total += step(X[k], Y[k])
            n, steps = n + 1, steps + 1
            if args.max_steps and steps >= args.max_steps:
                break
        seconds += time.perf_counter() - t0
        m.eval()
        val = stream_loss(m, val_ids, args.batch_size, args.seq_len)
        rows.append({
            "epoch": epoch + 1, "steps": steps, "seconds": seconds, "loss": total / n,
            "val_loss": val, "val_bpc": val / math.log(2), "lr": lr,
        })  # fmt: skip
        print("epoch {epoch:3d}  steps {steps:6d}  {seconds:8.1f}s  loss {loss:.4f}  "
              "val_loss {val_loss:.4f}  val_bpc {val_bpc:.4f}".format(**rows[-1]), flush=True)  # fmt: skip
        if args.max_steps and steps >= args.max_steps:
            break
    result = {
        "library": f"torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "settings": vars(args),
        "history": rows,
        "seconds_per_step": seconds / steps,
        "best": min(rows, key=lambda r: r["val_loss"]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    back_to_lstmkit(m, lk).save(args.model)
    print(f"{seconds / steps * 1e3:.1f} ms/step; wrote {args.out} and {args.model}")
    if args.compare:
        compare(json.loads(Path(args.compare).read_text()), result)


def compare(lk, th):
    """Per-epoch train loss (mean over the epoch's steps) and validation loss, both in nats."""
    print(f"{'epoch':>5} {'train lstmkit':>13} {'torch':>7} {'diff %':>7}  "
          f"{'val lstmkit':>11} {'torch':>7} {'diff %':>7}")  # fmt: skip
    for a, b in zip(lk["history"], th["history"]):
        dt = 100 * (a["loss"] / b["loss"] - 1)
        dv = 100 * (a["val_loss"] / b["val_loss"] - 1)
        print(f"{a['epoch']:>5} {a['loss']:>13.4f} {b['loss']:>7.4f} {dt:>+7.2f}  "
              f"{a['val_loss']:>11.4f} {b['val_loss']:>7.4f} {dv:>+7.2f}")  # fmt: skip
    a, b = lk["best"], th["best"]
    print(f"best val loss: lstmkit {a['val_loss']:.4f} (epoch {a['epoch']}), torch "
          f"{b['val_loss']:.4f} (epoch {b['epoch']}): {100 * (a['val_loss'] / b['val_loss'] - 1):+.2f}%")  # fmt: skip
    print(f"ms/step: lstmkit {lk['seconds_per_step'] * 1e3:.1f}, torch "
          f"{th['seconds_per_step'] * 1e3:.1f} (separate runs; see --time-steps for a same-load "
          "comparison)")  # fmt: skip


def time_steps(args):
    """Alternate blocks of ``--block`` training steps of each library on the same batches."""
    import torch

    import lstmkit
    from lstmkit.losses import SparseCategoricalCrossentropy
    from lstmkit.ops import backend
    from lstmkit.optimizers import Adam

    lk = lstmkit.load_model(args.init, compile=False)
    lk.compile(
        Adam(args.lr, epsilon=args.eps, clipnorm=args.clipnorm),
        SparseCategoricalCrossentropy(from_logits=True),
        seed=0,
    )
    m = torch_model(lk)
    x, y, _ = data(args, lk.layers[0].input_dim)
    X, Y = torch.from_numpy(x.astype("int64")), torch.from_numpy(y.astype("int64"))
    step, _, _ = make_step(m, args.lr, args.clipnorm, args.eps)
    for k in range(3):  # warm up: numba compilation, allocator, torch's first-call setup
        lk.train_on_batch(x[k], y[k])
        step(X[k], Y[k])
    times = {"lstmkit": [], "torch": []}
    k = 3
    while len(times["torch"]) < args.time_steps:
        for name in ("lstmkit", "torch"):
            for j in range(args.block):
                i = (k + j) % len(x)
                t0 = time.perf_counter()
                lk.train_on_batch(x[i], y[i]) if name == "lstmkit" else step(X[i], Y[i])
                times[name].append(time.perf_counter() - t0)
        k += args.block
    med = {n: 1e3 * statistics.median(t) for n, t in times.items()}
    print(f"per training step (B={args.batch_size}, T={args.seq_len}), median of "
          f"{len(times['torch'])}, threads {args.threads} (torch {torch.get_num_threads()}), "
          f"lstmkit backend {backend.get_backend()}:")  # fmt: skip
    for n, v in med.items():
        q = sorted(times[n])
        print(f"  {n:8s} {v:8.1f} ms   (p10 {1e3 * q[len(q) // 10]:.1f}, p90 "
              f"{1e3 * q[9 * len(q) // 10]:.1f})")  # fmt: skip
    print(f"  lstmkit / torch = {med['lstmkit'] / med['torch']:.2f}")


def main(argv=None):
    args = parse(argv)
    set_threads(args.threads)
    import torch

    torch.set_num_threads(args.torch_threads or args.threads)
    torch.manual_seed(0)
    if args.report:
        compare(*(json.loads(Path(p).read_text()) for p in args.report))
    elif args.time_steps:
        time_steps(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
