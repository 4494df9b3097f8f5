"""The translation job as a Python API: train on a file of sentence pairs, translate, evaluate.

    from lstmkit.apps.translate import TranslateConfig, train, translate, evaluate

    result = train("pairs.csv", TranslateConfig(max_minutes=30), out="en_zh.lstmkit")
    translate(result.model, ["Where is the station?"])          # beam 5 (the config's)
    evaluate(result.model, "en_zh.lstmkit.valid.csv")           # BLEU, chrF, exact match

Steps of :func:`train`: read the pairs (:func:`~.translate_data.read_pairs`), hold out a
validation part (:func:`~.translate_data.split_validation`: whole groups of linked pairs, so no
validation sentence is seen in training), choose each side's level (characters for
Chinese/Japanese, words elsewhere, unless asked), fit the tokenizers on the training part, train
(:func:`~.translate_train.train_translator`) with early stopping on the validation BLEU of greedy
decoding of a fixed subset of the validation sources (``bleu_subset``, all of them when fewer),
and keep the best checkpoint. The model file carries the tokenizers and the facts of the split in
its metadata; the validation pairs are written beside it (``MODEL.valid.csv``) so that
``lstmkit translate evaluate`` and the PyTorch benchmark score the identical pairs.

Every default of the app lives in :class:`TranslateConfig` once; the model's own (architecture,
training, decoding) in the nested :class:`~.translate_model.TranslatorConfig`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from .translate_data import (
    LEVELS,
    Split,
    Tokenizer,
    copy_baseline,
    detect_level,
    read_pairs,
    scores,
    split_validation,
)
from .translate_decode import translate_ids
from .translate_files import load_translator
from .translate_model import Translator, TranslatorConfig
from .translate_train import train_translator

__all__ = [
    "Alignment",
    "Prepared",
    "TrainResult",
    "TranslateConfig",
    "align",
    "evaluate",
    "load",
    "pairs_by_source",
    "prepare",
    "train",
    "translate",
    "valid_path",
]


@dataclass(frozen=True)
class TranslateConfig:
    """Every app-level default, once; the model's in ``model``."""

    source_column: str = "source"
    target_column: str = "target"
    source_level: str | None = None  # "char" | "word" | "subword"; None: detected
    target_level: str | None = None
    # validation pairs held out; None: a tenth of the pairs, at most 2,000 (the notes' recipe)
    n_valid: int | None = None
    max_valid: int = 2000
    # validation sources decoded (greedy) for the BLEU of every epoch: a fixed subset, the
    # first ones of the validation part; the full 2,000 take about as long as 100 train steps
    bleu_subset: int = 500
    max_minutes: float | None = None
    subword_size: int = 8000  # vocabulary of a subword tokenizer
    samples: int = 5  # sample translations printed by evaluate
    model: TranslatorConfig = field(default_factory=TranslatorConfig)

    def __post_init__(self):
        for name in ("source_level", "target_level"):
            v = getattr(self, name)
            if v is not None and v not in LEVELS:
                raise ValueError(
                    f"TranslateConfig: argument {name!r} must be one of {list(LEVELS)} or None; "
                    f"got {v!r}"
                )
        for name in ("max_valid", "bleu_subset", "subword_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(
                    f"TranslateConfig: argument {name!r} must be an int >= 1; got {v!r}"
                )
        if self.n_valid is not None and (isinstance(self.n_valid, bool) or self.n_valid < 1):
            raise ValueError(
                f"TranslateConfig: argument 'n_valid' must be >= 1; got {self.n_valid!r}"
            )
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(
                f"TranslateConfig: argument 'max_minutes' must be > 0; got {self.max_minutes!r}"
            )


@dataclass
class TrainResult:
    model: Translator
    split: Split
    history: list  # logs per epoch (loss, val_loss, val_bleu, val_chrf, tokens_per_s, ...)
    best_epoch: int | None
    best_bleu: float | None
    stopped: str  # "epochs" | "patience" | "time" | "diverged"
    copy: dict  # scores of the copy baseline on the validation part
    levels: tuple  # (source level, target level)


def valid_path(model_path) -> str:
    """Where :func:`train` writes the validation pairs of the model at ``model_path``."""
    return os.fspath(model_path) + ".valid.csv"


def pairs_by_source(sources, targets) -> tuple[list, list]:
    """Distinct sources in first-seen order and all the targets of each (its references)."""
    refs: dict[str, list[str]] = {}
    for s, t in zip(sources, targets):
        refs.setdefault(s, []).append(t)
    return list(refs), list(refs.values())


# -- training ---------------------------------------------------------------------------------
def _n_valid(cfg: TranslateConfig, n_pairs: int) -> int:
    if cfg.n_valid is not None:
        return cfg.n_valid
    return max(1, min(cfg.max_valid, n_pairs // 10))


def _tokenizer(level, texts, cfg) -> Tokenizer:
    if level == "subword":
        return Tokenizer("subword").fit(texts, max_size=cfg.subword_size)
    return Tokenizer(level).fit(texts)


def _write_pairs(path, sources, targets, columns) -> None:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(zip(sources, targets))
    data = buf.getvalue().encode("utf-8")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _encode_pairs(src_tok, tgt_tok, sources, targets):
    return (
        [list(map(int, a)) for a in src_tok.encode(sources, add_bos_eos=False)],
        [list(map(int, a)) for a in tgt_tok.encode(targets, add_bos_eos=False)],
    )


@dataclass
class Prepared:
    """Everything training needs before the model: the split, the levels, the tokenizers, the
    pairs as ids and the fixed subset the per-epoch BLEU is computed on. The PyTorch benchmark
    (``benchmarks/translate_torch_recipe.py``) trains on exactly this."""

    n_pairs: int
    n_valid: int
    split: Split
    levels: tuple  # (source level, target level)
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    train_ids: tuple  # (sources, targets): lists of id lists, no BOS/EOS
    valid_ids: tuple
    bleu_sources: list  # the first bleu_subset distinct validation sources
    bleu_references: list  # all the references of each
    copy: dict  # scores of the copy baseline on that subset

    def bleu(self, model: Translator) -> dict:
        """Greedy validation BLEU and chrF of ``model`` on the subset (what each epoch logs)."""
        ids = self.source_tokenizer.encode(self.bleu_sources, add_bos_eos=False)
        hyps = _decode(model, self.target_tokenizer, ids, beam=1)
        s = scores(hyps, self.bleu_references, self.levels[1])
        return {"val_bleu": s["bleu"], "val_chrf": s["chrf"]}


def prepare(pairs_path, config: TranslateConfig | None = None, log=None) -> Prepared:
    """Read, split (seeded by ``config.model.seed``), choose the levels, fit the tokenizers on the
    training part and encode (module docstring)."""
    cfg = config or TranslateConfig()
    src, tgt = read_pairs(pairs_path, cfg.source_column, cfg.target_column, min_rows=2, log=log)
    n_valid = _n_valid(cfg, len(src))
    split = split_validation(src, tgt, n_valid, seed=cfg.model.seed)
    levels = (
        cfg.source_level or detect_level(split.train_sources),
        cfg.target_level or detect_level(split.train_targets),
    )
    src_tok = _tokenizer(levels[0], split.train_sources, cfg)
    tgt_tok = _tokenizer(levels[1], split.train_targets, cfg)
    subset = min(cfg.bleu_subset, len(split.eval_sources))
    bleu_src, bleu_refs = split.eval_sources[:subset], split.eval_references[:subset]
    return Prepared(
        len(src), n_valid, split, levels, src_tok, tgt_tok,
        _encode_pairs(src_tok, tgt_tok, split.train_sources, split.train_targets),
        _encode_pairs(src_tok, tgt_tok, split.valid_sources, split.valid_targets),
        bleu_src, bleu_refs, copy_baseline(bleu_src, bleu_refs, levels[1]),
    )  # fmt: skip


def _describe(p: Prepared, model: Translator) -> list[str]:
    sp = p.split
    n_eval, subset = len(sp.eval_sources), len(p.bleu_sources)
    which = "all" if subset == n_eval else f"the first {subset}"
    return [
        (
            f"{p.n_pairs} pairs: {len(sp.train_sources)} training, {len(sp.valid_sources)} "
            f"validation ({n_eval} distinct sources); levels {p.levels[0]} -> {p.levels[1]}; "
            f"vocabularies {p.source_tokenizer.vocab_size} / {p.target_tokenizer.vocab_size}; "
            f"{sum(a.size for a in model.params.values()):,} parameters"
        ),
        (
            f"validation BLEU each epoch: greedy, on {which} of {n_eval} validation sources "
            f"(copy baseline {p.copy['bleu']:.2f}, tokenize {p.copy['tokenize']})"
        ),
    ]


def _metadata(p: Prepared, cfg: TranslateConfig, pairs_path) -> dict:
    return {
        "kind": "translate",
        "source_tokenizer": p.source_tokenizer.to_json(),
        "target_tokenizer": p.target_tokenizer.to_json(),
        "source_level": p.levels[0],
        "target_level": p.levels[1],
        "source_column": cfg.source_column,
        "target_column": cfg.target_column,
        "data": os.path.basename(os.fspath(pairs_path)),
        "n_valid": p.n_valid,
        "split_seed": cfg.model.seed,
        "bleu_subset": len(p.bleu_sources),
        "app_config": {k: v for k, v in asdict(cfg).items() if k != "model"},
    }


def train(
    pairs_path,
    config: TranslateConfig | None = None,
    *,
    out=None,
    progress: Callable[[str], None] | None = print,
    distribute=None,
) -> TrainResult:
    """Train a translator on the pairs of ``pairs_path`` (module docstring). With ``out`` the
    best checkpoint is saved there atomically whenever it improves, and the validation pairs
    to ``out + ".valid.csv"`` at the end of the first epoch, just before the first checkpoint
    (a run stopped earlier, by Ctrl-C, leaves both files as they were). ``distribute``: a
    :class:`lstmkit.distributed.RayStrategy`, data-parallel steps on Ray workers (validation,
    BLEU and checkpoints stay in this process)."""
    cfg = config or TranslateConfig()
    say = progress or (lambda _line: None)
    p = prepare(pairs_path, cfg, log=say)
    model = Translator(p.source_tokenizer.vocab_size, p.target_tokenizer.vocab_size, cfg.model)
    for line in _describe(p, model):
        say(line)
    pending = [out is not None]  # the validation pairs go out with the first checkpoint

    def on_epoch_end(m, _logs):
        if pending[0]:
            cols = (cfg.source_column, cfg.target_column)
            _write_pairs(valid_path(out), p.split.valid_sources, p.split.valid_targets, cols)
            pending[0] = False
        return p.bleu(m)

    model.metadata = metadata = _metadata(p, cfg, pairs_path)
    r = train_translator(
        model,
        p.train_ids,
        p.valid_ids,
        out=out,
        metadata=metadata,
        max_minutes=cfg.max_minutes,
        on_epoch_end=on_epoch_end,
        monitor="val_bleu",
        progress=progress,
        distribute=distribute,
    )
    return TrainResult(
        model, p.split, r["history"], r["best_epoch"], r["best"], r["stopped"], p.copy, p.levels
    )


# -- using a model ----------------------------------------------------------------------------
def load(path) -> Translator:
    """:func:`~.translate_files.load_translator` (refuses any other kind of model)."""
    return load_translator(path)


def tokenizers(model: Translator) -> tuple[Tokenizer, Tokenizer]:
    """The ``(source, target)`` tokenizers a model file carries."""
    meta = model.metadata or {}
    try:
        return (
            Tokenizer.from_json(meta["source_tokenizer"]),
            Tokenizer.from_json(meta["target_tokenizer"]),
        )
    except KeyError as e:
        raise ValueError(
            f"translate: the model carries no tokenizer {e}; train it with "
            "'lstmkit translate train'"
        ) from None


def _decode(model, tgt_tok, ids, beam, max_len=None, alpha=None, batch_size=None) -> list[str]:
    """Texts of the id sequences ``ids``; an empty sequence gives an empty text."""
    ids = [list(map(int, a)) for a in ids]
    keep = [i for i, a in enumerate(ids) if a]
    out = [""] * len(ids)
    if keep:
        dec = translate_ids(model, [ids[i] for i in keep], beam, max_len, alpha, batch_size)
        for i, toks in zip(keep, dec.tokens):
            out[i] = tgt_tok.decode(np.asarray(toks, dtype=np.int64))
    return out


def translate(
    model: Translator,
    texts,
    beam: int | None = None,
    *,
    max_len: int | None = None,
    alpha: float | None = None,
    batch_size: int | None = None,
) -> list[str]:
    """Translations of ``texts`` (list of str), batched; unknown words or characters are read
    as ``<unk>``; a blank text gives ``""``. ``beam`` 1 is greedy; defaults (beam, maximum
    length, length normalisation ``alpha``, batch size) are the model config's."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("translate: argument 'texts' must be a list of str")
    src_tok, tgt_tok = tokenizers(model)
    c = model.config
    beam = c.beam if beam is None else beam
    alpha = c.length_alpha if alpha is None else alpha
    ids = src_tok.encode(list(texts), add_bos_eos=False)
    return _decode(model, tgt_tok, ids, beam, max_len, alpha, batch_size)


def evaluate(
    model: Translator,
    path,
    beam: int | None = None,
    *,
    source_column: str | None = None,
    target_column: str | None = None,
    max_len: int | None = None,
    alpha: float | None = None,
    samples: int = TranslateConfig.samples,
    log=None,
) -> dict:
    """BLEU, chrF (sacrebleu: ``zh`` for character-level targets, ``13a`` otherwise) and the
    exact-match rate on the pairs of ``path``: every distinct source translated once and scored
    against all its references. Also the copy baseline and ``samples`` example translations
    ``(source, hypothesis, references)``. Columns default to the ones the model was trained
    on; ``log`` hears about skipped rows (``read_pairs``)."""
    meta = model.metadata or {}
    src_col = source_column or meta.get("source_column", "source")
    tgt_col = target_column or meta.get("target_column", "target")
    src, tgt = read_pairs(path, src_col, tgt_col, log=log)
    sources, refs = pairs_by_source(src, tgt)
    level = meta.get("target_level", "word")
    hyps = translate(model, sources, beam, max_len=max_len, alpha=alpha)
    result = scores(hyps, refs, level)
    result["copy"] = copy_baseline(sources, refs, level)
    result["pairs"] = len(src)
    result["beam"] = model.config.beam if beam is None else beam
    result["samples"] = list(zip(sources, hyps, refs))[:samples]
    result["hypotheses"] = hyps
    result["sources"] = sources
    result["references"] = refs
    return result


# -- seeing inside: attention and the decoder's gates ---------------------------------------------
@dataclass
class Alignment:
    """One sentence decoded greedily with everything :func:`lstmkit.inspect.report
    .write_translation_report` draws."""

    source_tokens: list  # the source as the tokenizer cuts it (unknown ones marked <unk>)
    target_tokens: list  # the tokens emitted, EOS included as "</s>"
    translation: str
    attention: np.ndarray  # (target steps, source tokens)
    decoder: object  # lstmkit.inspect.trace.LayerTrace of the decoder LSTM (batch 1)


def align(model: Translator, text: str, max_len: int | None = None) -> Alignment:
    """Greedy decoding of one sentence with the decoder LSTM's cache kept at every step (the
    gates i, f, g, o and the cell state, as ``lstmkit.ops.lstm`` computed them) and the
    attention weights. No dropout."""
    from ..inspect.trace import LayerTrace
    from ..ops.gates import LSTM_GATES, split
    from .translate_model import BOS, EOS, UNK

    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"inspect: argument '--text' must be a non-empty sentence; got {text!r}")
    src_tok, tgt_tok = tokenizers(model)
    ids = src_tok.encode([text], add_bos_eos=False)[0].astype(np.int64)
    if ids.size == 0:
        raise ValueError(f"inspect: argument '--text' has no token; got {text!r}")
    max_len = model.config.decode_max_len if max_len is None else max_len
    memory, state, _ = model.encode(ids[None])
    y, emitted, atts, caches = BOS, [], [], []
    h0, c0 = state.h, state.c
    for _ in range(max_len):
        emb = model.params["tgt_embedding.embeddings"][[y]]
        state, h_tilde, att, cache = model.decoder_step(state, emb, memory, keep_cache=True)
        y = int(model.output_logits(h_tilde)[0].argmax())
        emitted.append(y)
        atts.append(att[0])
        caches.append(cache[0])  # the LSTM's cache of this one-step sequence
        if y == EOS:
            break
    gates = np.concatenate([c.gates for c in caches], axis=0)  # (T, 1, 4H) i, f, g, o
    arrays = {n: np.swapaxes(b, 0, 1) for n, b in zip(LSTM_GATES, split(gates, 4))}
    arrays["c"] = np.swapaxes(np.concatenate([c.c[1:] for c in caches]), 0, 1)
    arrays["h"] = arrays["o"] * np.tanh(arrays["c"])
    lt = LayerTrace("decoder", "lstm", arrays, {"h": h0, "c": c0}, None, False, "time")
    known = src_tok.encode([text], add_bos_eos=False)[0]
    src_tokens = src_tok.tokens(text)
    if len(src_tokens) != ids.size:
        src_tokens = [src_tok.id_to_token[int(i)] for i in ids]
    src_tokens = [t if k != UNK else f"{t} <unk>" for t, k in zip(src_tokens, known)]
    tgt_tokens = [tgt_tok.id_to_token[i] for i in emitted]
    return Alignment(
        src_tokens, tgt_tokens, tgt_tok.decode(np.asarray(emitted)), np.stack(atts), lt
    )
