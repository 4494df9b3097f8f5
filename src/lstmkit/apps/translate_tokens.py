"""Tokenizers of the translation app: characters, words or subwords, as int32 id arrays.

Id layout (every level)::

    0 <pad>   padding (masked by the models)
    1 <s>     begin of sentence (BOS): the decoder's first input
    2 </s>    end of sentence (EOS): the decoder's last target; decoding stops there
    3 <unk>   any token the vocabulary lacks (never a crash)
    4+        tokens by descending training count (ties: sorted), at most ``max_size`` ids in all

Levels:

- ``"char"`` (Chinese, Japanese): every character of the text, whitespace runs folded to one
  space; ``decode`` joins them with ``""``.
- ``"word"``: the text lower-cased, tokens ``\\w+|[^\\w\\s]`` (a word, or one punctuation
  mark), as the reference recipe of ``translate-notes.md``; ``decode`` puts the text back with
  the spacing rules of :func:`detokenize_words` (``"let ' s go !"`` -> ``"let's go!"``).
- ``"subword"``: a sentencepiece model (unigram or BPE) trained in memory on the texts. Its
  model proto is kept as bytes, so the tokenizer serialises to JSON (base64): never a pickle.
  sentencepiece is the optional extra ``translate``.

``Tokenizer.to_json()`` / ``Tokenizer.from_json()`` travel in a model's metadata; ``from_json``
checks types and bounds sizes before building anything, so a hostile file costs little.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections import Counter

import numpy as np

from .._optional import require
from .._safetensors_np import loads_bounded

__all__ = [
    "BOS",
    "EOS",
    "LEVELS",
    "PAD",
    "SPECIALS",
    "UNK",
    "Tokenizer",
    "detokenize_words",
]

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")  # the tokens of ids 0..3
LEVELS = ("char", "word", "subword")
SUBWORD_TYPES = ("unigram", "bpe")
UNK_TEXT = "<unk>"  # what decode writes for an unknown word or character
FORMAT = "lstmkit.translate.tokenizer"
MAX_JSON_BYTES = 64 * 2**20
MAX_VOCAB = 1_000_000  # ids in a vocabulary read from JSON
MAX_TOKEN_CHARS = 200  # characters in one vocabulary entry read from JSON
DEFAULT_MIN_COUNT = {"char": 1, "word": 2, "subword": 1}
DEFAULT_SUBWORD_SIZE = 8000

_WORD = re.compile(r"\w+|[^\w\s]")
# spacing of detokenize_words
_NO_SPACE_BEFORE = set(".,;:!?%)]}…")
_NO_SPACE_AFTER = set("([{$#¿¡")
_JOINERS = set("'’-/")  # glued to both sides between two words ("don't", "well-known")
_NUMBER_JOINERS = set(".,:")  # glued between two numbers ("3.5", "1,000", "10:30")


def _fail(owner, arg, got, expected):
    raise ValueError(f"{owner}: argument '{arg}' must be {expected}; got {got}")


def _is_word(token: str) -> bool:
    return bool(token) and _WORD.fullmatch(token) is not None and token[0].isalnum()


def detokenize_words(tokens) -> str:
    """Join word-level tokens into text: a space between two tokens except before closing
    punctuation, after opening brackets, around an apostrophe or hyphen between two words,
    around ``.,:`` between two numbers, and inside straight double quotes (alternately opening
    and closing). Two words always keep their space, so tokenizing the result gives the same
    tokens back."""
    out: list[str] = []
    quote_open = glue_next = False
    for k, tok in enumerate(tokens):
        prev = tokens[k - 1] if k else ""
        nxt = tokens[k + 1] if k + 1 < len(tokens) else ""
        space = bool(out) and not glue_next
        glue_next = False
        if tok in _NO_SPACE_BEFORE or prev in _NO_SPACE_AFTER:
            space = False
        between_words = tok in _JOINERS and _is_word(prev) and _is_word(nxt)
        between_numbers = tok in _NUMBER_JOINERS and prev.isdigit() and nxt.isdigit()
        if between_words or between_numbers:
            space, glue_next = False, True
        if tok == '"':
            space = space and not quote_open  # a closing quote sticks to the word before it
            glue_next = not quote_open  # and an opening one to the word after it
            quote_open = not quote_open
        out.append((" " if space else "") + tok)
    return "".join(out)


def _check_texts(texts, owner, arg="texts"):
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__len__"):
        _fail(owner, arg, type(texts).__name__, "a list of str (one sentence each)")
    for k, t in enumerate(texts):
        if not isinstance(t, str):
            _fail(owner, arg, f"a {type(t).__name__} at position {k}", "a list of str")
    return list(texts)


class Tokenizer:
    """Text <-> int32 ids at one ``level`` (module docstring); ``subword_type`` ("unigram" or
    "bpe") is used by ``level="subword"`` only."""

    def __init__(self, level: str = "word", *, subword_type: str = "unigram"):
        if level not in LEVELS:
            _fail("Tokenizer", "level", repr(level), f"one of {list(LEVELS)}")
        if subword_type not in SUBWORD_TYPES:
            _fail("Tokenizer", "subword_type", repr(subword_type), f"one of {list(SUBWORD_TYPES)}")
        self.level, self.subword_type = level, subword_type
        self.id_to_token: list[str] = list(SPECIALS)
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(SPECIALS)}
        self.model_proto: bytes | None = None  # the sentencepiece model (subword only)
        self._sp = None
        self.fitted = False

    def __repr__(self):
        return f"Tokenizer(level={self.level!r}, vocab_size={self.vocab_size})"

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    # -- text -> tokens ------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """The text the tokens stand for: whitespace runs folded to one space and trimmed; also
        lower-cased at the word level. ``decode(encode([t])[0])`` gives this back for
        characters and subwords whose tokens are all known."""
        text = " ".join(text.split())
        return text.lower() if self.level == "word" else text

    def tokens(self, text: str) -> list[str]:
        """The tokens of one text as strings (the labels of an attention heatmap's axis)."""
        if not isinstance(text, str):
            _fail("Tokenizer.tokens", "text", type(text).__name__, "a str")
        text = self.normalize(text)
        if self.level == "char":
            return list(text)
        if self.level == "word":
            return _WORD.findall(text)
        self._need_fit("tokens")
        return self._sp.encode(text, out_type=str)

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, texts, min_count: int | None = None, max_size: int | None = None):
        """Build the vocabulary from ``texts``: tokens seen at least ``min_count`` times (default
        1 for characters, 2 for words; unused by subwords), the most frequent first, at most
        ``max_size`` ids in all, the 4 reserved ones included (default: no limit; 8000 for
        subwords). Returns ``self``."""
        texts = _check_texts(texts, "Tokenizer.fit")
        if not texts:
            _fail("Tokenizer.fit", "texts", "an empty list", "at least one text")
        min_count = DEFAULT_MIN_COUNT[self.level] if min_count is None else min_count
        _check_fit_sizes(min_count, max_size)
        if self.level == "subword":
            self._fit_subword(texts, max_size or DEFAULT_SUBWORD_SIZE)
        else:
            counts = Counter(tok for t in texts for tok in self.tokens(t))
            kept = sorted(
                (t for t, c in counts.items() if c >= min_count and t not in SPECIALS),
                key=lambda t: (-counts[t], t),
            )
            if max_size is not None:
                kept = kept[: max_size - len(SPECIALS)]
            self._set_vocab(list(SPECIALS) + kept)
        self.fitted = True
        return self

    def _fit_subword(self, texts, vocab_size):
        spm = require("sentencepiece", "subword tokenizers (level 'subword')")
        alphabet = len(set("".join(texts)))
        proto = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=proto,
            model_type=self.subword_type,
            vocab_size=vocab_size,
            hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary, not an error
            pad_id=PAD,
            bos_id=BOS,
            eos_id=EOS,
            unk_id=UNK,
            pad_piece=SPECIALS[PAD],
            bos_piece=SPECIALS[BOS],
            eos_piece=SPECIALS[EOS],
            unk_piece=SPECIALS[UNK],
            normalization_rule_name="identity",  # keep the text as it is (no NFKC)
            # every character when the alphabet leaves room for words (Latin scripts), else
            # sentencepiece's default, which sends the rarest CJK characters to <unk>
            character_coverage=1.0 if alphabet * 2 < vocab_size else 0.9995,
            num_threads=1,
            minloglevel=2,
        )
        self._load_subword(proto.getvalue(), "Tokenizer.fit")

    def _load_subword(self, proto: bytes, owner):
        spm = require("sentencepiece", "subword tokenizers (level 'subword')")
        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(proto)
        except (RuntimeError, OSError, ValueError) as e:
            raise ValueError(f"{owner}: the sentencepiece model does not load: {e}") from None
        ids = [sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()]
        if ids != [PAD, BOS, EOS, UNK]:
            raise ValueError(
                f"{owner}: the sentencepiece model must reserve ids pad=0, bos=1, eos=2, "
                f"unk=3; got {ids}"
            )
        self._sp, self.model_proto = sp, bytes(proto)
        self._set_vocab([sp.id_to_piece(i) for i in range(sp.get_piece_size())])

    def _set_vocab(self, tokens):
        self.id_to_token = list(tokens)
        self.token_to_id = {t: i for i, t in enumerate(self.id_to_token)}

    def _need_fit(self, what):
        if not self.fitted:
            raise ValueError(
                f"Tokenizer.{what}: the tokenizer is not fitted; call fit(texts) first"
            )

    # -- encoding and decoding ---------------------------------------------------------------------
    def encode(self, texts, add_bos_eos: bool = True) -> list[np.ndarray]:
        """One int32 id array per text; unknown tokens become ``UNK`` (3). With ``add_bos_eos``
        each array is ``[BOS, ..., EOS]`` (the decoder's form); without, the bare tokens (the
        encoder's form)."""
        texts = _check_texts(texts, "Tokenizer.encode")
        self._need_fit("encode")
        if self.level == "subword":
            rows = self._sp.encode([self.normalize(t) for t in texts], out_type=int)
        else:
            get = self.token_to_id.get
            rows = [[get(tok, UNK) for tok in self.tokens(t)] for t in texts]
        if add_bos_eos:
            rows = [[BOS, *r, EOS] for r in rows]
        return [np.asarray(r, dtype=np.int32) for r in rows]

    def decode(self, ids) -> str:
        """The text of one id sequence: it stops at the first ``EOS``, drops ``PAD`` and
        ``BOS``; ``UNK`` reads ``<unk>`` (characters, words) or `` ⁇ `` (subwords)."""
        self._need_fit("decode")
        arr = np.asarray(ids)
        if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
            _fail(
                "Tokenizer.decode",
                "ids",
                f"an array of shape {arr.shape} and dtype {arr.dtype}",
                "a 1-D sequence of integer ids",
            )
        bad = arr[(arr < 0) | (arr >= self.vocab_size)]
        if bad.size:
            _fail(
                "Tokenizer.decode",
                "ids",
                f"id {int(bad[0])}",
                f"ids in [0, {self.vocab_size}) (the vocabulary)",
            )
        stop = np.flatnonzero(arr == EOS)
        arr = arr[: stop[0]] if stop.size else arr
        keep = [int(i) for i in arr if i not in (PAD, BOS)]
        if self.level == "subword":
            return self._sp.decode(keep)
        toks = [UNK_TEXT if i == UNK else self.id_to_token[i] for i in keep]
        return "".join(toks) if self.level == "char" else detokenize_words(toks)

    def decode_batch(self, batch) -> list[str]:
        """``decode`` of every row of ``batch`` (a (B, T) array or a list of sequences)."""
        return [self.decode(row) for row in batch]

    # -- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        self._need_fit("to_dict")
        d = {"format": FORMAT, "version": 1, "level": self.level}
        if self.level == "subword":
            d["subword_type"] = self.subword_type
            d["model"] = base64.b64encode(self.model_proto).decode("ascii")
        else:
            d["tokens"] = list(self.id_to_token)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text) -> Tokenizer:
        """The tokenizer of :meth:`to_json`; bad JSON, types or sizes raise ``ValueError``."""
        if not isinstance(text, (str, bytes)):
            _fail("Tokenizer.from_json", "text", type(text).__name__, "a JSON str")
        d = loads_bounded(text, "Tokenizer.from_json", MAX_JSON_BYTES, max_depth=4)
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d) -> Tokenizer:
        owner = "Tokenizer.from_dict"
        if not isinstance(d, dict):
            _fail(owner, "d", type(d).__name__, "a JSON object")
        if d.get("format") != FORMAT or d.get("version") != 1:
            _fail(
                owner,
                "format",
                f"{d.get('format')!r} version {d.get('version')!r}",
                f"{FORMAT!r} version 1",
            )
        level = d.get("level")
        if level not in LEVELS:
            _fail(owner, "level", repr(level), f"one of {list(LEVELS)}")
        if level == "subword":
            return cls._subword_from_dict(d, owner)
        tok = cls(level)
        tok._set_vocab(_checked_tokens(d.get("tokens"), level, owner))
        tok.fitted = True
        return tok

    @classmethod
    def _subword_from_dict(cls, d, owner):
        kind, model = d.get("subword_type"), d.get("model")
        if kind not in SUBWORD_TYPES:
            _fail(owner, "subword_type", repr(kind), f"one of {list(SUBWORD_TYPES)}")
        if not isinstance(model, str) or len(model) > MAX_JSON_BYTES:
            _fail(owner, "model", type(model).__name__, "a base64 str of a sentencepiece model")
        try:
            proto = base64.b64decode(model, validate=True)
        except (binascii.Error, ValueError):
            _fail(owner, "model", "text that is not base64", "a base64 sentencepiece model")
        tok = cls("subword", subword_type=kind)
        tok._load_subword(proto, owner)
        tok.fitted = True
        return tok


def _check_fit_sizes(min_count, max_size):
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not is_int(min_count) or min_count < 1:
        _fail("Tokenizer.fit", "min_count", repr(min_count), "an int >= 1")
    least = len(SPECIALS) + 1
    if max_size is not None and (not is_int(max_size) or max_size < least):
        _fail("Tokenizer.fit", "max_size", repr(max_size), f"None or an int >= {least}")


def _checked_tokens(tokens, level, owner) -> list[str]:
    """The vocabulary list of a char/word tokenizer read from JSON, checked entry by entry."""
    if not isinstance(tokens, list):
        _fail(owner, "tokens", type(tokens).__name__, "a list of str")
    if not len(SPECIALS) <= len(tokens) <= MAX_VOCAB:
        _fail(owner, "tokens", f"{len(tokens):,} entries", f"from 4 to {MAX_VOCAB:,}")
    if tokens[: len(SPECIALS)] != list(SPECIALS):
        _fail(owner, "tokens", repr(tokens[: len(SPECIALS)]), f"to start with {list(SPECIALS)}")
    longest = 1 if level == "char" else MAX_TOKEN_CHARS
    for i, t in enumerate(tokens[len(SPECIALS) :], len(SPECIALS)):
        if not isinstance(t, str) or not 1 <= len(t) <= longest:
            got = repr(t) if isinstance(t, str) and len(t) < 50 else type(t).__name__
            _fail(owner, "tokens", f"{got} at id {i}", f"a str of 1 to {longest} characters")
    if len(set(tokens)) != len(tokens):
        dupes = sorted(t for t, c in Counter(tokens).items() if c > 1)[:5]
        _fail(owner, "tokens", f"repeated entries {dupes}", "each token once")
    return tokens
