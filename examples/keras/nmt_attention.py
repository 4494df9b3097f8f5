"""Sequence-to-sequence translation with Luong (dot) attention, written with the functional API,
run on lstmkit.

The pattern is the widely copied one of the keras-io / TensorFlow "NMT with attention" lineage
(TensorFlow's "Neural machine translation with attention" tutorial, keras-io's "Character-level
recurrent sequence-to-sequence model" by fchollet, and the many "seq2seq with Luong attention"
programs built from them): an LSTM encoder whose outputs and states feed an LSTM decoder,
``layers.Attention()`` over the encoder outputs, ``Concatenate`` + ``Dense(tanh)`` (Luong's
attentional hidden state), a softmax over the target vocabulary; then an encoder model and a
decoder-step model built from the trained layers, and a greedy loop.

What changed for lstmkit: the import lines only (``import lstmkit as keras``, ``from lstmkit
import layers``). The data are Tatoeba English -> Chinese pairs from ``../shared/data`` (credit
Tatoeba, CC BY 2.0 FR), tokenised in a few lines of Python (English words, Chinese characters);
``_data.scaled`` / ``_data.epochs`` let a test run it small. The held-out BLEU is computed with
sacrebleu (``tokenize="zh"``) beside the copy baseline (each English source given as its own
translation).
"""

import csv
import os
import re

import numpy as np
import sacrebleu

import lstmkit as keras
from lstmkit import layers
from _data import SHARED, epochs as _epochs, scaled

batch_size = 64
epochs = _epochs(30)
units = int(os.environ.get("LSTMKIT_EXAMPLE_UNITS", 256))  # LSTM units
emb = int(os.environ.get("LSTMKIT_EXAMPLE_EMB", 128))  # embedding size
num_samples = scaled(20000)  # training pairs
num_test = scaled(500)  # held-out pairs for BLEU
max_src, max_tgt = 12, 16  # keep pairs up to 12 English words and 16 Chinese characters
data_path = SHARED / "translation" / "tatoeba_en_zh" / "train.csv"


# -- Data: English words -> Chinese characters --------------------------------------------------
def en_tokens(s):
    return re.findall(r"[\w']+|[^\w\s]", s.lower())


def zh_tokens(s):
    return [ch for ch in s if not ch.isspace()]


with open(data_path, encoding="utf-8", newline="") as f:
    pairs = [(en_tokens(r["source"]), zh_tokens(r["target"]), r) for r in csv.DictReader(f)]
pairs = [p for p in pairs if 0 < len(p[0]) <= max_src and 0 < len(p[1]) <= max_tgt]
np.random.RandomState(1234).shuffle(pairs)
train_pairs, test_pairs = pairs[:num_samples], pairs[num_samples : num_samples + num_test]

# index 0 is padding (mask_zero=True), 1 an unknown token; the target adds start and end
src_words = sorted({w for s, _, _ in train_pairs for w in s})
tgt_chars = sorted({c for _, t, _ in train_pairs for c in t})
src_index = {w: i + 2 for i, w in enumerate(src_words)}
tgt_index = {c: i + 4 for i, c in enumerate(tgt_chars)}
START, END = 2, 3
src_vocab, tgt_vocab = len(src_index) + 2, len(tgt_index) + 4
reverse_tgt_index = {i: c for c, i in tgt_index.items()}
print("Training pairs:", len(train_pairs), " held out:", len(test_pairs))
print("Source vocabulary:", src_vocab, " target vocabulary:", tgt_vocab)


def encode_source(words):
    return [src_index.get(w, 1) for w in words]


def pad(seqs):
    out = np.zeros((len(seqs), max(len(s) for s in seqs)), dtype="int32")
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


src = pad([encode_source(s) for s, _, _ in train_pairs])
tgt = [[START] + [tgt_index[c] for c in t] + [END] for _, t, _ in train_pairs]
tgt_in = pad([t[:-1] for t in tgt])  # [start] y1 ... yn
tgt_out = pad([t[1:] for t in tgt])  # y1 ... yn [end]

# -- The training model ---------------------------------------------------------------------------
encoder_inputs = keras.Input(shape=(None,))
x = layers.Embedding(src_vocab, emb, mask_zero=True)(encoder_inputs)
encoder_outputs, state_h, state_c = layers.LSTM(units, return_sequences=True, return_state=True)(
    x
)

decoder_inputs = keras.Input(shape=(None,))
decoder_embedding = layers.Embedding(tgt_vocab, emb, mask_zero=True)
decoder_lstm = layers.LSTM(units, return_sequences=True, return_state=True)
y = decoder_embedding(decoder_inputs)
decoder_outputs, _, _ = decoder_lstm(y, initial_state=[state_h, state_c])

attention = layers.Attention()  # Luong dot score; masks from both inputs
context = attention([decoder_outputs, encoder_outputs])
concat = layers.Concatenate()
attention_dense = layers.Dense(units, activation="tanh")
output_dense = layers.Dense(tgt_vocab, activation="softmax")
outputs = output_dense(attention_dense(concat([context, decoder_outputs])))

model = keras.Model([encoder_inputs, decoder_inputs], outputs)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(
    [src, tgt_in], tgt_out, batch_size=batch_size, epochs=epochs, validation_split=0.1
)

# -- Inference models from the trained layers ----------------------------------------------------
encoder_model = keras.Model(encoder_inputs, [encoder_outputs, state_h, state_c])

step_inputs = keras.Input(shape=(None,))  # the previous token, (batch, 1)
step_h, step_c = keras.Input(shape=(units,)), keras.Input(shape=(units,))
step_encoder_outputs = keras.Input(shape=(None, units))
y = decoder_embedding(step_inputs)
step_outputs, h_out, c_out = decoder_lstm(y, initial_state=[step_h, step_c])
step_context = attention([step_outputs, step_encoder_outputs])
step_probs = output_dense(attention_dense(concat([step_context, step_outputs])))
decoder_model = keras.Model(
    [step_inputs, step_h, step_c, step_encoder_outputs], [step_probs, h_out, c_out]
)


def decode_sequence(words):
    """Greedy decoding of one sentence (batch of one, so no padding reaches the attention)."""
    enc_out, h, c = encoder_model.predict(np.array([encode_source(words)]), verbose=0)
    token, decoded = START, []
    for _ in range(max_tgt + 1):
        probs, h, c = decoder_model.predict([np.array([[token]]), h, c, enc_out], verbose=0)
        token = int(np.argmax(probs[0, -1]))
        if token == END:
            break
        decoded.append(reverse_tgt_index.get(token, ""))
    return "".join(decoded)


for words, _, row in test_pairs[: int(os.environ.get("LSTMKIT_EXAMPLE_DECODE", 5))]:
    print("-")
    print("Input sentence:", row["source"])
    print("Decoded sentence:", decode_sequence(words))
    print("Reference:", row["target"])

# -- BLEU on the held-out pairs, beside the copy baseline ---------------------------------------
hypotheses = [decode_sequence(words) for words, _, _ in test_pairs]
references = [row["target"] for _, _, row in test_pairs]
bleu = sacrebleu.corpus_bleu(hypotheses, [references], tokenize="zh").score
copy_bleu = sacrebleu.corpus_bleu(
    [row["source"] for _, _, row in test_pairs], [references], tokenize="zh"
).score
print(f"Held-out BLEU (greedy): {bleu:.2f}   copy baseline: {copy_bleu:.2f}")
