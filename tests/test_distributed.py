"""lstmkit.distributed on a local Ray instance (one per test session, object store capped).

Witness: a local ``fit`` in this process with the same seed and global batch size, which
``tests/test_sequential.py`` and the PyTorch tests check on their own. The models here are
deterministic (no dropout): with N > 1 workers each draws its own dropout masks, so only the
deterministic arithmetic can be compared exactly.

Each configuration is chosen so that a wrong reduction fails: 3 workers over batches of 10
rows get parts of 4/3/3 rows (and shards of 17/17/16 rows). Planted and measured: a plain mean
of the workers' gradients (``w = 1 / world`` in ``Worker.grad``) leaves weights 0.15-0.50 off
after 10 Adam steps at lr 0.05, each replica applying its own gradient 0.38-0.69 off, and a
restart that does not rewind to the checkpoint's batch 0.06 off; the right reduction agrees to
~3e-7 (float32 sums in another order).
"""

import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import lstmkit
from lstmkit._optional import MissingExtraError
from lstmkit.callbacks import Callback
from lstmkit.distributed import RayStrategy
from lstmkit.layers import LSTM, BatchNormalization, Dense
from lstmkit.models import Sequential
from lstmkit.optimizers import Adam

TOL = {"rtol": 1e-5, "atol": 2e-6}  # float32 sums in another order; a wrong reduction: ~1e-3


@pytest.fixture(scope="session")
def ray_session():
    import ray  # the 'ray' extra is part of the 'test' extra: a missing one fails here

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            object_store_memory=100 * 2**20,
            include_dashboard=False,
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()


def _data(n=50, t=6, d=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, t, d)).astype("float32")
    y = (x[:, -3:, :2].sum(axis=1) + 0.1 * rng.normal(size=(n, 2))).astype("float32")
    return x, y


def _model(t=6, d=3):
    lstmkit.set_random_seed(1)  # the same initial weights every time
    m = Sequential([LSTM(8, input_shape=(t, d)), Dense(2)])
    m.compile(optimizer=Adam(0.05), loss="mse", seed=3)
    return m


def _weights_and_state(m):
    return m.get_weights(), m.optimizer.get_state()


def _assert_same(a, b):
    wa, sa = _weights_and_state(a)
    wb, sb = _weights_and_state(b)
    for u, v in zip(wa, wb):
        np.testing.assert_allclose(v, u, **TOL)
    assert int(sa["iterations"]) == int(sb["iterations"])
    # slot names use layer names, which differ between two models built in one process
    for u, v in zip(sorted(sa.items()), sorted(sb.items())):
        np.testing.assert_allclose(v[1], u[1], **TOL)


def _local(x, y, epochs, batch_size, shuffle=True):
    m = _model()
    m.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle, verbose=0)
    return m


@pytest.mark.parametrize(
    "workers,reduce,shuffle",
    [(1, "auto", True), (2, "tree", True), (3, "ring", True), (3, "tree", False)],
)
def test_same_weights_as_one_process(ray_session, workers, reduce, shuffle):
    x, y = _data()
    local = _local(x, y, epochs=2, batch_size=10, shuffle=shuffle)
    dist = _model()
    h = dist.fit(
        x,
        y,
        epochs=2,
        batch_size=10,
        shuffle=shuffle,
        verbose=0,
        distribute=RayStrategy(num_workers=workers, reduce=reduce),
    )
    _assert_same(local, dist)
    assert dist._epoch == 2
    np.testing.assert_allclose(h.history["loss"], local.history.history["loss"], rtol=1e-5)


def test_collective_reduce(ray_session):
    """ray.util.collective's gloo allreduce (torch.distributed) between the actors."""
    x, y = _data()
    local = _local(x, y, epochs=1, batch_size=10)
    dist = _model()
    dist.fit(
        x, y, epochs=1, batch_size=10, verbose=0, distribute=RayStrategy(3, reduce="collective")
    )
    _assert_same(local, dist)


class _KillWorker(Callback):
    """Kills worker ``rank`` by PID after batch ``batch`` of epoch ``epoch`` (once)."""

    def __init__(self, strategy, epoch, batch, rank=1):
        super().__init__()
        self.s, self.at, self.rank, self.epoch, self.killed = strategy, (epoch, batch), rank, 0, []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at and not self.killed:
            pid = self.s.worker_pids()[self.rank]
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)


def test_killed_worker_resumes_from_checkpoint(ray_session, tmp_path, caplog):
    x, y = _data()
    local = _local(x, y, epochs=3, batch_size=10)
    s = RayStrategy(2, reduce="tree", checkpoint_dir=tmp_path, checkpoint_every=2)
    killer = _KillWorker(s, epoch=1, batch=2)
    dist = _model()
    with caplog.at_level(logging.WARNING, logger="lstmkit.distributed"):
        h = dist.fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[killer], distribute=s)
    assert killer.killed, "the callback never killed a worker"
    assert s.restarts == 1
    said = [r.getMessage() for r in caplog.records if r.name == "lstmkit.distributed"]
    assert any("restarting 2 workers from the checkpoint at epoch 1, batch 2" in m for m in said)
    _assert_same(local, dist)
    assert len(h.history["loss"]) == 3
    # the checkpoint on disk is a plain model file at the end of training
    saved = lstmkit.load_model(tmp_path / "checkpoint.lstmkit")
    for u, v in zip(saved.get_weights(), dist.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert saved.metadata["lstmkit.distributed"]["epoch"] == 3
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.lstmkit"]  # no temporary files left


def test_bad_arguments():
    with pytest.raises(ValueError, match="argument 'num_workers' must be a positive int"):
        RayStrategy(num_workers=0)
    with pytest.raises(ValueError, match="argument 'reduce' must be one of"):
        RayStrategy(2, reduce="allgather")
    with pytest.raises(ValueError, match="argument 'address'"):
        RayStrategy(2, address="")
    x, y = _data()
    m = _model()
    with pytest.raises(ValueError, match=r"does not take \['mask'\]"):
        m.fit(x, y, mask=np.ones(x.shape[:2], bool), distribute=RayStrategy(2))
    bn = Sequential([LSTM(4, input_shape=(6, 3)), BatchNormalization(), Dense(2)])
    bn.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="moving statistics"):
        bn.fit(x, y, distribute=RayStrategy(2))


def test_missing_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what a missing package looks like
    x, y = _data()
    with pytest.raises(MissingExtraError, match=r"pip install 'lstmkit\[ray\]'"):
        _model().fit(x, y, distribute=RayStrategy(2))


def test_import_lstmkit_does_not_import_ray():
    code = "import lstmkit, lstmkit.distributed, sys; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
