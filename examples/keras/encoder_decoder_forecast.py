"""The encoder-decoder LSTM of the multi-step forecasting tutorials (machinelearningmastery's
"How to Develop LSTM Models for Time Series Forecasting", multi-step encoder-decoder section),
run on lstmkit with only the imports changed: ``LSTM(activation="relu")``, ``RepeatVector``,
``TimeDistributed(Dense)``. Data: monthly anti-diabetic drug sales (``fpp2/a10``) from
``../shared/data`` instead of the tutorial's toy sequence, scaled to [0, 1].
"""

import csv

import numpy as np

from _data import SHARED, epochs as _epochs
from lstmkit.layers import LSTM, Dense, RepeatVector, TimeDistributed
from lstmkit.models import Sequential


# split a univariate sequence into samples
def split_sequence(sequence, n_steps_in, n_steps_out):
    X, y = list(), list()
    for i in range(len(sequence)):
        # find the end of this pattern
        end_ix = i + n_steps_in
        out_end_ix = end_ix + n_steps_out
        # check if we are beyond the sequence
        if out_end_ix > len(sequence):
            break
        # gather input and output parts of the pattern
        seq_x, seq_y = sequence[i:end_ix], sequence[end_ix:out_end_ix]
        X.append(seq_x)
        y.append(seq_y)
    return np.array(X), np.array(y)


with open(SHARED / "forecasting" / "fpp2" / "a10.csv", encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f))
raw_seq = np.array([float(r[-1]) for r in rows[1:]])
raw_seq = (raw_seq - raw_seq.min()) / (raw_seq.max() - raw_seq.min())
# choose a number of time steps
n_steps_in, n_steps_out = 24, 12
# split into samples
X, y = split_sequence(raw_seq[:-n_steps_out], n_steps_in, n_steps_out)
# reshape from [samples, timesteps] into [samples, timesteps, features]
n_features = 1
X = X.reshape((X.shape[0], X.shape[1], n_features))
y = y.reshape((y.shape[0], y.shape[1], n_features))
# define model
model = Sequential()
model.add(LSTM(100, activation="relu", input_shape=(n_steps_in, n_features)))
model.add(RepeatVector(n_steps_out))
model.add(LSTM(100, activation="relu", return_sequences=True))
model.add(TimeDistributed(Dense(1)))
model.compile(optimizer="adam", loss="mse")
# fit model
history = model.fit(X, y, epochs=_epochs(100), verbose=0)
# demonstrate prediction: the last year, from the 24 months before it
x_input = raw_seq[-n_steps_out - n_steps_in : -n_steps_out]
x_input = x_input.reshape((1, n_steps_in, n_features))
yhat = model.predict(x_input, verbose=0)
actual = raw_seq[-n_steps_out:]
print("forecast:", np.round(yhat[0, :, 0], 3))
print("actual:  ", np.round(actual, 3))
rmse = float(np.sqrt(np.mean((yhat[0, :, 0] - actual) ** 2)))
print("RMSE of the last year:", round(rmse, 4))
