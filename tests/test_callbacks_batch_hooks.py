"""``CallbackList`` skips the batch hooks a callback keeps as Callback's no-op, and calls every
other: one overridden by a subclass (also through a parent class), one assigned on the instance
(before or after the list was made). Witness: the calls each hook records during ``fit``."""

from __future__ import annotations

import numpy as np

import lstmkit
from lstmkit.callbacks import Callback, CallbackList
from lstmkit.layers import Dense
from lstmkit.models import Sequential


class Begin(Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_batch_begin(self, batch, logs=None):
        self.seen.append(("begin", batch))


class BeginChild(Begin):  # the hook comes from a parent class
    pass


class End(Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_batch_end(self, batch, logs=None):
        self.seen.append(("end", batch, sorted(logs)))


def test_every_batch_hook_that_is_not_the_no_op_runs_in_fit():
    plain, late = Callback(), Callback()
    seen = []
    plain.on_batch_end = lambda batch, logs=None: seen.append(("plain end", batch))
    cbs = [Begin(), BeginChild(), End(), plain, late]
    lstmkit.set_random_seed(0)
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")

    class Late(Callback):
        def on_train_begin(self, logs=None):  # replaced after the CallbackList was made
            late.on_batch_begin = lambda batch, logs=None: seen.append(("late begin", batch))

    model.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=2, epochs=1, verbose=0,
              callbacks=[Late(), *cbs])  # fmt: skip
    assert cbs[0].seen == cbs[1].seen == [("begin", 0), ("begin", 1)]
    assert cbs[2].seen == [("end", 0, ["loss"]), ("end", 1, ["loss"])]
    assert sorted(seen) == [("late begin", 0), ("late begin", 1), ("plain end", 0),
                            ("plain end", 1)]  # fmt: skip


def test_callback_list_nested_in_a_callback_list_forwards_its_hooks():
    inner = CallbackList([Begin(), End()])
    CallbackList([inner]).on_batch_begin(3, {})
    CallbackList([inner]).on_batch_end(4, {"loss": 1.0})
    assert inner.callbacks[0].seen == [("begin", 3)]
    assert inner.callbacks[1].seen == [("end", 4, ["loss"])]
