"""``ProgressBar`` and ``fit(verbose=...)``: Keras 3's verbose semantics, without tqdm when needed.

- not a terminal (a CI log, a file, pytest's capture): one plain line per epoch, no carriage
  return, whatever tqdm's presence;
- a terminal with tqdm: a tqdm bar; a terminal without tqdm (``sys.modules["tqdm"] = None``):
  plain lines again, no ImportError;
- ``verbose=2`` (ProgressBar's or fit's): lines even on a terminal; ``verbose=0``: nothing;
- the numbers read like Keras' own progress bar (``keras.utils.Progbar`` is the witness).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys

import numpy as np
import pytest

from lstmkit import LSTM, Dense, Sequential
from lstmkit.callbacks import ProgressBar

LINE = re.compile(r"^Epoch (\d+)/3 - 2/2 - \d+\.\d\ds - loss: (\S+) - val_loss: (\S+)$")


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as sys.stderr does in an interactive shell."""

    def isatty(self):
        return True


def _fit(monkeypatch, stream, **kw):
    monkeypatch.setattr(sys, "stderr", stream)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5, 2)).astype(np.float32)
    y = x[:, -1, :1]
    model = Sequential([LSTM(4, input_shape=(5, 2)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model.fit(x, y, epochs=3, batch_size=16, validation_split=0.2, **kw)


def _plain_lines(text, history):
    lines = text.splitlines()
    assert "\r" not in text and len(lines) == 3, text
    for epoch, line in enumerate(lines):
        m = LINE.match(line)
        assert m, line
        assert int(m[1]) == epoch + 1
        assert float(m[2]) == pytest.approx(history.history["loss"][epoch], rel=1e-3)
        assert float(m[3]) == pytest.approx(history.history["val_loss"][epoch], rel=1e-3)


def test_not_a_terminal_gives_one_line_per_epoch(monkeypatch):
    stream = io.StringIO()
    history = _fit(monkeypatch, stream)  # verbose="auto", fit's default
    _plain_lines(stream.getvalue(), history)


def test_terminal_with_tqdm_gives_a_bar(monkeypatch):
    stream = Terminal()
    _fit(monkeypatch, stream)
    text = stream.getvalue()
    assert "\r" in text and "Epoch 3/3" in text and "2/2" in text, text
    assert "batch/s" in text or "s/batch" in text  # tqdm's rate, unit="batch"
    assert not any(LINE.match(ln) for ln in text.splitlines())


def test_terminal_without_tqdm_falls_back_to_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    stream = Terminal()
    history = _fit(monkeypatch, stream)
    _plain_lines(stream.getvalue(), history)


@pytest.mark.parametrize("where", ["fit", "callback"])
def test_verbose_2_gives_lines_on_a_terminal(monkeypatch, where):
    stream = Terminal()
    if where == "fit":
        history = _fit(monkeypatch, stream, verbose=2)
    else:
        history = _fit(monkeypatch, stream, verbose=0, callbacks=[ProgressBar(verbose=2)])
    _plain_lines(stream.getvalue(), history)


def test_a_jupyter_kernel_counts_as_interactive(monkeypatch):
    # Keras shows its dynamic bar under ipykernel, whose stderr is no terminal
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    stream = io.StringIO()
    _fit(monkeypatch, stream)
    assert "\r" in stream.getvalue()


def test_verbose_0_is_silent_and_bad_values_are_refused(monkeypatch):
    stream = Terminal()
    _fit(monkeypatch, stream, verbose=0)
    assert stream.getvalue() == ""
    for bad in (3, "yes", 1.0, -1):
        with pytest.raises(ValueError, match="ProgressBar: argument 'verbose' must be 'auto'"):
            ProgressBar(verbose=bad)


def test_numbers_read_like_keras_progbar(monkeypatch):
    import keras  # the witness (KERAS_BACKEND=torch in the test environment)

    values = [("loss", 0.00012345), ("val_loss", 0.5), ("mae", 12.345678), ("acc", -0.0002)]
    witness = io.StringIO()
    with contextlib.redirect_stdout(witness):
        bar = keras.utils.Progbar(target=2, verbose=2)
        bar.update(2, values=values, finalize=True)
    expected = " - ".join(p for p in witness.getvalue().strip().split(" - ") if ":" in p)

    pb = ProgressBar(verbose=2)
    pb.set_params({"epochs": 1, "steps": 2, "verbose": 2})
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    pb.on_epoch_begin(0)
    pb.on_batch_end(0)
    pb.on_batch_end(1)
    pb.on_epoch_end(0, dict(values))
    ours = " - ".join(p for p in stream.getvalue().strip().split(" - ") if ":" in p)
    assert (
        ours == expected == "loss: 1.2345e-04 - val_loss: 0.5000 - mae: 12.3457 - acc: -2.0000e-04"
    )
