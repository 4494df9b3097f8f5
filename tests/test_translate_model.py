"""The translation model against an independent PyTorch implementation of the same recipe
(loss and every parameter gradient), its decoders, its trainer and its files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.apps.translate_model import Translator, TranslatorConfig
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
