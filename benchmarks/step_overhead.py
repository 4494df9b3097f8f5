"""Where a small training step's time goes: the forecaster's step (issue 18), phase by phase,
beside a PyTorch step of the same model.

    PYTHONPATH=src python benchmarks/step_overhead.py [--steps 2000] [--no-torch]

The model is ``forecast_network.build_network`` at the shapes of the fpp2 ``arrivals`` panel's
first ensemble member (468 windows of 4 steps x 4 inputs, 8 known-ahead inputs, LSTM(32) ->
Dense(32, relu) -> Dense(5 quantiles x 4 steps), pinball loss, Adam with clipnorm 1, batches of
64), on random data of those shapes (a step's cost does not depend on the values), one thread.
Prints, per phase of ``_train_step``: Python function calls per step (cProfile's count) and
microseconds per step (timers around the phases, the least of 20 blocks: robust to neighbours);
the compiled LSTM kernels' own share (cProfile's time inside them); a whole ``fit`` (epochs of 8
batches, the forecaster's callbacks) per step; and the PyTorch step (``nn.LSTM`` + two
``nn.Linear``, the same pinball loss, ``clip_grad_norm_``, ``torch.optim.Adam``) on one thread.
"""

from __future__ import annotations

import argparse
import os
import time


def _model(np, L=4, C=4, A=8, ids=4):
    from lstmkit import random as _random
    from lstmkit.apps import forecast_network as fn
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import quantiles_of
    from lstmkit.optimizers import Adam

    config = ForecastConfig().validate()
    facts = {"horizon": 4, "quantiles": quantiles_of(config), "ids": list(range(ids))}
    _random.set_random_seed(0)
    model = fn.build_network(facts, config, L, C, A, ids)
    loss = fn.pinball_loss(facts["quantiles"], facts["horizon"])
    model.compile(optimizer=Adam(config.learning_rate, clipnorm=1.0), loss=loss, seed=0)
    rng = np.random.default_rng(0)
    n, out = 468, len(facts["quantiles"]) * facts["horizon"]
    x = {"series": rng.standard_normal((n, L, C)), "ahead": rng.standard_normal((n, A))}
    y = rng.standard_normal((n, out))
    return model, config, x, y


def _phases(model, bx, by, steps):
    """Least-of-blocks microseconds per step of each phase of ``_train_step``."""
    from lstmkit import random as _random
    from lstmkit.models.training import MetricState
    from lstmkit.ops import backend

    net, state = model.network, MetricState(model._metric_specs)
    names = ("buffers (scope)", "forward", "loss", "backward", "params + penalties", "optimizer")

    @backend.one_path
    def block(n):
        acc = [0.0] * len(names)
        for _ in range(n):
            t0 = time.perf_counter()
            with model._scope("train"):
                t1 = time.perf_counter()
                rng = _random.SeededLater([1, 2, 3])
                preds, masks, tape = net.run(bx, training=True, masks=None, rng=rng)
                t2 = time.perf_counter()
                logs, dys, fl = model._losses(by, preds, masks, state, tape=tape)
                t3 = time.perf_counter()
                grads = net.backward(dys, tape, from_logits=fl)
                t4 = time.perf_counter()
                logs["loss"] += model._regularization(grads, tape.caches)
                params = model.trainable_params
                t5 = time.perf_counter()
                model._apply_gradients(grads, tape, params)
                t6 = time.perf_counter()
            t7 = time.perf_counter()
            for i, d in enumerate((t1 - t0 + t7 - t6, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                acc[i] += d
        return acc

    block(200)
    per = [min(v) for v in zip(*(block(steps // 20) for _ in range(20)))]
    return dict(zip(names, [1e6 * v / (steps // 20) for v in per]))


def _calls(model, bx, by, steps):
    """Function calls (Python and C, ``sys.setprofile``'s call events) per step in each phase,
    and the compiled LSTM kernels' own microseconds per step (cProfile)."""
    import cProfile
    import pstats
    import sys

    count = {"phase": None}

    def tracer(frame, event, arg):
        if event in ("call", "c_call") and count["phase"] is not None:
            count[count["phase"]] = count.get(count["phase"], 0) + 1

    def timed(label, fn, *args, **kwargs):
        count["phase"] = label
        try:
            return fn(*args, **kwargs)
        finally:
            count["phase"] = None

    def step():
        from lstmkit import random as _random

        net = model.network
        with model._scope("train"):
            rng = _random.SeededLater([1, 2, 3])
            preds, masks, tape = timed("forward", net.run, bx, training=True, masks=None, rng=rng)
            _, dys, fl = timed("loss", model._losses, by, preds, masks, state, tape=tape)
            grads = timed("backward", net.backward, dys, tape, from_logits=fl)
            timed("params + penalties", model._regularization, grads, tape.caches)
            params = timed("params + penalties", lambda: model.trainable_params)
            timed("optimizer", model._apply_gradients, grads, tape, params)

    from lstmkit.models.training import MetricState
    from lstmkit.ops import backend

    state = MetricState(model._metric_specs)
    run = backend.one_path(lambda n: [step() for _ in range(n)])
    sys.setprofile(tracer)
    try:
        run(steps)
    finally:
        sys.setprofile(None)
    calls = {k: v / steps for k, v in count.items() if k != "phase"}
    prof = cProfile.Profile()
    prof.enable()
    run(steps)
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    kernel = sum(v[2] for k, v in stats.items() if k[2].endswith("_serial") and "lstm_fm" in k[0])
    return calls, 1e6 * kernel / steps


def _fit_per_step(model, config, x, y, epochs=30):
    from lstmkit.apps import forecast_network as fn

    cbs = fn._callbacks(config, len(y), None, None)
    batches = (len(y) + config.batch_size - 1) // config.batch_size

    def once():
        t = time.perf_counter()
        model.fit(x, y, epochs=epochs, batch_size=config.batch_size, verbose=0, callbacks=cbs)
        return (time.perf_counter() - t) / (epochs * batches)

    once()
    return 1e6 * min(once() for _ in range(5))


def _torch_step(np, steps, L=4, C=4, A=8, H=32, out=20, B=64):
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    lstm, l1, l2 = torch.nn.LSTM(C, H, batch_first=True), torch.nn.Linear(H + A, H), None
    l2 = torch.nn.Linear(H, out)
    params = [*lstm.parameters(), *l1.parameters(), *l2.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    tau = torch.tensor(np.repeat([0.5, 0.1, 0.9, 0.025, 0.975], 4), dtype=torch.float32)
    x, a, y = torch.randn(B, L, C), torch.randn(B, A), torch.randn(B, out)

    def step():
        seq, _ = lstm(x)
        p = l2(torch.relu(l1(torch.cat([seq[:, -1], a], 1))))
        d = y - p
        loss = torch.maximum(tau * d, (tau - 1) * d).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(200):
        step()

    def block(n):
        t = time.perf_counter()
        for _ in range(n):
            step()
        return (time.perf_counter() - t) / n

    return 1e6 * min(block(steps // 20) for _ in range(20))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("LSTMKIT_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy as np

    from lstmkit.ops import backend

    backend.set_backend("numba")  # the compiled kernels from the first step
    model, config, x, y = _model(np)
    xs, ys = model._prepare(x, y)
    idx = np.random.default_rng(1).permutation(len(y))[: config.batch_size]
    bx, by = [v.take(idx, axis=0) for v in xs], [v.take(idx, axis=0) for v in ys]
    us = _phases(model, bx, by, args.steps)
    calls, kernel = _calls(model, bx, by, max(200, args.steps // 4))
    print(f"{'phase':<22}{'calls/step':>18}{'us/step':>10}")
    for name, v in us.items():
        c = calls.get(name)
        print(f"{name:<22}{'' if c is None else f'{c:.0f}':>18}{v:>10.1f}")
    print(f"{'step (sum)':<22}{sum(calls.values()):>18.0f}{sum(us.values()):>10.1f}")
    print(f"  of which the compiled LSTM kernels (forward + backward): {kernel:.1f} us")
    print(f"fit (epochs of {(len(y) + 63) // 64} batches, callbacks): "
          f"{_fit_per_step(model, config, x, y):.1f} us/step")  # fmt: skip
    if not args.no_torch:
        print(f"PyTorch {__import__('torch').__version__}, same model, 1 thread: "
              f"{_torch_step(np, args.steps):.1f} us/step")  # fmt: skip


if __name__ == "__main__":
    main()
