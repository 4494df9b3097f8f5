"""Type and range checks of what a model file's header says: the architecture JSON (``model``),
the training settings (``compile``) and the app facts (``metadata``).

A model file is input like any other: a string where a number belongs, a negative size, a NaN
scaler or a vocabulary of numbers must be refused when the file is read, with a
:class:`~lstmkit.saving.ModelFileError` naming the file, the field, the value and what was
expected, not surface later as a ``TypeError`` deep inside a forecast. The apps call the same
checks on in-memory models (:func:`check_app_metadata`).

Each schema lists the fields its writer produces (``apps/forecast.py``: ``train_forecaster``;
``apps/text.py``: ``train_language_model``; ``apps/classify.py``: ``train_*_classifier`` and
``cli/classify.py``; ``saving.save_model`` for ``compile``). Unknown keys are allowed (a newer
writer may add some); a known key with a wrong type or range is not. Only NumPy-free standard
library code here: the NumPy-only runtime runs these checks too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from .saving import ModelFileError

#: the largest int a size or count may be (shapes are products of them; NumPy's index is int64)
MAX_INT = 2**62
#: the most layers an architecture may list
MAX_LAYERS = 1000


# -- rules: a predicate and the words for what it accepts ---------------------------------------
class Rule(NamedTuple):
    ok: Callable[[object], bool]
    expected: str


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    """A number that arithmetic can use: finite and at most 1e300 in magnitude (ints too: a
    300-digit int overflows the float it becomes)."""
    if isinstance(v, float):
        return math.isfinite(v) and abs(v) <= 1e300
    return _is_int(v) and abs(v) <= 10**300


POS_INT = Rule(lambda v: _is_int(v) and 0 < v <= MAX_INT, "a positive int")
NONNEG_INT = Rule(lambda v: _is_int(v) and 0 <= v <= MAX_INT, "an int >= 0")
INT = Rule(lambda v: _is_int(v) and abs(v) <= MAX_INT, "an int")
BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
STR = Rule(lambda v: isinstance(v, str), "a string")
NAME = Rule(lambda v: isinstance(v, str) and 0 < len(v) <= 256, "a non-empty string (<= 256 chars)")
FINITE = Rule(_finite, "a finite number")
POSITIVE = Rule(lambda v: _finite(v) and v > 0, "a finite number > 0")
RATE = Rule(lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)")
FRACTION = Rule(lambda v: _is_num(v) and 0 < v < 1, "a number in (0, 1)")
FLOAT_DTYPE = Rule(lambda v: v in ("float32", "float64"), "'float32' or 'float64'")


def optional(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.ok(v), f"{rule.expected} or null")


def one_of(*choices) -> Rule:
    return Rule(lambda v: isinstance(v, str) and v in choices, f"one of {list(choices)}")


def list_of(rule: Rule, min_len=0, unique=False) -> Rule:
    def ok(v):
        return (
            isinstance(v, list)
            and len(v) >= min_len
            and all(rule.ok(x) for x in v)
            and (not unique or len(set(v)) == len(v))
        )

    what = f"a list of {'distinct ' if unique else ''}items, each {rule.expected}"
    return Rule(ok, what + (f", at least {min_len} of them" if min_len else ""))


def _show(v) -> str:
    r = repr(v)
    r = r if len(r) <= 60 else r[:57] + "..."
    size = f" of {len(v)}" if isinstance(v, (list, dict, str)) and len(r) > 20 else ""
    return f"{r} ({type(v).__name__}{size})"


def fail(source, field, value, expected):
    raise ModelFileError(f"{source}: {field} must be {expected}; got {_show(value)}")


def check(source, field, value, rule: Rule):
    if not rule.ok(value):
        fail(source, field, value, rule.expected)
    return value


def check_fields(source, where, obj, rules: dict, required=(), closed=False):
    """``obj`` must be a JSON object; each of ``rules`` present must pass, ``required`` ones
    must be present; with ``closed`` no other key may be (an object passed as ``**kwargs``)."""
    if not isinstance(obj, dict):
        fail(source, where, obj, "a JSON object")
    if closed and set(obj) - set(rules):
        extra = sorted(set(obj) - set(rules), key=str)
        fail(source, where, obj, f"an object with keys {sorted(rules)} only (also {extra!r:.60})")
    for key in required:
        if key not in obj:
            raise ModelFileError(f"{source}: {where} has no {key!r} (required)")
    for key, rule in rules.items():
        if key in obj:
            check(source, f"{where} {key!r}", obj[key], rule)
    return obj


def _walk_numbers(source, where, obj):
    """Every number anywhere in ``obj`` must be finite and not absurdly large (iterative: the
    JSON depth is bounded, but a stack costs nothing)."""
    stack = [(obj, where)]
    while stack:
        v, at = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, f"{at}.{k}") for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, f"{at}[{i}]") for i, x in enumerate(v))
        elif _is_num(v) and not (_finite(v) and abs(v) <= MAX_INT):
            fail(source, at, v, "a finite number of magnitude <= 2**62")


# -- architecture (``model``) --------------------------------------------------------------------
#: flags that ``bool(...)`` would read wrongly from a string ("false" is true)
LAYER_FLAGS = (
    "return_sequences", "return_state", "go_backwards", "stateful", "use_bias", "mask_zero",
    "unit_forget_bias", "peephole", "cifg", "forget_gate", "layer_norm", "reset_after",
    "zero_output_for_mask", "unroll",
)  # fmt: skip

#: constructor arguments with the same meaning in every layer that has them
LAYER_ARGS = {
    "name": NAME,
    "trainable": BOOL,
    "dtype": optional(FLOAT_DTYPE),
    "input_shape": optional(list_of(optional(POS_INT))),
    "input_dim": POS_INT,
    "output_dim": POS_INT,
    "units": POS_INT,
    "dropout": RATE,
    "recurrent_dropout": RATE,
    "rate": RATE,
    "activation": optional(STR),
    "merge_mode": optional(STR),
    **dict.fromkeys(LAYER_FLAGS, BOOL),
}


FUNCTIONAL = ("Model", "Functional")


def check_model_spec(source, spec):
    """The architecture JSON: a ``Sequential`` or functional description whose layer configs
    hold sane values. Each layer's own constructor checks the rest when it is deserialised."""
    if isinstance(spec, dict) and spec.get("class_name") in FUNCTIONAL:
        return _check_functional_spec(source, spec)
    if not isinstance(spec, dict) or spec.get("class_name") != "Sequential":
        raise ModelFileError(f"{source}: unsupported model description")
    config = spec.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ModelFileError(
            f"{source}: invalid architecture: Sequential config must be a dict with a 'layers' list"
        )
    where = "architecture"
    check_fields(source, where, config, {
        "name": optional(NAME),
        "dtype": optional(FLOAT_DTYPE),
        "input_shape": optional(list_of(optional(POS_INT), min_len=1)),
    })  # fmt: skip
    layers = config["layers"]
    if len(layers) > MAX_LAYERS:
        fail(source, f"{where} 'layers'", layers, f"a list of at most {MAX_LAYERS} layers")
    names = set()
    for i, lc in enumerate(layers):
        _check_layer(source, f"layer {i}", lc)
        name = lc["config"].get("name") if isinstance(lc.get("config"), dict) else None
        if name is not None and name in names:
            raise ModelFileError(
                f"{source}: invalid architecture: layer {i}: name {name!r} is used twice; "
                "names must be unique"
            )
        names.add(name)
    _walk_numbers(source, where, config)


def _check_functional_spec(source, spec):
    """A functional config: its layer entries as Sequential's, InputLayers by their own
    constructor; the connections are checked when the graph is rebuilt."""
    config = spec.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ModelFileError(
            f"{source}: invalid architecture: functional config must be a dict with a 'layers' list"
        )
    layers = config["layers"]
    if len(layers) > MAX_LAYERS:
        fail(source, "architecture 'layers'", layers, f"a list of at most {MAX_LAYERS} layers")
    for i, lc in enumerate(layers):
        if not isinstance(lc, dict):
            fail(source, f"layer {i}", lc, "a layer {'class_name': ..., 'config': {...}}")
        if lc.get("class_name") != "InputLayer":
            _check_layer(source, f"layer {i}", lc)
        if not isinstance(lc.get("inbound_nodes", []), list):
            fail(source, f"layer {i} 'inbound_nodes'", lc.get("inbound_nodes"), "a list")
    _walk_numbers(source, "architecture", config)


def _check_layer(source, where, lc):
    """``{"class_name": str, "config": {...}}``, nested layers (``Bidirectional``) included."""
    stack = [(lc, where)]
    while stack:
        lc, at = stack.pop()
        if not isinstance(lc, dict) or not isinstance(lc.get("class_name"), str):
            expected = "a layer {'class_name': ..., 'config': {...}}"
            fail(source, f"invalid architecture: {at}", lc, expected)
        cfg = lc.get("config", {})
        if not isinstance(cfg, dict):
            fail(source, f"invalid architecture: {at} config", cfg, "a dict")
        label = f"{at} ({lc['class_name']} {cfg.get('name', '?')!r})"
        for key, rule in LAYER_ARGS.items():
            if key in cfg and not rule.ok(cfg[key]):
                raise ModelFileError(
                    f"{source}: invalid architecture: {label}: argument {key!r} must be "
                    f"{rule.expected}; got {_show(cfg[key])}"
                )
        for key, v in cfg.items():  # wrapped layers: {"class_name": ..., "config": ...}
            if isinstance(v, dict) and "class_name" in v:
                stack.append((v, f"{label} {key!r}"))


# -- training settings (``compile``) -------------------------------------------------------------
_SERIALIZED = Rule(
    lambda v: (
        isinstance(v, str)
        or (
            isinstance(v, dict)
            and isinstance(v.get("class_name"), str)
            and isinstance(v.get("config", {}), dict)
        )
    ),
    "a name or {'class_name': str, 'config': {...}}",
)


def check_compile(source, comp):
    """``null`` (never compiled) or what ``save_model`` writes: optimizer, loss, metrics, seed,
    epoch. The optimizer and loss constructors check their own arguments' ranges."""
    if comp is None:
        return None
    check_fields(source, "compile", comp, {
        "optimizer": _SERIALIZED,
        "loss": Rule(lambda v: _SERIALIZED.ok(v) or list_of(_SERIALIZED, 1).ok(v),
                     f"{_SERIALIZED.expected}, or a list of them (one per output)"),
        "metrics": optional(Rule(lambda v: list_of(STR).ok(v) or list_of(list_of(STR)).ok(v),
                                 "a list of names, or one such list per output")),
        "loss_weights": optional(list_of(FINITE, 1)),
        "seed": optional(INT),  # compile takes any int (a negative one fails in fit)
        "epoch": NONNEG_INT,
    }, required=("optimizer", "loss"))  # fmt: skip
    _walk_numbers(source, "compile", comp)
    return comp


# -- app facts (``metadata``) --------------------------------------------------------------------
SPECIALS = ["<pad>", "<unk>"]  # lstmkit.data.text.SPECIALS (not imported: it pulls in the data)

VOCABULARY = {
    "level": one_of("char", "word"),
    "lower": BOOL,
    "tokens": list_of(STR, min_len=2, unique=True),
}

FORECAST = {  # apps/forecast.py: train_forecaster's base_meta, transform and scaler
    "lookback": POS_INT,
    "horizon": POS_INT,
    "season": POS_INT,
    "column": optional(STR),
    "time_column": optional(STR),
    "normalize": one_of("cycle", "window", "none"),
    "norm_span": NONNEG_INT,
    "window_floor": POSITIVE,
    "transform": one_of("none", "sqrt", "log"),
}

# The training settings are a record: only ``seq_len`` is read back (``evaluate_text``). The
# others are checked by type alone (a range the trainer never enforced would make a file it
# wrote unloadable).

LM_SETTINGS = {  # apps/text.py: LMConfig (its __post_init__ enforces level and the sizes)
    **dict.fromkeys(("learning_rate", "epsilon", "clipnorm", "lr_decay", "dropout"), FINITE),
    **dict.fromkeys(("decay_after", "patience", "max_vocab", "min_freq", "seed"), optional(INT)),
    **dict.fromkeys(("embed_dim", "units", "layers", "batch_size", "epochs"), POS_INT),
    "max_steps": optional(INT),
    "val_fraction": FRACTION,
    "lower": BOOL,
    "level": one_of("char", "word"),
    "seq_len": POS_INT,  # read by evaluate_text
}

CLASSIFY = {  # apps/classify.py: train_text_classifier / train_sequence_classifier
    "kind": one_of("text", "sequence"),
    "classes": list_of(STR, min_len=1, unique=True),
    "maxlen": POS_INT,
    "feature_columns": list_of(STR, min_len=1),
}

CLASSIFY_SETTINGS = {  # apps/classify.py: ClassifyConfig (not checked when written: types only)
    **dict.fromkeys(("embed_dim", "units", "epochs", "batch_size", "min_freq", "seed"), INT),
    **dict.fromkeys(("max_vocab", "maxlen", "patience"), optional(INT)),
    **dict.fromkeys(("dropout", "learning_rate", "test_fraction", "val_fraction"), FINITE),
    "clipnorm": optional(FINITE),
    "bidirectional": BOOL,
    "lower": BOOL,
    "features": STR,
}


class Arch(NamedTuple):
    """What the metadata is checked against: shapes without the batch axis (None: unknown)."""

    input_shape: tuple | None = None
    output_shape: tuple | None = None
    vocab_size: int | None = None  # the first layer's input_dim when it is an Embedding


def check_metadata(source, meta, arch: Arch | None = None):
    """The app facts of a model file: a JSON object (or null); the fields of the app named by
    ``"app"`` are checked by type, range and against ``arch``."""
    if meta is None:
        return {}
    check_fields(source, "metadata", meta, {"app": STR})
    return check_app_metadata(meta, source, arch)


def check_app_metadata(meta, source, arch: Arch | None = None):
    """The checks of :func:`check_metadata` on a metadata dict (the apps call it on in-memory
    models too); returns ``meta``."""
    arch = arch or Arch()
    if not isinstance(meta, dict):
        fail(source, "metadata", meta, "a JSON object")
    # a model without "app" carries its owner's facts in its owner's format: only the JSON
    # limits apply (inspect checks a hand-made "vocab" when it reads one)
    app = {"forecast": _forecast, "text": _text, "classify": _classify}.get(meta.get("app"))
    if app is not None:
        app(source, meta, arch)
    return meta


def _vocabulary(source, where, vocab, arch):
    check_fields(source, where, vocab, VOCABULARY, required=("level", "tokens"))
    if vocab["tokens"][:2] != SPECIALS:
        fail(source, f"{where} 'tokens'", vocab["tokens"], f"a list starting with {SPECIALS}")
    if arch.vocab_size is not None and len(vocab["tokens"]) > arch.vocab_size:
        raise ModelFileError(
            f"{source}: {where} has {len(vocab['tokens'])} tokens; the model's Embedding reads "
            f"ids below input_dim={arch.vocab_size}"
        )


def _numbers(rule: Rule) -> Rule:
    """One number, or a non-empty list of them: one per feature (``StandardScaler`` takes both)."""

    def ok(v):
        return rule.ok(v) or (isinstance(v, list) and len(v) > 0 and all(rule.ok(x) for x in v))

    return Rule(ok, f"{rule.expected}, or a non-empty list of them")


def _scaler(source, where, scaler, mean, scale):
    """A ``{mean: ..., scale: ...}`` statistic pair -> the number of features it covers."""
    rules = {mean: _numbers(FINITE), scale: _numbers(POSITIVE)}
    check_fields(source, where, scaler, rules, required=(mean, scale), closed=True)
    sizes = [len(v) if isinstance(v, list) else 1 for v in (scaler[mean], scaler[scale])]
    if sizes[0] != sizes[1]:
        fail(source, f"{where} {scale!r}", scaler[scale], f"{sizes[0]} numbers, as {mean!r}")
    return sizes[0]


def _forecast(source, meta, arch):
    where = "metadata (forecast)"
    check_fields(
        source, where, meta, FORECAST, required=("lookback", "horizon", "season", "scaler")
    )
    _scaler(source, f"{where} 'scaler'", meta["scaler"], "mean", "scale")
    lookback, span = meta["lookback"], meta.get("norm_span", 0)
    if span > lookback:
        fail(source, f"{where} 'norm_span'", span, f"at most lookback={lookback}")
    if span and "window_floor" not in meta:
        raise ModelFileError(f"{source}: {where} has norm_span {span} but no 'window_floor'")
    # the network maps lookback inputs to horizon outputs (LSTM -> Dense(horizon))
    timesteps = arch.input_shape[0] if arch.input_shape else None
    if timesteps is not None and lookback != timesteps:
        fail(source, f"{where} 'lookback'", lookback, f"the model's input length {timesteps}")
    outputs = arch.output_shape[-1] if arch.output_shape else None
    if outputs is not None and meta["horizon"] != outputs:
        fail(source, f"{where} 'horizon'", meta["horizon"], f"the model's {outputs} outputs")


def _text(source, meta, arch):
    where = "metadata (text)"
    if "vocabulary" not in meta and "vocab" not in meta:  # "vocab": hand-made, for inspect
        raise ModelFileError(f"{source}: {where} has no 'vocabulary' (required)")
    check_fields(source, f"{where} 'settings'", meta.get("settings", {}), LM_SETTINGS)
    if "vocabulary" not in meta:
        return
    _vocabulary(source, f"{where} 'vocabulary'", meta["vocabulary"], arch)
    # generate and next_token_distribution name output id i by tokens[i]
    out, n = (
        (arch.output_shape[-1] if arch.output_shape else None),
        len(meta["vocabulary"]["tokens"]),
    )
    if out is not None and out > n:
        raise ModelFileError(
            f"{source}: {where} 'vocabulary' has {n} tokens; the model outputs {out} scores per "
            "step, one per token"
        )


def _classify(source, meta, arch):
    where = "metadata (classify)"
    check_fields(source, where, meta, CLASSIFY, required=("kind", "classes"))
    check_fields(source, f"{where} 'settings'", meta.get("settings", {}), CLASSIFY_SETTINGS)
    if meta["kind"] == "text":
        check_fields(source, where, meta, {}, required=("vocabulary", "maxlen"))
        _vocabulary(source, f"{where} 'vocabulary'", meta["vocabulary"], arch)
    else:
        n = _scaler(source, f"{where} 'scaler'", meta.get("scaler"), "mean", "std")
        features = arch.input_shape[-1] if arch.input_shape else None
        if features is not None and n != features:
            fail(source, f"{where} 'scaler.mean'", meta["scaler"]["mean"],
                 f"{features} numbers, one per input feature")  # fmt: skip
        cols = meta.get("feature_columns")
        if cols is not None and len(cols) != n:
            fail(source, f"{where} 'feature_columns'", cols, f"{n} names, one per feature")
    n_classes = len(meta["classes"])
    out = arch.output_shape[-1] if arch.output_shape else None
    if out is not None and out != (1 if n_classes == 2 else n_classes):
        raise ModelFileError(
            f"{source}: {where} 'classes' has {n_classes} labels; the model outputs {out} "
            f"score(s) (expected {1 if n_classes == 2 else n_classes})"
        )
