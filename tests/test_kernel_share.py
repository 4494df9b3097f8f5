"""``benchmarks/kernel_share.py``: it runs (``--quick``: tiny sizes) and writes every kernel,
and its FLOP counts equal those torch's ``FlopCounterMode`` counts for the products each kernel
makes (shapes written here from the kernels' docstrings). No timed assertions."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "kernel_share.py"


@pytest.fixture(scope="module")
def ks():
    spec = importlib.util.spec_from_file_location("kernel_share", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def torch_flops(products):
    """FLOPs torch counts for ``[((m, k, n), times)]``: ``times`` products ``(m, k) @ (k, n)``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        for (m, k, n), times in products:
            a, b = torch.zeros(m, k), torch.zeros(k, n)
            for _ in range(times):
                torch.mm(a, b)
    return counter.get_total_flops()


@pytest.mark.parametrize("need_dx", [False, True])
def test_lstm_feature_major_flops_match_torch(ks, need_dx):
    T, B, D, H = 7, 5, 3, 4  # a batch of 2 or more: the feature-major kernels
    K = 1 + D + H  # the stacked input [1; x_t; h_{t-1}]
    rows = D + H if need_dx else H
    f = ks.lstm_flops(T, B, D, H, need_dx=need_dx)
    assert f["forward"] == torch_flops([((4 * H, K, B), T)])  # W.T @ xh_t per step
    assert f["infer"] == f["forward"]
    assert f["backward.product"] == torch_flops([((rows, 4 * H, B), T)])  # W @ dz_t
    assert f["weight_grads"] == torch_flops([((4 * H, B, K), T)])  # dz_t @ xh_t.T
    assert f["backward"] == torch_flops([((rows, 4 * H, B), T), ((4 * H, B, K), T)])
    assert f["input_projection"] == torch_flops([((T * B, D, 4 * H), 1)])


def test_lstm_batch_one_flops_match_torch(ks):
    T, B, D, H = 6, 1, 3, 5  # the row-major kernels
    f = ks.lstm_flops(T, B, D, H)
    proj = ((T * B, D, 4 * H), 1)  # x @ kernel, all steps at once
    assert f["forward"] == torch_flops([proj, ((B, H, 4 * H), T)])  # + h_{t-1} @ U per step
    assert f["infer"] == torch_flops([((B, D, 4 * H), T), ((B, H, 4 * H), T)])
    grads = [((T * B, 4 * H, D), 1), ((D, T * B, 4 * H), 1), ((H, T * B, 4 * H), 1)]
    assert f["weight_grads"] == torch_flops(grads)  # dx, d kernel, d recurrent_kernel
    assert f["backward"] == torch_flops([((B, 4 * H, H), T), *grads])  # + dz_t @ U.T per step


@pytest.mark.parametrize(("gates", "cell"), [(3, "GRU"), (1, "RNN")])
def test_gru_rnn_flops_match_torch(ks, gates, cell):
    T, B, D, H = 5, 4, 3, 6
    G = gates * H
    f = ks.rowmajor_flops(T, B, D, H, gates)
    assert f["forward"] == torch_flops([((T * B, D, G), 1), ((B, H, G), T)]), cell
    grads = [((T * B, G, D), 1), ((D, T * B, G), 1), ((H, T * B, G), 1)]
    assert f["backward"] == torch_flops([((B, G, H), T), *grads]), cell


def _run(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def test_quick_run_times_every_kernel_of_every_variant(tmp_path):
    out = tmp_path / "kshare.json"
    md = tmp_path / "kshare.md"
    r = _run("--quick", "--threads", "1", "--configs", "A,B,E", "--kernel", "all",
             "--json", str(out), "--markdown", str(md))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    env = res["environment"]
    assert env["variants_timed"] == env["variants_runnable"]
    assert env["kernel_variant_picked"] in env["variants_runnable"]
    assert res["gemm_gflops"] > 0
    assert f"micro-kernel variant picked: {env['kernel_variant_picked']}" in r.stdout
    rows = res["kernels"]
    for row in rows:
        assert row["ms"] > 0 and math.isfinite(row["gflops"] + row["pct_gemm_cpu"]), row
    head = md.read_text().splitlines()[0]  # the variants side by side
    assert all(f"| {v}: ms" in head for v in env["variants_runnable"]), head
    got = {(r["config"], r["layer"], r["kernel"], r["variant"]) for r in rows}
    fm = ("forward", "forward.product", "backward", "backward.product", "infer")
    for v in env["variants_runnable"]:  # the micro-kernel's users, once per variant
        for k in fm:
            assert ("A", "", k, v) in got
            assert ("E", "l1", k, v) in got and ("E", "l2", k, v) in got
    for k in ("weight_grads", "input_projection"):  # BLAS: the same for every variant
        assert ("A", "", k, None) in got
    for k in ("forward", "forward.recurrence", "backward", "backward.recurrence", "infer",
              "weight_grads", "input_projection"):  # fmt: skip
        assert ("B", "", k, None) in got  # batch 1: the row kernels
    for cell in ("GRU", "RNN"):
        assert {("A", cell, k, None) for k in ("forward", "backward")} <= got
    # E's layers: the first skips dx, the second (input 2H) computes it; two directions each
    e = {r["layer"]: r for r in rows if r["config"] == "E" and r["kernel"] == "backward"}
    assert (e["l1"]["need_dx"], e["l2"]["need_dx"], e["l1"]["calls"]) == (False, True, 2)


def test_an_unknown_variant_is_refused_by_name():
    r = _run("--quick", "--kernel", "avx1024", timeout=120)
    assert r.returncode != 0
    assert "--kernel" in r.stderr and "avx1024" in r.stderr
