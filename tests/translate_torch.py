"""The translation recipe written independently in PyTorch (the witness of
``lstmkit.apps.translate_model``): ``nn.LSTM`` bidirectional over packed sequences, an
``nn.LSTMCell`` decoder with Luong "general" attention and input feeding, ``nn.Linear`` layers
and ``F.cross_entropy(..., ignore_index=0, label_smoothing=ε)``.

``copy_into(model, params)`` copies lstmkit's parameters in (torch's two LSTM biases split with a
non-zero ``bias_hh``); ``grads_like(model)`` returns torch's gradients under lstmkit's names.
The benchmark ``benchmarks/translate_speed.py`` trains this same module.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class TorchTranslator(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, E, He, Hd, dropout=0.0, smoothing=0.1):
        super().__init__()
        self.src_emb = nn.Embedding(src_vocab, E, padding_idx=0)
        self.tgt_emb = nn.Embedding(tgt_vocab, E, padding_idx=0)
        self.enc = nn.LSTM(E, He, batch_first=True, bidirectional=True)
        self.init_h, self.init_c = nn.Linear(2 * He, Hd), nn.Linear(2 * He, Hd)
        self.dec = nn.LSTMCell(E + Hd, Hd)
        self.att = nn.Linear(2 * He, Hd, bias=False)
        self.comb = nn.Linear(2 * He + Hd, Hd, bias=False)
        self.out = nn.Linear(Hd, tgt_vocab)
        self.drop = nn.Dropout(dropout)
        self.smoothing = smoothing

    def forward(self, src, tgt, per_sentence=False):
        S = src.shape[1]
        mask = src != 0
        x = self.drop(self.src_emb(src))
        packed = pack_padded_sequence(x, mask.sum(1), batch_first=True, enforce_sorted=False)
        out, (h, c) = self.enc(packed)
        enc, _ = pad_packed_sequence(out, batch_first=True, total_length=S)  # (B, S, 2He)
        h = torch.tanh(self.init_h(torch.cat([h[0], h[1]], 1)))
        c = self.init_c(torch.cat([c[0], c[1]], 1))
        keys = self.att(enc)  # (B, S, Hd)
        emb = self.drop(self.tgt_emb(tgt[:, :-1]))
        feed = torch.zeros_like(h)
        outs = []
        for t in range(emb.shape[1]):
            h, c = self.dec(torch.cat([emb[:, t], feed], 1), (h, c))
            s = torch.bmm(keys, h[:, :, None])[:, :, 0].masked_fill(~mask, float("-inf"))
            ctx = torch.bmm(torch.softmax(s, 1)[:, None], enc)[:, 0]
            feed = self.drop(torch.tanh(self.comb(torch.cat([ctx, h], 1))))
            outs.append(feed)
        logits = self.out(torch.stack(outs, 1))
        if per_sentence:  # the mean loss per target token of each sentence
            losses = F.cross_entropy(
                logits.transpose(1, 2), tgt[:, 1:], ignore_index=0, reduction="none"
            )
            return losses.sum(1) / (tgt[:, 1:] != 0).sum(1)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            tgt[:, 1:].reshape(-1),
            ignore_index=0,
            label_smoothing=self.smoothing,
        )


def _lstm_names(prefix):
    """lstmkit LSTM layer name -> (torch module attribute, weight suffix)."""
    return {"encoder_fwd": ("enc", ""), "encoder_bwd": ("enc", "_reverse"), "decoder": ("dec", "")}[
        prefix
    ]


def _linear_names():
    return {
        "init_h": "init_h",
        "init_c": "init_c",
        "attention": "att",
        "combine": "comb",
        "output": "out",
    }


def copy_into(model: TorchTranslator, params: dict, rng) -> None:
    """lstmkit ``params`` -> torch weights; each torch ``bias_hh`` gets non-zero values and
    ``bias_ih = bias - bias_hh``."""
    t = {k: torch.from_numpy(np.array(v)) for k, v in params.items()}
    with torch.no_grad():
        model.src_emb.weight.copy_(t["src_embedding.embeddings"])
        model.tgt_emb.weight.copy_(t["tgt_embedding.embeddings"])
        for layer in ("encoder_fwd", "encoder_bwd", "decoder"):
            mod, sfx = _lstm_names(layer)
            m = getattr(model, mod)
            tail = "_l0" + sfx if mod == "enc" else ""
            getattr(m, f"weight_ih{tail}").copy_(t[f"{layer}.kernel"].T)
            getattr(m, f"weight_hh{tail}").copy_(t[f"{layer}.recurrent_kernel"].T)
            b_hh = torch.from_numpy(rng.uniform(-0.5, 0.5, t[f"{layer}.bias"].shape))
            getattr(m, f"bias_hh{tail}").copy_(b_hh)
            getattr(m, f"bias_ih{tail}").copy_(t[f"{layer}.bias"] - b_hh.to(t[f"{layer}.bias"]))
        for layer, mod in _linear_names().items():
            getattr(model, mod).weight.copy_(t[f"{layer}.kernel"].T)
            if f"{layer}.bias" in t:
                getattr(model, mod).bias.copy_(t[f"{layer}.bias"])


def grads_like(model: TorchTranslator) -> dict:
    """torch's gradients under lstmkit's names and layouts."""
    g = {
        "src_embedding.embeddings": model.src_emb.weight.grad,
        "tgt_embedding.embeddings": model.tgt_emb.weight.grad,
    }
    for layer in ("encoder_fwd", "encoder_bwd", "decoder"):
        mod, sfx = _lstm_names(layer)
        m = getattr(model, mod)
        tail = "_l0" + sfx if mod == "enc" else ""
        g[f"{layer}.kernel"] = getattr(m, f"weight_ih{tail}").grad.T
        g[f"{layer}.recurrent_kernel"] = getattr(m, f"weight_hh{tail}").grad.T
        g[f"{layer}.bias"] = getattr(m, f"bias_ih{tail}").grad
    for layer, mod in _linear_names().items():
        g[f"{layer}.kernel"] = getattr(model, mod).weight.grad.T
        if getattr(model, mod).bias is not None:
            g[f"{layer}.bias"] = getattr(model, mod).bias.grad
    return {k: v.detach().numpy() for k, v in g.items()}
