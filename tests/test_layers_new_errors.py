"""Bad arguments and inputs to the layers added for the Keras tutorials: a ValueError naming the
layer, the argument, what was given and what was expected, raised before any work."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit.layers as L

x3 = np.zeros((2, 5, 3))
x2 = np.zeros((2, 3))


def build(layer, shape):
    layer.build(shape)
    return layer


CASES = {
    "dense activation": (
        lambda: L.Dense(2, activation="softmax2"),
        r"Dense: argument 'activation' must be one of .*'swish'.*got 'softmax2'",
    ),
    "activation name": (lambda: L.Activation("Relu"), r"Activation: argument 'activation'.*'Relu'"),
    "repeat n": (lambda: L.RepeatVector(0), r"RepeatVector: argument 'n' must be a positive int; got 0"),
    "repeat rank": (
        lambda: L.RepeatVector(2)(x3),
        r"RepeatVector: input must have shape \(batch, features\); got \(batch, 5, 3\)",
    ),
    "reshape target": (
        lambda: L.Reshape((4, -1))(x3),
        r"Reshape: argument 'target_shape' \(4, -1\) does not fit an input of shape \(batch, 5, 3\)",
    ),
    "reshape two -1": (lambda: L.Reshape((-1, -1)), r"at most one -1; got \(-1, -1\)"),
    "permute dims": (lambda: L.Permute((0, 1)), r"Permute: argument 'dims' must be a permutation of 1..rank"),
    "permute rank": (lambda: L.Permute((2, 1))(np.zeros((2, 3, 4, 5))), r"dims \(2, 1\) need inputs of rank 3"),
    "reshape wrong input": (
        lambda: build(L.Flatten(), (5, 3)).forward(np.zeros((2, 4, 3))),
        r"Flatten: argument 'x' must have shape \(batch, 5, 3\); got \(2, 4, 3\)",
    ),
    "merge not a list": (lambda: L.Add().forward(x3), r"Add: argument 'x' must be a list of arrays"),
    "subtract three": (lambda: L.Subtract()([x3, x3, x3]), r"Subtract: argument 'x' must be a list of 2; got 3"),
    "merge shapes": (
        lambda: L.Add()([x3, np.zeros((2, 5, 4))]),
        r"Add: inputs must have compatible shapes; got \(batch, 5, 3\), \(batch, 5, 4\)",
    ),
    "merge batch": (lambda: L.Add()([x3, np.zeros((3, 5, 3))]), r"Add: the inputs must have the same batch size"),
    "merge masks": (lambda: L.Add().forward([x3, x3], mask=[None]), r"Add: argument 'mask' must be None or a list of 2"),
    "concatenate shapes": (
        lambda: L.Concatenate(axis=1)([x3, np.zeros((2, 5, 4))]),
        r"Concatenate: inputs must have the same shape except along the concatenation axis 1",
    ),
    "concatenate batch axis": (lambda: L.Concatenate(axis=0), r"Concatenate: argument 'axis' must be a non-batch axis"),
    "dot sizes": (
        lambda: L.Dot(axes=2)([x3, np.zeros((2, 5, 4))]),
        r"Dot: the summed axes differ in size: 3 \(axis 2 of \(batch, 5, 3\)\) != 4",
    ),
    "dot batch axis": (lambda: L.Dot(axes=0)([x3, x3]), r"Dot: argument 'axes' 0 must name a non-batch axis"),
    "dot axes type": (lambda: L.Dot(axes=(1, 2, 3)), r"Dot: argument 'axes' must be an int or a pair"),
    "layer norm axis": (lambda: L.LayerNormalization(axis=0)(x3), r"LayerNormalization: argument 'axis' 0 must name"),
    "layer norm epsilon": (lambda: L.LayerNormalization(epsilon=0), r"argument 'epsilon' must be a positive number; got 0"),
    "batch norm momentum": (lambda: L.BatchNormalization(momentum=1.5), r"argument 'momentum' must be in \[0, 1\]; got 1.5"),
    "batch norm mask": (
        lambda: L.BatchNormalization().forward(x3, training=True, mask=np.ones((2, 4), bool)),
        r"BatchNormalization: argument 'mask' must have shape \(2, 5\)",
    ),
    "batch norm features": (
        lambda: build(L.BatchNormalization(), (5, 3)).forward(np.zeros((2, 5, 4))),
        r"BatchNormalization: argument 'x' must have shape \(batch, 5, 3\); got \(2, 5, 4\)",
    ),
    "conv padding": (lambda: L.Conv1D(2, 3, padding="full"), r"Conv1D: argument 'padding' must be one of .*got 'full'"),
    "conv stride and dilation": (lambda: L.Conv1D(2, 3, strides=2, dilation_rate=2), r"strides > 1 cannot be combined"),
    "conv groups": (lambda: L.Conv1D(2, 3, groups=2), r"Conv1D: argument 'groups' must be 1"),
    "conv kernel": (lambda: L.Conv1D(2, 0), r"Conv1D: argument 'kernel_size' must be a positive int; got 0"),
    "conv rank": (lambda: L.Conv1D(2, 3)(x2), r"Conv1D: input must have shape \(batch, steps, channels\); got \(batch, 3\)"),
    "conv too short": (lambda: L.Conv1D(2, 7)(x3), r"Conv1D: 5 steps are fewer than the kernel's span 7"),
    "conv channels": (
        lambda: build(L.Conv1D(2, 3), (5, 3)).forward(np.zeros((2, 5, 4))),
        r"Conv1D: argument 'x' must have shape \(batch, 5, 3\); got \(2, 5, 4\)",
    ),
    "pool too short": (lambda: L.MaxPooling1D(6)(x3), r"MaxPooling1D: 5 steps are fewer than pool_size=6"),
    "pool padding": (lambda: L.MaxPooling1D(padding="causal"), r"MaxPooling1D: argument 'padding' must be one of"),
    "gap mask": (
        lambda: L.GlobalAveragePooling1D()(x3, mask=np.ones((2, 4), bool)),
        r"GlobalAveragePooling1D: argument 'mask' must have shape \(batch, timesteps\) = \(2, 5\)",
    ),
    "time distributed rank": (lambda: L.TimeDistributed(L.Dense(2))(x2), r"TimeDistributed: .*\(batch, timesteps, \.\.\.\)"),
    "time distributed layer": (lambda: L.TimeDistributed(L.Add()), r"TimeDistributed: argument 'layer' must be an lstmkit layer taking one input"),
    "time distributed mask": (
        lambda: L.TimeDistributed(L.Dense(2))(x3, mask=np.ones((2, 4), bool)),
        r"TimeDistributed: argument 'mask' must have shape \(batch, timesteps\) = \(2, 5\)",
    ),
    "lambda output": (lambda: L.Lambda(lambda a: a.sum())(x3), r"the function must return an array of shape \(batch, \.\.\.\)"),
    "lambda function": (lambda: L.Lambda(None), r"argument 'function' must be a callable"),
    "lambda unregistered": (lambda: L.Lambda("no.such.fn"), r"names function 'no.such.fn', which is not registered"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_messages(case):
    fn, message = CASES[case]
    with pytest.raises(ValueError, match=message):
        fn()
