"""Long-time-lag experiments: train a recurrent cell on a task of :mod:`lstmkit.tasks` until the
paper's criterion or a budget, then score it on fresh sequences.

The recipe (``run``):

- model ``<cell>(units) -> Dense(outputs)`` on the last valid step of each (padded, masked)
  sequence; for ``copy`` the recurrent layer returns every step and Dense scores each;
- starting biases: the LSTM forget gate at ``forget_bias`` (5: f = 0.993), the LSTM input gate at
  ``input_bias`` (the paper used negative values), the GRU update gate z (which keeps h as f keeps
  c) at ``update_bias``; None keeps the layer's own initialisation;
- training data is an endless stream of fresh sequences (no epochs, nothing seen twice), batches of
  ``batch``; Adam(``lr``) with global gradient-norm clipping ``clipnorm``; MSE for ``adding``,
  cross-entropy from logits for the classification tasks;
- **stopping rule**: every ``check_every`` training sequences the model is scored on a fixed
  validation set of ``test_size`` (2560) sequences drawn once at the start and never trained on;
  training stops at the first check with at most ``max_wrong`` (3) wrong sequences, or when
  ``budget`` training sequences have been seen (the reported count is the number seen at that
  check, so it is a multiple of ``check_every``, or the budget);
- the report scores a *second*, fresh set of ``test_size`` sequences: wrong count, mean error,
  loss next to the predict-the-mean (or chance) baseline; wall time covers training and checks.

A sequence is wrong when (adding) ``|y_pred - y| >= 0.04``, (temporal-order) the arg-max class is
not the target, (copy) any recalled symbol is wrong. For reference, the paper's own rule on the
training stream ("the last 2000 training sequences all correct and their mean squared error below
0.01", adding) is tracked too and reported as ``paper_rule_sequences`` when it is met.

Seeds: ``seed`` fixes the weights ([seed, 0]), the training stream ([seed, 1]), the validation set
([seed, 2]), the test set ([seed, 3]) and the zoneout/dropout draws ([seed, 4]).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import losses as losses_mod
from .. import optimizers, tasks
from .._atomic import atomic_write
from ..layers import GRU, LSTM, Dense, SimpleRNN
from ..models import Sequential

#: cell name -> (layer class, LSTM variant arguments)
CELLS = {
    "lstm": (LSTM, {}),
    "lstm-peephole": (LSTM, {"peephole": True}),
    "lstm-cifg": (LSTM, {"cifg": True}),
    "lstm-nofg": (LSTM, {"forget_gate": False}),
    "lstm-ln": (LSTM, {"layer_norm": True}),
    "gru": (GRU, {}),
    "rnn": (SimpleRNN, {}),
}


class TaskSpec(NamedTuple):
    make: Callable  # (n, length, rng, dtype) -> tasks.Batch
    input_dim: int
    outputs: int
    loss: Callable  # () -> Loss
    return_sequences: bool
    correct: Callable  # (batch, y_pred) -> bool (B,)
    error: Callable  # (batch, y_pred) -> float per sequence (B,): abs error or cross-entropy
    error_name: str
    baseline: Callable  # length -> loss of the best input-independent output


def _ce(batch, y_pred):
    """Per-sequence cross-entropy (mean over the scored steps) from logits."""
    logp = y_pred - y_pred.max(axis=-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=-1, keepdims=True))
    nll = -np.take_along_axis(logp, batch.y[..., None], axis=-1)[..., 0]
    return nll if nll.ndim == 1 else nll.mean(axis=1)


TASKS = {
    "adding": TaskSpec(
        make=lambda n, T, rng, dt: tasks.adding_problem(n, T, rng, dt),
        input_dim=2,
        outputs=1,
        loss=lambda: losses_mod.MeanSquaredError(),
        return_sequences=False,
        correct=lambda b, p: tasks.adding_correct(b.y, p),
        error=lambda b, p: np.abs(p[:, 0] - b.y[:, 0]).astype(np.float64),
        error_name="mean abs error",
        baseline=lambda T: tasks.ADDING_BASELINE_MSE,
    ),
    "temporal-order": TaskSpec(
        make=lambda n, T, rng, dt: tasks.temporal_order(n, T, rng, dt),
        input_dim=8,
        outputs=4,
        loss=lambda: losses_mod.SparseCategoricalCrossentropy(from_logits=True),
        return_sequences=False,
        correct=lambda b, p: p.argmax(axis=-1) == b.y,
        error=_ce,
        error_name="cross-entropy",
        baseline=lambda T: math.log(4),
    ),
    "copy": TaskSpec(
        make=lambda n, T, rng, dt: tasks.copy_memory(n, T, seed=rng, dtype=dt),
        input_dim=10,
        outputs=9,
        loss=lambda: losses_mod.SparseCategoricalCrossentropy(from_logits=True),
        return_sequences=True,
        correct=lambda b, p: (p[:, -10:].argmax(axis=-1) == b.y[:, -10:]).all(axis=1),
        error=_ce,
        error_name="cross-entropy",
        baseline=lambda T: tasks.copy_baseline_loss(T),
    ),
}


@dataclass
class LabConfig:
    task: str = "adding"
    length: int = 100  # the task's minimal length T (copy: the delay)
    cell: str = "lstm"
    units: int = 32
    forget_bias: float | None = 5.0  # LSTM forget-gate bias at start (None: Keras' 1)
    input_bias: float | None = None  # LSTM input-gate bias at start (None: 0)
    update_bias: float | None = None  # GRU update-gate (z) input bias at start (None: 0)
    lr: float = 3e-3
    clipnorm: float | None = 1.0
    batch: int = 32
    budget: int = 200_000  # training sequences
    check_every: int = 3200  # training sequences between validation checks
    test_size: int = 2560
    max_wrong: int = 3
    seed: int = 0
    dtype: str = "float32"

    def check(self):
        if self.task not in TASKS:
            raise ValueError(
                f"lab: argument 'task' must be one of {sorted(TASKS)}; got {self.task!r}"
            )
        if self.cell not in CELLS:
            raise ValueError(
                f"lab: argument 'cell' must be one of {list(CELLS)}; got {self.cell!r}"
            )
        for arg in ("length", "units", "batch", "budget", "check_every", "test_size"):
            v = getattr(self, arg)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"lab: argument '{arg}' must be a positive int; got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lab: argument 'lr' must be > 0; got {self.lr!r}")


@dataclass
class LabResult:
    config: dict
    solved: bool  # the validation check met the criterion before the budget ran out
    sequences: int  # training sequences seen when training stopped
    wall_time: float  # seconds, training and checks
    test_wrong: int  # on the fresh test set
    test_size: int
    test_error: float  # mean abs error (adding) or mean cross-entropy
    test_loss: float  # MSE (adding) or cross-entropy
    baseline_loss: float  # predict-the-mean MSE (adding) or chance cross-entropy
    error_name: str
    paper_rule_sequences: int | None = None
    curve: list = field(default_factory=list)  # one dict per check
    diverged: bool = False  # stopped at the first NaN or Inf training loss

    def summary(self) -> str:
        c = self.config
        status = "solved" if self.solved else "NOT solved (budget)"
        if self.diverged:
            status = "stopped: training diverged (NaN or Inf loss)"
        return (
            f"{c['task']} T={c['length']} {c['cell']} seed={c['seed']}: {status} after "
            f"{self.sequences:,} sequences, {self.wall_time:.0f} s; fresh test set: "
            f"{self.test_wrong}/{self.test_size} wrong, {self.error_name} {self.test_error:.4f}, "
            f"loss {self.test_loss:.5f} (baseline {self.baseline_loss:.5f})"
        )

    def to_json(self) -> dict:
        return asdict(self)


def build_model(config: LabConfig, rng=None) -> Sequential:
    """``<cell>(units) -> Dense(outputs)`` for the task, with the starting gate biases."""
    spec = TASKS[config.task]
    cls, variant = CELLS[config.cell]
    kwargs = dict(variant, return_sequences=spec.return_sequences)
    if cls is LSTM and variant.get("forget_gate", True) and config.forget_bias is not None:
        kwargs["forget_bias"] = config.forget_bias
    model = Sequential(name=f"lab_{config.cell.replace('-', '_')}", dtype=config.dtype)
    # no input_shape on the layer: Sequential.add would build it at once from the global rng
    model.add(cls(config.units, name="rnn", **kwargs))
    model.add(Dense(spec.outputs, name="head"))
    rng = rng if rng is not None else np.random.default_rng([config.seed, 0])
    model.build((None, None, spec.input_dim), rng=rng)
    layer = model.layers[0]
    if config.input_bias is not None and cls is LSTM:
        block = layer.variant.block("i", config.units)
        if block is not None:
            layer.params["bias"][block] = config.input_bias
    if config.update_bias is not None and cls is GRU:
        # h_t = z h_{t-1} + (1 - z) n: z plays the LSTM forget gate's part (gate order z, r, n)
        layer.params["bias"][0, : config.units] = config.update_bias
    return model


def _predict(model, batch: tasks.Batch) -> np.ndarray:
    """Forward in chunks small enough that the BPTT caches stay around 100 MB."""
    T = batch.x.shape[1]
    per_seq = T * model.layers[0].units * 40  # bytes, roughly, of cache per sequence
    chunk = int(max(32, min(len(batch.x), 100e6 // per_seq)))
    outs = []
    for s in range(0, len(batch.x), chunk):
        sl = slice(s, s + chunk)
        outs.append(model.infer(batch.x[sl], mask=batch.mask[sl])[0])
    return np.concatenate(outs)


def score(model, spec: TaskSpec, batch: tasks.Batch) -> dict:
    y_pred = _predict(model, batch)
    wrong = int((~spec.correct(batch, y_pred)).sum())
    err = spec.error(batch, y_pred)
    if spec.outputs == 1:
        loss = float(np.mean((y_pred[:, 0].astype(np.float64) - batch.y[:, 0]) ** 2))
    else:
        loss = float(err.mean())
    return {"wrong": wrong, "error": float(err.mean()), "loss": loss}


def _diverged(model, loss) -> bool:
    """As ``TerminateOnNaN(check_weights=True)``: the loss, or a weight after the update, is
    NaN or Inf. O(parameters), small next to a batch."""
    return not math.isfinite(loss) or not all(np.isfinite(v).all() for v in model.params.values())


def run(config: LabConfig, log: Callable[[str], None] | None = None) -> LabResult:
    """Train until the stopping rule or the budget; score a fresh test set."""
    config.check()
    spec = TASKS[config.task]
    model = build_model(config)
    model.compile(
        optimizer=optimizers.Adam(config.lr, clipnorm=config.clipnorm),
        loss=spec.loss(),
        seed=config.seed,
    )
    train_rng = np.random.default_rng([config.seed, 1])
    noise_rng = np.random.default_rng([config.seed, 4])
    val = spec.make(
        config.test_size, config.length, np.random.default_rng([config.seed, 2]), config.dtype
    )
    recent = deque(maxlen=2000)  # (correct, squared error) of the latest training sequences
    paper_rule = None
    curve, seen, solved, loss_sum, loss_n = [], 0, False, 0.0, 0
    diverged = False
    start = time.perf_counter()
    while seen < config.budget:
        b = spec.make(config.batch, config.length, train_rng, config.dtype)
        y_pred, caches, _ = model.forward(b.x, training=True, mask=b.mask, rng=noise_rng)
        loss = model.loss(b.y, y_pred)
        grads = model.backward(model.loss.grad(b.y, y_pred).astype(y_pred.dtype), caches)
        model.optimizer.apply(model.trainable_params, grads)
        seen += len(b.x)
        if _diverged(model, float(loss)):
            diverged = True
            break
        loss_sum, loss_n = loss_sum + float(loss), loss_n + 1
        if paper_rule is None:
            sq = spec.error(b, y_pred) ** (2 if spec.outputs == 1 else 1)
            recent.extend(zip(spec.correct(b, y_pred).tolist(), sq.tolist()))
            full = len(recent) == recent.maxlen and all(c for c, _ in recent)
            if full and (spec.outputs != 1 or np.mean([e for _, e in recent]) < 0.01):
                paper_rule = seen
        if seen % config.check_every < config.batch or seen >= config.budget:
            s = score(model, spec, val)
            point = {
                "sequences": seen,
                "time": time.perf_counter() - start,
                "train_loss": loss_sum / loss_n,
                "val_wrong": s["wrong"],
                "val_loss": s["loss"],
                "val_error": s["error"],
            }
            curve.append(point)
            loss_sum, loss_n = 0.0, 0
            if log is not None:
                log(
                    f"{seen:>9,} seq  {point['time']:7.0f} s  train loss {point['train_loss']:.5f}"
                    f"  val loss {s['loss']:.5f}  val wrong {s['wrong']}/{config.test_size}"
                )
            if s["wrong"] <= config.max_wrong:
                solved = True
                break
    wall = time.perf_counter() - start
    test = spec.make(
        config.test_size, config.length, np.random.default_rng([config.seed, 3]), config.dtype
    )
    # a diverged network gives NaN everywhere (and its layers refuse NaN inputs): all wrong
    s = score(model, spec, test) if not diverged else {"wrong": config.test_size, "error": math.nan,
                                                        "loss": math.nan}  # fmt: skip
    return LabResult(
        config=asdict(config),
        solved=solved,
        sequences=seen,
        wall_time=wall,
        test_wrong=s["wrong"],
        test_size=config.test_size,
        test_error=s["error"],
        test_loss=s["loss"],
        baseline_loss=float(spec.baseline(config.length)),
        error_name=spec.error_name,
        paper_rule_sequences=paper_rule,
        curve=curve,
        diverged=diverged,
    )


def result_stem(config: LabConfig | dict) -> str:
    c = config if isinstance(config, dict) else asdict(config)
    return f"{c['task']}-T{c['length']}-{c['cell']}-seed{c['seed']}"


def save_result(result: LabResult, out_dir) -> tuple[Path, Path | None]:
    """``<stem>.json`` and, when matplotlib is installed, ``<stem>.png`` (the learning curve)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(result.config)
    jpath = out / f"{stem}.json"
    text = json.dumps(result.to_json(), indent=2)
    atomic_write(jpath, lambda tmp: Path(tmp).write_text(text))  # never half a file
    ppath = out / f"{stem}.png"
    try:
        atomic_write(ppath, lambda tmp: plot_curve(result, tmp), suffix=".png")
    except ImportError:
        ppath = None
    return jpath, ppath


def plot_curve(result: LabResult, path) -> Path:
    """Validation loss (with the baseline) and wrong count against training sequences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = result.config
    xs = [p["sequences"] for p in result.curve]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax1.plot(xs, [p["val_loss"] for p in result.curve], label="validation")
    ax1.plot(xs, [p["train_loss"] for p in result.curve], alpha=0.6, label="training (mean)")
    ax1.axhline(result.baseline_loss, color="grey", ls="--", label="predict-the-mean / chance")
    ax1.set_yscale("log")
    ax1.set_ylabel("MSE" if c["task"] == "adding" else "cross-entropy")
    ax1.legend()
    ax2.plot(xs, [p["val_wrong"] for p in result.curve])
    ax2.axhline(c["max_wrong"], color="grey", ls="--", label=f"criterion ({c['max_wrong']})")
    ax2.set_yscale("symlog", linthresh=10)
    ax2.set_ylim(0, c["test_size"] * 1.2)
    ax2.set_ylabel(f"wrong of {c['test_size']}")
    ax2.set_xlabel("training sequences")
    ax2.legend()
    fig.suptitle(f"{c['task']} T={c['length']}, {c['cell']}, {c['units']} units, seed {c['seed']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# -- several cells and seeds --------------------------------------------------------------------
def compare(task, cells, seeds, log=None, out_dir=None, **settings) -> list[LabResult]:
    """Run every cell with every seed (same settings); returns the results in that order."""
    results = []
    for cell in cells:
        for seed in seeds:
            r = run(LabConfig(task=task, cell=cell, seed=seed, **settings), log=None)
            if log is not None:
                log(r.summary())
            if out_dir is not None:
                save_result(r, out_dir)
            results.append(r)
    return results


def _mean_spread(values, fmt="{:.0f}"):
    if not values:
        return "-"
    v = np.asarray(values, np.float64)
    if len(v) == 1:
        return fmt.format(v[0])
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))} [{fmt.format(v.min())}, {fmt.format(v.max())}]"


def format_table(results: list[LabResult]) -> str:
    """One markdown row per cell: solved runs, sequences to solve, test wrong, test error, time.

    Cells show ``mean ± sample std [min, max]`` over seeds; "sequences" averages solved runs only.
    """
    by_cell: dict[str, list[LabResult]] = {}
    for r in results:
        by_cell.setdefault(r.config["cell"], []).append(r)
    any_r = results[0]
    lines = [
        (
            f"| cell | solved | sequences to solve | test wrong (of {any_r.test_size}) | "
            f"test {any_r.error_name} | wall s |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for cell, rs in by_cell.items():
        solved = [r for r in rs if r.solved]
        lines.append(
            f"| {cell} | {len(solved)}/{len(rs)} | "
            f"{_mean_spread([r.sequences for r in solved])} | "
            f"{_mean_spread([r.test_wrong for r in rs])} | "
            f"{_mean_spread([r.test_error for r in rs], '{:.4f}')} | "
            f"{_mean_spread([r.wall_time for r in rs])} |"
        )
    return "\n".join(lines)
