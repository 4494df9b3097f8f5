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


def test_learning_rate_callback_reaches_the_workers(ray_session):
    """A LearningRateScheduler changes the driver's optimizer; the workers must follow."""
    from lstmkit.callbacks import LearningRateScheduler

    x, y = _data()
    halve = LearningRateScheduler(lambda epoch, lr: 0.05 * 0.2**epoch)
    local = _model()
    local.fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[halve])
    dist = _model()
    dist.fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[halve],
             distribute=RayStrategy(2, reduce="tree"))  # fmt: skip
    _assert_same(local, dist)


@pytest.mark.slow  # each actor imports torch for gloo: ~15 s
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


# -- stateful streams: the language model's truncated BPTT ------------------------------------
LM = {"embed_dim": 8, "units": 16, "layers": 2, "seq_len": 10, "batch_size": 4, "epochs": 2}
LM.update(patience=5, learning_rate=0.02)


def _corpus():
    from pathlib import Path

    return (Path(__file__).resolve().parents[1] / "README.md").read_text()[:1200]


def test_language_model_streams_on_ray(ray_session):
    """2 workers carry 2 of the 4 streams each across 27 chunks, reset at each epoch."""
    from lstmkit.apps.text import train_language_model

    local = train_language_model(_corpus(), **LM)
    dist = train_language_model(_corpus(), distribute=RayStrategy(2, reduce="tree"), **LM)
    for u, v in zip(local.model.get_weights(), dist.model.get_weights()):
        np.testing.assert_allclose(v, u, **TOL)
    for a, b in zip(local.history, dist.history):
        assert a["steps"] == b["steps"]
        np.testing.assert_allclose([b["loss"], b["val_loss"]], [a["loss"], a["val_loss"]], 1e-6)
    with pytest.raises(ValueError, match=r"batch_size \(parallel streams, 3\) to be a multiple"):
        train_language_model(_corpus(), distribute=RayStrategy(2), **{**LM, "batch_size": 3})


# -- the forecaster: data-parallel training and distributed prediction of a panel -------------
def _seasonal_panel(n_series=12, n=72, seed=0):
    from lstmkit.apps.panel import Panel

    rng = np.random.default_rng(seed)
    t = np.arange(n)
    series = [
        np.exp(rng.normal(3, 1)) * (1 + 0.02 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12))
        * np.exp(rng.normal(0, 0.02, n))
        for _ in range(n_series)
    ]  # fmt: skip
    start = np.datetime64("2000-01", "M")
    times = (start + np.arange(n)).astype("datetime64[D]")
    ids = np.array([f"s{k:02d}" for k in range(n_series)])
    return Panel.from_arrays(series, ids=ids, times=[times] * n_series, freq="MS")


FAST = {"units": 8, "epochs": 3, "patience": 10, "ensemble": 1, "batch_size": 32}
FAST["interval_levels"] = (80,)


@pytest.fixture(scope="module")
def forecaster():
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import fit_global

    return fit_global(_seasonal_panel(), ForecastConfig(**FAST))


def test_forecaster_trained_on_ray_predicts_as_the_local_one(ray_session, forecaster):
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import fit_global

    panel = _seasonal_panel()
    dist = fit_global(panel, ForecastConfig(**FAST), distribute=RayStrategy(2))
    (p1, i1), (p2, i2) = forecaster.predict(panel, levels=(80,)), dist.predict(panel, levels=(80,))
    np.testing.assert_allclose(p2, p1, rtol=1e-4)
    np.testing.assert_allclose(i2[80][0], i1[80][0], rtol=1e-4)
    assert dist.members[0].best_epoch == forecaster.members[0].best_epoch


def _local_rows(model, panel, levels=(80,)):
    from lstmkit.apps.forecast_run import forecast_table

    point, intervals = model.predict(panel, levels=levels)
    return forecast_table(panel, point, intervals, levels, time_header="ds", single=False)


def _read_rows(path):
    import csv

    with open(path, newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def _assert_rows(got, want):
    (gh, gr), (wh, wr) = got, want
    assert gh == wh and len(gr) == len(wr)
    assert [r[:2] for r in gr] == [[str(c) for c in r[:2]] for r in wr]  # ids and dates
    g = np.array([[float(c) for c in r[2:]] for r in gr])
    np.testing.assert_allclose(g, np.array([r[2:] for r in wr], float), rtol=1e-5)


def test_predict_panel_streams_what_local_prediction_gives(ray_session, forecaster, tmp_path):
    from lstmkit.distributed import predict_panel

    panel = _seasonal_panel()
    out = tmp_path / "forecast.csv"
    n = predict_panel(
        forecaster, panel, out, levels=(80,), strategy=RayStrategy(2), series_per_task=5
    )
    want = _local_rows(forecaster, panel)
    assert n == len(want[1]) == 12 * forecaster.horizon
    _assert_rows(_read_rows(out), want)
    assert sorted(os.listdir(tmp_path)) == ["forecast.csv"]


def _write_shards(panel, d, groups):
    from lstmkit.data import write_csv_atomic

    d.mkdir()
    labels = [np.datetime_as_string(panel.times[panel.span(k)], "D") for k in range(panel.n_series)]
    for j, ks in enumerate(groups):
        rows = [[panel.ids[k], t, v] for k in ks for t, v in zip(labels[k], panel.series(k))]
        write_csv_atomic(d / f"shard-{j}.csv", ["unique_id", "ds", "y"], rows)


def test_predict_panel_reads_and_writes_shard_directories(ray_session, forecaster, tmp_path):
    from lstmkit.distributed import predict_panel

    panel = _seasonal_panel()
    _write_shards(panel, tmp_path / "in", [range(7), range(7, 12)])
    read = (forecaster.config, "ds", "none")
    (tmp_path / "out").mkdir()
    s = RayStrategy(2)
    predict_panel(forecaster, tmp_path / "in", tmp_path / "out", (80,), s, read=read)
    assert sorted(os.listdir(tmp_path / "out")) == ["shard-0.csv", "shard-1.csv"]
    h0, r0 = _read_rows(tmp_path / "out" / "shard-0.csv")
    _, r1 = _read_rows(tmp_path / "out" / "shard-1.csv")
    _assert_rows((h0, r0 + r1), _local_rows(forecaster, panel))
    # a series split over two shards is refused, and no output file is left behind
    _write_shards(panel, tmp_path / "split", [range(7), range(6, 12)])
    with pytest.raises(ValueError, match=r"series \['s06'\] appear in more than one shard"):
        predict_panel(forecaster, tmp_path / "split", tmp_path / "one.csv", (80,), s, read=read)
    assert not (tmp_path / "one.csv").exists()


# -- the CLI ----------------------------------------------------------------------------------
def _panel_csv(path):
    from lstmkit.data import write_csv_atomic

    panel = _seasonal_panel(n_series=8, n=60)
    rows = [
        [panel.ids[k], t, v]
        for k in range(panel.n_series)
        for t, v in zip(np.datetime_as_string(panel.times[panel.span(k)], "D"), panel.series(k))
    ]
    write_csv_atomic(path, ["unique_id", "ds", "y"], rows)
    return path


def _cli(*argv):
    from lstmkit.cli import main

    return main([str(a) for a in argv])


@pytest.mark.slow  # two trainings and four predictions: ~25 s
def test_cli_forecast_train_and_predict_on_ray(ray_session, tmp_path, capsys):
    data = _panel_csv(tmp_path / "panel.csv")
    common = ["--epochs", 2, "--units", 8, "--ensemble", 1, "--level", 80]
    assert _cli("forecast", "train", data, "--out", tmp_path / "local.lstmkit", *common) == 0
    ray_train = ["--engine", "ray", "--workers", 2]
    assert (
        _cli("forecast", "train", data, "--out", tmp_path / "ray.lstmkit", *common, *ray_train) == 0
    )
    for name in ("local", "ray"):  # the Ray-trained model, predicted locally and on Ray
        model = tmp_path / f"{name}.lstmkit"
        assert _cli("forecast", "predict", model, data, "--out", tmp_path / f"{name}.csv",
                    "--level", 80) == 0  # fmt: skip
        out = tmp_path / f"{name}-ray.csv"
        assert _cli("forecast", "predict", model, data, "--out", out, "--level", 80,
                    "--engine", "ray", "--workers", 2) == 0  # fmt: skip
    want = _read_rows(tmp_path / "local.csv")
    want = (want[0], [[r[0], r[1], *map(float, r[2:])] for r in want[1]])
    for name in ("ray.csv", "local-ray.csv", "ray-ray.csv"):
        _assert_rows(_read_rows(tmp_path / name), want)


def test_cli_forecast_predict_on_ray(ray_session, forecaster, tmp_path):
    data = _panel_csv(tmp_path / "panel.csv")
    forecaster.save(tmp_path / "m.lstmkit")
    out = tmp_path / "f.csv"
    rc = _cli("forecast", "predict", tmp_path / "m.lstmkit", data, "--out", out, "--level", 80,
              "--engine", "ray", "--workers", 2)  # fmt: skip
    assert rc == 0
    from lstmkit.apps.forecast_run import read_data

    panel = read_data(data, forecaster.config, time_column="ds")
    _assert_rows(_read_rows(out), _local_rows(forecaster, panel))


def test_cli_engine_ray_without_the_extra(tmp_path, monkeypatch, capsys):
    data = _panel_csv(tmp_path / "panel.csv")
    monkeypatch.setitem(sys.modules, "ray", None)
    rc = _cli("forecast", "train", data, "--out", tmp_path / "m.lstmkit", "--engine", "ray")
    assert rc == 2
    assert "pip install 'lstmkit[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "m.lstmkit").exists()
    rc = _cli("forecast", "train", data, "--out", tmp_path / "m.lstmkit", "--workers", "2")
    assert rc == 2
    assert "argument '--workers' applies to --engine ray only" in capsys.readouterr().err


# -- the translator: train_translator(..., distribute=), translate train --engine ray --------
def _translation_task(n=60, n_valid=12):
    """Character ids of the synthetic reversal task -> (vocabulary size, train, valid)."""
    from lstmkit.apps.translate_data import Tokenizer
    from lstmkit.apps.translate_synthetic import synthetic_pairs

    src, tgt = synthetic_pairs("reverse", n, seed=0)
    tok = Tokenizer("char").fit(src)
    ids = [[list(map(int, a)) for a in tok.encode(side, add_bos_eos=False)] for side in (src, tgt)]
    cut = n - n_valid
    return tok.vocab_size, (ids[0][:cut], ids[1][:cut]), (ids[0][cut:], ids[1][cut:])


def _train_translator(distribute=None, progress=None):
    """48 pairs of 2-12 letters (+ EOS), batches of 8: 6 Adam steps per epoch, 2 epochs; no
    dropout, so the workers draw nothing the local run does not."""
    from lstmkit.apps.translate_model import Translator, TranslatorConfig
    from lstmkit.apps.translate_train import train_translator

    vocab, train, valid = _translation_task()
    cfg = TranslatorConfig(embedding_dim=8, encoder_units=8, decoder_units=16, dropout=0.0,
                           learning_rate=0.02, batch_size=8, epochs=2, patience=5,
                           pool_batches=2, seed=0)  # fmt: skip
    model = Translator(vocab, vocab, cfg)
    r = train_translator(model, train, valid, progress=progress, distribute=distribute)
    return model, r


# float32 sums in another order, which Adam's m / sqrt(v) amplifies where a gradient component
# nearly cancels: seen 5e-7 to 3.2e-6 after 6-12 steps at lr 0.02; a plain mean of the workers'
# gradients instead of the token-weighted one: 0.08-0.15 off
TOL_TRANSLATOR = {"rtol": 1e-4, "atol": 2e-5}


@pytest.fixture(scope="module")
def translator_local():
    return _train_translator()


def _assert_same_translator(local, dist):
    (lm, lr), (dm, dr) = local, dist
    assert lr["best_epoch"] == 2  # so the weights compared are those after every step
    assert dr["best_epoch"] == lr["best_epoch"]
    for k, p in lm.params.items():
        np.testing.assert_allclose(dm.params[k], p, **TOL_TRANSLATOR, err_msg=k)
    for a, b in zip(lr["history"], dr["history"], strict=True):
        assert a["target_tokens"] == b["target_tokens"] and a["batches"] == b["batches"]
        np.testing.assert_allclose([b["loss"], b["val_loss"]], [a["loss"], a["val_loss"]], 1e-5)


@pytest.mark.parametrize("workers,reduce", [(2, "tree"), (3, "ring")])
def test_translator_same_weights_as_one_process(ray_session, translator_local, workers, reduce):
    """Parts of a batch hold different numbers of target tokens (2-13 per pair, and 3/3/2
    pairs on 3 workers): only the token-weighted average gives the local gradient."""
    dist = _train_translator(RayStrategy(workers, reduce=reduce))
    _assert_same_translator(translator_local, dist)


def test_translator_killed_worker_replays_the_epoch(
    ray_session, translator_local, monkeypatch, caplog
):
    """Worker 1 killed by PID after batch 4 of epoch 2: new workers from the epoch's start
    replay its 4 batches and the run ends with the uninterrupted run's weights."""
    from lstmkit.apps import translate_train

    monkeypatch.setattr(translate_train, "LOG_EVERY", 2)  # a progress line every 2 batches
    s, killed = RayStrategy(2, reduce="tree"), []

    def progress(line):
        if line.startswith("epoch 2 batch 4/") and not killed:
            killed.append(s.worker_pids()[1])
            os.kill(killed[0], signal.SIGKILL)

    with caplog.at_level(logging.WARNING, logger="lstmkit.distributed"):
        dist = _train_translator(s, progress)
    assert killed and s.restarts == 1
    said = [r.getMessage() for r in caplog.records if r.name == "lstmkit.distributed"]
    assert any("2 workers from the start of epoch 2 and replaying 4 batches" in m for m in said)
    _assert_same_translator(translator_local, dist)


def test_translator_refuses_checkpoint_dir(tmp_path):
    with pytest.raises(ValueError, match="argument 'distribute' takes no checkpoint_dir"):
        _train_translator(RayStrategy(2, checkpoint_dir=tmp_path))


def _pairs_csv(path, n=60):
    import csv

    from lstmkit.apps.translate_synthetic import synthetic_pairs

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source", "target"])
        w.writerows(zip(*synthetic_pairs("reverse", n, seed=0)))
    return path


TRANSLATE_TINY = ["--embed-dim", 8, "--units", 8, "--decoder-units", 16, "--dropout", 0]
TRANSLATE_TINY += ["--lr", 0.02, "--batch-size", 8, "--epochs", 2, "--bleu-subset", 4]
TRANSLATE_TINY += ["--source-level", "char", "--target-level", "char", "--valid", 10]


@pytest.mark.slow  # two trainings through the CLI with BLEU each epoch: ~20 s
def test_cli_translate_train_on_ray(ray_session, tmp_path):
    from lstmkit.apps.translate import load

    data = _pairs_csv(tmp_path / "pairs.csv")
    for name, engine in (("local", []), ("ray", ["--engine", "ray", "--workers", 2])):
        out = tmp_path / f"{name}.lstmkit"
        assert _cli("translate", "train", data, "--out", out, *TRANSLATE_TINY, *engine) == 0
    local, dist = load(tmp_path / "local.lstmkit"), load(tmp_path / "ray.lstmkit")
    assert dist.metadata["source_tokenizer"] == local.metadata["source_tokenizer"]
    for k, p in local.params.items():
        np.testing.assert_allclose(dist.params[k], p, **TOL_TRANSLATOR, err_msg=k)


def test_cli_translate_engine_ray_without_the_extra(tmp_path, monkeypatch, capsys):
    data = _pairs_csv(tmp_path / "pairs.csv")
    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "m.lstmkit"
    assert _cli("translate", "train", data, "--out", out, "--engine", "ray") == 2
    assert "pip install 'lstmkit[ray]'" in capsys.readouterr().err
    assert not out.exists()
    assert _cli("translate", "train", data, "--out", out, "--workers", "2") == 2
    assert "argument '--workers' applies to --engine ray only" in capsys.readouterr().err
