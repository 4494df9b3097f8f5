"""keras-io "Bidirectional LSTM on IMDB" (fchollet), run on lstmkit.

Changed from the published program: the import lines, and the data lines — instead of
``keras.datasets.imdb.load_data`` (a download) the Rotten Tomatoes snippets in ``../shared/data``
are turned into word ids the same way (most frequent words first, 1 = out of vocabulary... as
IMDB's index does), then padded with ``pad_sequences`` exactly as the tutorial does.
"""

import csv
import re
from collections import Counter

import numpy as np

import lstmkit as keras
from _data import SHARED, epochs as _epochs, scaled
from lstmkit import layers

max_features = 20000  # Only consider the top 20k words
maxlen = 200  # Only consider the first 200 words of each movie review

# Input for variable-length sequences of integers
inputs = keras.Input(shape=(None,), dtype="int32")
# Embed each integer in a 128-dimensional vector
x = layers.Embedding(max_features, 128)(inputs)
# Add 2 bidirectional LSTMs
x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
x = layers.Bidirectional(layers.LSTM(64))(x)
# Add a classifier
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs, outputs)
model.summary()


def load_data(num_words):
    """IMDB-style ids (0 padding, 1 start, 2 out of vocabulary, 3+ words by frequency)."""
    with open(SHARED / "sentiment" / "rt_snippets.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(113)
    rows = [rows[i] for i in rng.permutation(len(rows))][: scaled(len(rows))]
    tokens = [re.findall(r"[a-z0-9']+", r["text"].lower()) for r in rows]
    half = len(rows) // 2
    counts = Counter(w for t in tokens[:half] for w in t)
    index = {w: i + 3 for i, (w, _) in enumerate(counts.most_common(num_words - 3))}
    seqs = [[1] + [index.get(w, 2) for w in t] for t in tokens]
    labels = np.array([int(r["label"]) for r in rows])
    return (seqs[:half], labels[:half]), (seqs[half:], labels[half:])


(x_train, y_train), (x_val, y_val) = load_data(num_words=max_features)
print(len(x_train), "Training sequences")
print(len(x_val), "Validation sequences")
# Use pad_sequence to standardize sequence length:
# this will truncate sequences longer than 200 words and zero-pad sequences shorter than 200 words.
x_train = keras.preprocessing.sequence.pad_sequences(x_train, maxlen=maxlen)
x_val = keras.preprocessing.sequence.pad_sequences(x_val, maxlen=maxlen)

model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
history = model.fit(
    x_train, y_train, batch_size=32, epochs=_epochs(2), validation_data=(x_val, y_val)
)
