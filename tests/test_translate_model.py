"""The translation model against an independent PyTorch implementation of the same recipe
(loss and every parameter gradient), its decoders, its trainer and its files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from lstmkit import Sequential, layers, load_model
from lstmkit.apps.translate_decode import beam_search, greedy_decode, translate_ids
from lstmkit.apps.translate_files import load_translator, save_translator
from lstmkit.apps.translate_model import Translator, TranslatorConfig
from lstmkit.apps.translate_train import padded, train_translator
from lstmkit.saving import ModelFileError, NonFiniteWeightsError
from translate_torch import TorchTranslator, copy_into, grads_like


def _batch(rng, B, S, T, Vs, Vt):
    """Post-padded ids of unequal lengths (one row at full length); tgt = BOS ... EOS PAD."""
    src = np.zeros((B, S), np.int64)
    tgt = np.zeros((B, T + 1), np.int64)
    for b in range(B):
        ls = S if b == 0 else rng.integers(1, S + 1)
        lt = T - 1 if b == 1 else rng.integers(1, T)  # real tokens before EOS
        src[b, :ls] = rng.integers(3, Vs, ls)
        tgt[b, 0], tgt[b, 1 : lt + 1], tgt[b, lt + 1] = 1, rng.integers(3, Vt, lt), 2
    return src, tgt


def _torch_loss_grads(model, src, tgt, dtype):
    tm = TorchTranslator(model.src_vocab, model.tgt_vocab, *_dims(model.config), smoothing=0.1)
    tm = tm.to(torch.float64 if dtype == np.float64 else torch.float32)
    copy_into(tm, model.params, np.random.default_rng(5))
    loss = tm(torch.from_numpy(src), torch.from_numpy(tgt))
    loss.backward()
    return float(loss.detach()), grads_like(tm)


def _dims(cfg):
    return cfg.embedding_dim, cfg.encoder_units, cfg.decoder_units


SMALL = {"embedding_dim": 6, "encoder_units": 5, "decoder_units": 7}


@pytest.mark.parametrize("dtype,rtol,atol", [("float64", 1e-9, 1e-11), ("float32", 2e-4, 2e-6)])
def test_loss_and_gradients_match_pytorch(dtype, rtol, atol):
    rng = np.random.default_rng(0)
    model = Translator(11, 13, TranslatorConfig(**SMALL, dtype=dtype, seed=1))
    src, tgt = _batch(rng, B=5, S=6, T=7, Vs=11, Vt=13)
    loss, n, grads = model.loss_and_grads(src, tgt)
    t_loss, t_grads = _torch_loss_grads(model, src, tgt, np.dtype(dtype))
    assert n == int((tgt[:, 1:] != 0).sum())
    np.testing.assert_allclose(loss, t_loss, rtol=rtol)
    assert sorted(grads) == sorted(model.params) == sorted(t_grads)
    for k in sorted(grads):
        assert grads[k].dtype == np.dtype(dtype), k
        np.testing.assert_allclose(grads[k], t_grads[k], rtol=rtol, atol=atol, err_msg=k)


def test_gradients_with_dropout_match_finite_differences():
    """The dropout path (embeddings and h~; PyTorch's masks cannot be reproduced): the same
    seeded rng gives the same masks, so central differences of the loss witness the gradients,
    on a batch whose rows end at different steps (each decoder step runs fewer rows)."""
    rng = np.random.default_rng(2)
    model = Translator(11, 13, TranslatorConfig(**SMALL, dtype="float64", dropout=0.3, seed=3))
    src, tgt = _batch(rng, B=5, S=6, T=7, Vs=11, Vt=13)
    _, _, grads = model.loss_and_grads(src, tgt, np.random.default_rng(9))
    eps = 1e-6
    for name in ("decoder.kernel", "combine.kernel", "tgt_embedding.embeddings", "init_c.kernel"):
        p = model.params[name]
        for idx in zip(*np.unravel_index(rng.choice(p.size, 6, replace=False), p.shape)):
            old = p[idx]
            p[idx] = old + eps
            up = model.loss_and_grads(src, tgt, np.random.default_rng(9))[0]
            p[idx] = old - eps
            down = model.loss_and_grads(src, tgt, np.random.default_rng(9))[0]
            p[idx] = old
            np.testing.assert_allclose(grads[name][idx], (up - down) / (2 * eps), rtol=1e-5,
                                       atol=1e-9, err_msg=f"{name}{idx}")  # fmt: skip


def test_initialisation_has_pytorch_default_spreads():
    """Every parameter's spread as PyTorch's default initialisation of the same modules (the
    witness: torch's own ``reset_parameters``; lstmkit's one LSTM bias against torch's
    ``bias_ih + bias_hh``), to 10 % on arrays of thousands of draws."""
    torch.manual_seed(0)
    model = Translator(300, 200, TranslatorConfig(embedding_dim=64, encoder_units=128))
    tm = TorchTranslator(300, 200, 64, 128, 512)
    for w in tm.parameters():  # grads_like reads .grad: the weights under lstmkit's names
        w.grad = w.detach().clone()
    theirs = grads_like(tm)
    for layer, m, tail in (("encoder_fwd", tm.enc, "_l0"), ("encoder_bwd", tm.enc, "_l0_reverse"),
                           ("decoder", tm.dec, "")):  # fmt: skip
        b = getattr(m, f"bias_ih{tail}") + getattr(m, f"bias_hh{tail}")
        theirs[f"{layer}.bias"] = b.detach().numpy()
    assert sorted(theirs) == sorted(model.params)
    for name, p in model.params.items():
        np.testing.assert_allclose(p.std(), theirs[name].std(), rtol=0.1, err_msg=name)


# -- a synthetic task with a known answer: reverse a string ---------------------------------
def _reverse_pairs(rng, n, lo=2, hi=6, vocab=14):
    src = [[int(v) for v in rng.integers(4, vocab, rng.integers(lo, hi + 1))] for _ in range(n)]
    return src, [s[::-1] for s in src]


TINY = {"embedding_dim": 16, "encoder_units": 16, "decoder_units": 32, "dropout": 0.0}


@pytest.fixture(scope="module")
def tiny():
    """A partly trained reverser (about half its outputs exact): beam and greedy differ."""
    rng = np.random.default_rng(0)
    train, valid = _reverse_pairs(rng, 1000), _reverse_pairs(rng, 100)
    cfg = TranslatorConfig(**TINY, batch_size=32, epochs=3, learning_rate=3e-3)
    model = Translator(14, 14, cfg)
    train_translator(model, train, valid, progress=None)
    return model, valid


def _exact(tokens, refs):
    return np.mean([list(a) == list(b) for a, b in zip(tokens, refs)])


def test_reverse_task_learns_to_near_exact_match():
    rng = np.random.default_rng(1)
    train, valid = _reverse_pairs(rng, 2000, hi=5), _reverse_pairs(rng, 100, hi=5)
    cfg = TranslatorConfig(
        **{**TINY, "decoder_units": 48}, batch_size=32, epochs=5, learning_rate=5e-3
    )
    model = Translator(14, 14, cfg)
    train_translator(model, train, valid, progress=None)
    assert _exact(greedy_decode(model, padded(valid[0]), max_len=8).tokens, valid[1]) >= 0.95


@pytest.mark.slow
def test_reverse_letters_learns_to_exact_match():
    rng = np.random.default_rng(2)
    train, valid = _reverse_pairs(rng, 6000, 3, 10, 30), _reverse_pairs(rng, 200, 3, 10, 30)
    cfg = TranslatorConfig(embedding_dim=32, encoder_units=64, decoder_units=128, epochs=10)
    model = Translator(30, 30, cfg)
    train_translator(model, train, valid, progress=None)
    out = beam_search(model, padded(valid[0]), beam=3, max_len=12).tokens
    assert _exact(out, valid[1]) >= 0.98


# -- decoding ---------------------------------------------------------------------------------
def test_greedy_equals_beam_of_one(tiny):
    model, valid = tiny
    src = padded(valid[0])
    greedy = greedy_decode(model, src, max_len=10)
    beam = beam_search(model, src, beam=1, alpha=0.0, max_len=10)
    assert beam.tokens == greedy.tokens


def _torch_scores(model, sources, hyps):
    """Mean log-probability per token of each ``hyp`` + EOS under the PyTorch model with
    ``model``'s weights."""
    tm = TorchTranslator(model.src_vocab, model.tgt_vocab, *_dims(model.config), smoothing=0.0)
    copy_into(tm, model.params, np.random.default_rng(5))
    src, tgt = padded(sources), padded(hyps, bos_eos=True)
    with torch.no_grad():
        return -tm(torch.from_numpy(src), torch.from_numpy(tgt), per_sentence=True).numpy()


def test_beam_never_scores_below_greedy(tiny):
    model, valid = tiny
    sources = valid[0][:40]
    greedy = greedy_decode(model, padded(sources), max_len=10)
    beam = beam_search(model, padded(sources), beam=4, alpha=1.0, max_len=10)
    assert sum(g != b for g, b in zip(greedy.tokens, beam.tokens)) >= 5  # not vacuous
    # sentences where both ended with EOS: torch scores them as they are
    ended = [
        i for i in range(len(sources)) if max(map(len, (greedy.tokens[i], beam.tokens[i]))) < 10
    ]
    assert len(ended) >= 30
    pick = [sources[i] for i in ended]
    pg = _torch_scores(model, pick, [greedy.tokens[i] for i in ended])
    pb = _torch_scores(model, pick, [beam.tokens[i] for i in ended])
    assert (pb >= pg - 1e-5).all(), np.flatnonzero(pb < pg - 1e-5)
    np.testing.assert_allclose(beam.scores[ended], pb, rtol=1e-4)
    np.testing.assert_allclose(greedy.scores[ended], pg, rtol=1e-4)


@pytest.mark.parametrize("beam", [1, 4])
def test_batched_decoding_equals_one_by_one(tiny, beam):
    model, valid = tiny
    sources = valid[0][:30]
    decode = greedy_decode if beam == 1 else beam_search
    kwargs = {"max_len": 10} if beam == 1 else {"max_len": 10, "beam": beam}
    batched = decode(model, padded(sources), return_attention=True, **kwargs)
    for i, s in enumerate(sources):
        one = decode(model, padded([s]), return_attention=True, **kwargs)
        assert one.tokens[0] == batched.tokens[i]
        np.testing.assert_allclose(one.attention[0], batched.attention[i], rtol=1e-4, atol=1e-6)
        att = batched.attention[i]
        assert att.shape == (min(len(batched.tokens[i]) + 1, 10), len(s))
        np.testing.assert_allclose(att.sum(1), 1, rtol=1e-5)  # the padding got no weight


# -- the trainer: time budget, best checkpoint, early stopping, divergence ----------------------
def _small_task(seed=3):
    rng = np.random.default_rng(seed)
    return _reverse_pairs(rng, 300), _reverse_pairs(rng, 40)


def test_max_minutes_stops_and_keeps_the_validated_weights(tmp_path):
    train, valid = _small_task()
    model = Translator(14, 14, TranslatorConfig(**TINY, batch_size=16, epochs=50))
    out = tmp_path / "m.lstmkit"
    result = train_translator(model, train, valid, out=out, max_minutes=1e-6, progress=None)
    assert result["stopped"] == "time" and len(result["history"]) == 1
    assert result["history"][0]["batches"] == 1  # stopped after the first batch
    saved = load_translator(out)
    # the file holds the weights that scored the recorded validation loss (torch recomputes it)
    np.testing.assert_allclose(_torch_nll(saved, valid), result["best"], rtol=1e-4)
    for k, p in model.params.items():
        np.testing.assert_array_equal(p, saved.params[k], err_msg=k)


def _torch_nll(model, pairs):
    tm = TorchTranslator(model.src_vocab, model.tgt_vocab, *_dims(model.config), smoothing=0.0)
    copy_into(tm, model.params, np.random.default_rng(5))
    with torch.no_grad():
        src, tgt = padded(pairs[0]), padded(pairs[1], bos_eos=True)
        return float(tm(torch.from_numpy(src), torch.from_numpy(tgt)))


def test_early_stopping_restores_the_best_epoch(tmp_path):
    train, valid = _small_task()
    model = Translator(14, 14, TranslatorConfig(**TINY, batch_size=16, epochs=20, patience=2))
    script = {1: 0.1, 2: 0.5, 3: 0.3, 4: 0.4, 5: 0.9}  # best at epoch 2, then 2 worse epochs
    seen = {}

    def hook(m, logs):
        seen[logs["epoch"]] = {k: p.copy() for k, p in m.params.items()}
        return {"bleu": script[logs["epoch"]]}

    out = tmp_path / "m.lstmkit"
    result = train_translator(
        model, train, valid, out=out, on_epoch_end=hook, monitor="bleu", progress=None
    )
    assert result["stopped"] == "patience" and result["best_epoch"] == 2
    assert [h["bleu"] for h in result["history"]] == [0.1, 0.5, 0.3, 0.4]
    for k, p in load_translator(out).params.items():
        np.testing.assert_array_equal(p, seen[2][k], err_msg=k)
        np.testing.assert_array_equal(model.params[k], seen[2][k], err_msg=k)
    assert not np.array_equal(seen[2]["decoder.kernel"], seen[4]["decoder.kernel"])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_leaves_the_good_checkpoint(tmp_path):
    train, valid = _small_task()
    model = Translator(14, 14, TranslatorConfig(**TINY, batch_size=16, epochs=1))
    out = tmp_path / "m.lstmkit"
    train_translator(model, train, valid, out=out, progress=None)
    good = out.read_bytes()
    before = {k: p.copy() for k, p in model.params.items()}
    model.config = replace(model.config, learning_rate=1e38, clipnorm=1e30, epochs=3)
    with np.errstate(all="ignore"):
        result = train_translator(model, train, valid, out=out, progress=None)
    assert result["stopped"] == "diverged"
    assert out.read_bytes() == good
    for k, p in model.params.items():  # the weights it started from are back
        np.testing.assert_array_equal(p, before[k], err_msg=k)


# -- files ----------------------------------------------------------------------------------
def test_save_load_round_trip_is_bit_identical(tmp_path, tiny):
    model, _ = tiny
    meta = {"source_tokenizer": '{"kind": "word"}', "note": "x"}
    save_translator(model, tmp_path / "a.lstmkit", meta)
    back = load_translator(tmp_path / "a.lstmkit")
    assert back.get_config() == model.get_config() and back.metadata == meta
    for k, p in model.params.items():
        assert back.params[k].dtype == p.dtype
        assert back.params[k].tobytes() == p.tobytes(), k
    save_translator(back, tmp_path / "b.lstmkit")
    assert (tmp_path / "a.lstmkit").read_bytes() == (tmp_path / "b.lstmkit").read_bytes()


def test_non_finite_weights_are_not_saved_and_other_models_refused(tmp_path):
    model = Translator(14, 14, TranslatorConfig(**TINY))
    path = tmp_path / "m.lstmkit"
    save_translator(model, path)
    good = path.read_bytes()
    model.params["combine.kernel"][0, 0] = np.nan
    with pytest.raises(NonFiniteWeightsError, match="combine.kernel"):
        save_translator(model, path)
    assert path.read_bytes() == good and len(list(tmp_path.iterdir())) == 1
    seq = Sequential([layers.Dense(2, input_shape=(3,))])
    seq.save(tmp_path / "seq.lstmkit")
    with pytest.raises(ModelFileError, match="not a translation model"):
        load_translator(tmp_path / "seq.lstmkit")
    with pytest.raises(ModelFileError, match="unsupported model"):
        load_model(path)


def test_translate_ids_keeps_the_input_order(tiny):
    model, valid = tiny
    sources = valid[0][:25]
    for beam in (1, 3):
        out = translate_ids(model, sources, beam=beam, max_len=10, batch_size=7)
        for i, s in enumerate(sources):
            decode = greedy_decode if beam == 1 else beam_search
            kwargs = {} if beam == 1 else {"beam": beam}
            assert out.tokens[i] == decode(model, padded([s]), max_len=10, **kwargs).tokens[0]


def test_bad_input_is_refused_with_the_argument_named():
    model = Translator(14, 14, TranslatorConfig(**TINY))
    src, tgt = np.array([[5, 6, 0]]), np.array([[1, 5, 2]])
    bad = [
        (lambda: model.loss_and_grads(np.array([[5, 99]]), tgt), "'src'.*\\[0, 14\\)"),
        (lambda: model.loss_and_grads(src, np.array([1, 5, 2])), "'tgt' must be a 2-D int"),
        (lambda: model.loss_and_grads(np.array([[0, 0]]), tgt), "'src' has an empty"),
        (lambda: model.loss_and_grads(np.vstack([src, src]), tgt), "same batch size"),
        (lambda: model.loss_and_grads(src.astype(float), tgt), "'src' must be a 2-D int"),
        (lambda: model.loss_and_grads(src, np.array([[1, 0, 5, 2]])), "'tgt' must be post-pad"),
        (lambda: TranslatorConfig(dropout=1.0), "'dropout' must be in \\[0, 1\\)"),
        (lambda: TranslatorConfig(decoder_units=0), "'decoder_units' must be a positive int"),
        (lambda: TranslatorConfig(dtype="float16"), "'dtype'"),
        (lambda: Translator(3, 14), "'src_vocab' must be an int > 3"),
        (lambda: beam_search(model, src, beam=0), "'beam' must be a positive int"),
        (lambda: greedy_decode(model, src, max_len=0), "'max_len' must be a positive int"),
        (lambda: translate_ids(model, [[5], []]), "'sources'"),
        (lambda: train_translator(model, ([[5]], [[5], [6]]), ([[5]], [[5]])), "1 sources and 2"),
        (lambda: train_translator(model, ([[5]], [[5]]), ([[5]], [[5]]), max_minutes=0), "max_min"),
        (lambda: train_translator(model, ([[]], [[5]]), ([[5]], [[5]])), "'train' has no pair"),
    ]
    for call, message in bad:
        with pytest.raises(ValueError, match=message):
            call()


def test_training_is_deterministic_with_a_seed():
    train, valid = _small_task()
    runs = []
    for seed in (7, 7, 8):
        cfg = TranslatorConfig(**{**TINY, "dropout": 0.2}, batch_size=16, epochs=1, seed=seed)
        model = Translator(14, 14, cfg)
        train_translator(model, train, valid, progress=None)
        runs.append(model.params)
    for k in runs[0]:
        assert runs[0][k].tobytes() == runs[1][k].tobytes(), k
    assert not np.array_equal(runs[0]["decoder.kernel"], runs[2]["decoder.kernel"])
