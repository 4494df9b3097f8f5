"""Translation data: pairs files, tokenizers, the validation split, scores, synthetic tasks and
the attention heatmap, each against a witness that does not come from the code under test.

- Reading: pandas reads the same real file; bad files give errors naming file, column, line.
- Tokenizers: round trips on a slice of the real Tatoeba pairs and on hypothesis-made strings
  (the normalised text is recomputed here with ``str.split``/``str.lower`` and the reference
  regex, not with the tokenizer's own ``normalize``); JSON round trips; hostile JSON refused.
- Scores: closed forms, the n-gram counts worked out in the comments (BLEU 100 and 0, a case
  with a brevity penalty, Chinese scored per character), exact match by hand.
- Split: no validation sentence in training, on the real data; all references recomputed here.
- Synthetic tasks: ``datetime.strptime``, a words-to-number parser written here, ``[::-1]``.
- Heatmap: PNG signature and size from the IHDR chunk, pixels decoded by matplotlib.
"""

from __future__ import annotations

import csv
import io
import math
import re
import struct
import sys
import warnings
from collections import defaultdict
from datetime import datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit._optional import MissingExtraError
from lstmkit.apps import translate_data as td
from lstmkit.apps.translate_data import (
    BOS,
    EOS,
    PAD,
    UNK,
    Tokenizer,
    copy_baseline,
    detect_level,
    pad_batch,
    read_pairs,
    scores,
    split_validation,
    synthetic_pairs,
)
from shared_data import SHARED, require

PAIRS = SHARED / "translation" / "tatoeba_en_zh" / "train.csv"
REFERENCE_WORD = re.compile(r"\w+|[^\w\s]")  # the reference recipe's word tokens


@pytest.fixture(scope="module")
def real_pairs():
    require(PAIRS)
    return read_pairs(PAIRS)


@pytest.fixture(scope="module")
def real_slice(real_pairs):
    sources, targets = real_pairs
    return sources[:3000], targets[:3000]


def folded(text):
    return " ".join(text.split())


# -- read_pairs ------------------------------------------------------------------------------------
def test_read_pairs_real_file_matches_pandas(real_pairs):
    import pandas as pd

    df = pd.read_csv(PAIRS, dtype=str, keep_default_na=False)
    sources, targets = real_pairs
    assert len(sources) == len(df) == 52533
    assert sources == [s.strip() for s in df["source"]]
    assert targets == [t.strip() for t in df["target"]]


def test_read_pairs_csv_tsv_and_sniffed(tmp_path):
    (tmp_path / "p.csv").write_text(
        '\ufeffid,en,de\n1,"Hello, world.",Hallo Welt.\n\n2,  Yes. ,Ja.\n', encoding="utf-8"
    )
    assert read_pairs(tmp_path / "p.csv", "en", "de") == (
        ["Hello, world.", "Yes."],
        ["Hallo Welt.", "Ja."],
    )
    # TSV has no quoting: a '"' is text (Tatoeba and Anki exports)
    tsv = 'en\tde\nHe said "hi.\tEr sagte "hallo.\n"Go," he said.\t"Geh", sagte er.\n'
    (tmp_path / "p.tsv").write_text(tsv, encoding="utf-8")
    (tmp_path / "p.txt").write_text(tsv, encoding="utf-8")  # no known extension: sniffed
    want = (['He said "hi.', '"Go," he said.'], ['Er sagte "hallo.', '"Geh", sagte er.'])
    assert read_pairs(tmp_path / "p.tsv", "en", "de") == want
    assert read_pairs(tmp_path / "p.txt", "en", "de") == want
    (tmp_path / "crlf.tsv").write_bytes(tsv.replace("\n", "\r\n").encode("utf-8"))
    assert read_pairs(tmp_path / "crlf.tsv", "en", "de") == want


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


@pytest.mark.parametrize(
    "name, data, kwargs, pattern",
    [
        ("e.csv", "", {}, r"argument 'path' got an empty file \('.*e\.csv'\)"),
        ("e.csv", "\n \n", {}, r"empty file"),
        ("c.csv", "en,fr\nhi,salut\n", {}, (r"argument 'source_column' names no column of "
         r"'.*c\.csv': got 'source', expected one of \['en', 'fr'\]")),
        ("c.csv", "source,fr\nhi,salut\n", {}, r"argument 'target_column' names no column.*'target'"),
        ("r.csv", "source,target\na,b\nc\nd,e,f\n", {}, (r"'.*r\.csv'\) has rows of the wrong length: "
         r"got lines 3 \(1 fields\), 4 \(3 fields\), expected 2 fields")),
        ("u.csv", b"source,target\nok,fine\ncaf\xe9,x\n", {}, (r"'path': '.*u\.csv' is not UTF-8: byte "
         r"0xe9 at offset 25 \(line 3, column 4\)")),
        ("q.csv", 'source,target\n"open,x\n', {}, r"'.*q\.csv'\) is not valid CSV.*line"),
        ("d.csv", "source,source,target\na,b,c\n", {}, r"repeated column names \['source'\]"),
        ("x.csv", "source,target\na,\n,b\nc,d\n", {"empty": "error"}, (r"'.*x\.csv'\) has rows with an "
         r"empty 'source' or 'target' cell: lines 2, 3; expected a sentence on both sides")),
        ("o.csv", "source,target\na,b\n", {"min_rows": 2}, (r"'.*o\.csv'\) has too few sentence "
         r"pairs: got 1, expected at least 2")),
        ("o.csv", "source,target\n", {}, r"too few sentence pairs: got 0"),
        ("b.csv", "source,target\n" + "a,b\n" * 100, {"max_bytes": 100}, (r"'.*b\.csv' of 414 "
         r"bytes, more than the limit of 100 \(max_bytes\)")),
        ("l.csv", "source,target\nshort,x\n" + "y" * 10_001 + ",z\n", {}, (r"sentences over 10,000 "
         r"characters on lines 3")),
        ("s.csv", "source,target\na,b\n", {"target_column": "source"}, (r"'source_column' and "
         r"'target_column' both name 'source'")),
        ("m.csv", "source,target\na,b\n", {"empty": "drop"}, r"argument 'empty' got 'drop'"),
    ],
)  # fmt: skip
def test_read_pairs_bad_files(tmp_path, name, data, kwargs, pattern):
    path = _write(tmp_path, name, data)
    with pytest.raises(ValueError, match=pattern):
        read_pairs(path, **kwargs)


def test_read_pairs_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"argument 'path' got '.*nope\.csv', which does"):
        read_pairs(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match=r"argument 'path' got a directory"):
        read_pairs(tmp_path)


def test_read_pairs_skips_empty_sides_and_says_how_many(tmp_path):
    path = _write(tmp_path, "x.csv", "source,target\na,\n,b\nc,d\n ,  \n")
    said = []
    assert read_pairs(path, log=said.append) == (["c"], ["d"])
    assert len(said) == 1 and "skipped 2 row(s)" in said[0] and "lines 2, 3" in said[0]
    with pytest.warns(UserWarning, match=r"skipped 2 row\(s\) of '.*x\.csv'"):
        read_pairs(path)


# -- script detection ------------------------------------------------------------------------------
def test_detect_level(real_slice):
    sources, targets = real_slice
    assert detect_level(sources) == "word"
    assert detect_level(targets) == "char"
    assert detect_level(["これはペンです。", "カタカナ"]) == "char"
    assert detect_level(["안녕하세요 세계", "감사합니다"]) == "word"  # Korean writes spaces
    assert detect_level(["Guten Morgen, Welt!"]) == "word"
    # mixed scripts: 5 of 11 letters Chinese -> characters; 2 of 20 -> words
    assert detect_level(["我用Python写代码"]) == "char"
    assert detect_level(["The word 你好 means hello"]) == "word"
    assert detect_level(["2021-03-03", "42"]) == "char"  # no letters at all
    with pytest.raises(ValueError, match="argument 'texts' must be a list of str; got str"):
        detect_level("hello")


# -- tokenizers --------------------------------------------------------------------------------------
def test_char_round_trip_on_real_chinese(real_slice):
    _, targets = real_slice
    tok = Tokenizer("char").fit(targets)
    ids = tok.encode(targets)
    assert all(a.dtype == np.int32 and a[0] == BOS and a[-1] == EOS for a in ids)
    assert [tok.decode(a) for a in ids] == [folded(t) for t in targets]
    assert UNK not in np.concatenate(ids)


def test_word_round_trip_on_real_english(real_slice):
    sources, _ = real_slice
    tok = Tokenizer("word").fit(sources, min_count=1)
    decoded = [tok.decode(a) for a in tok.encode(sources)]
    # the tokens always come back: decoding never merges or splits a token
    assert [REFERENCE_WORD.findall(d) for d in decoded] == [
        REFERENCE_WORD.findall(s.lower()) for s in sources
    ]
    # and the text itself for nearly every sentence: only "a.m."-like spellings differ
    same = np.mean([d == folded(s).lower() for d, s in zip(decoded, sources)])
    assert same > 0.99, same
    mixed = 'Let\'s go, "now" (3.5 km)!'
    tok = Tokenizer("word").fit([mixed], min_count=1)
    assert tok.decode(tok.encode([mixed])[0]) == 'let\'s go, "now" (3.5 km)!'


def test_word_vocabulary_min_count_and_unknown_words():
    tok = Tokenizer("word").fit(["The cat sat.", "the dog sat.", "A cat."])  # min_count 2
    # counts: the 2, cat 2, sat 2, . 3; dog 1, a 1 -> dropped; order: count down, then sorted
    assert tok.id_to_token == ["<pad>", "<s>", "</s>", "<unk>", ".", "cat", "sat", "the"]
    ids = tok.encode(["The zebra sat?"], add_bos_eos=False)[0]
    assert ids.tolist() == [7, UNK, 6, UNK]
    assert tok.decode(ids) == "the <unk> sat <unk>"
    small = Tokenizer("word").fit(["The cat sat.", "the dog sat.", "A cat."], max_size=6)
    assert small.id_to_token[4:] == [".", "cat"]


def test_decode_stops_at_eos_and_drops_pad_bos():
    tok = Tokenizer("char").fit(["abc"])
    a, b, c = (tok.token_to_id[ch] for ch in "abc")
    assert tok.decode([BOS, a, PAD, b, EOS, c, c]) == "ab"
    assert tok.decode(np.array([[BOS, c, EOS, a]])[0]) == "c"
    assert tok.decode_batch(np.array([[BOS, a, EOS], [b, UNK, PAD]])) == ["a", "b<unk>"]
    with pytest.raises(ValueError, match=r"argument 'ids' must be ids in \[0, 7\).*got id 7"):
        tok.decode([BOS, 7])
    with pytest.raises(ValueError, match=r"argument 'ids' must be a 1-D sequence"):
        tok.decode([[1, 2]])
    with pytest.raises(ValueError, match=r"Tokenizer.encode: argument 'texts' must be a list of"):
        tok.encode("abc")
    with pytest.raises(ValueError, match=r"not fitted"):
        Tokenizer("word").encode(["a"])


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: Tokenizer("bytes"), r"Tokenizer: argument 'level' must be one of \['char', "),
        (lambda: Tokenizer("subword", subword_type="wordpiece"), r"argument 'subword_type'"),
        (lambda: Tokenizer().fit("a text"), r"argument 'texts' must be a list of str .*; got str"),
        (lambda: Tokenizer().fit([]), r"argument 'texts' must be at least one text"),
        (lambda: Tokenizer().fit(["a", 3]), r"must be a list of str; got a int at position 1"),
        (lambda: Tokenizer().fit(["a"], min_count=0), r"argument 'min_count' must be an int >= 1"),
        (lambda: Tokenizer().fit(["a"], min_count=True), r"'min_count' must be an int >= 1; got T"),
        (lambda: Tokenizer().fit(["a"], max_size=4), r"'max_size' must be None or an int >= 5"),
        (lambda: Tokenizer().fit(["a"], max_size=9.0), r"'max_size' must be None or an int >= 5"),
    ],
)
def test_fit_arguments_checked(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


_TEXT = st.text(
    alphabet=st.sampled_from(list("abcXYZ éü我們看！,.'\"-()?3 \t") + ["\u3000"]), max_size=40
)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(_TEXT, min_size=1, max_size=5))
def test_char_round_trip_hypothesis(texts):
    tok = Tokenizer("char").fit(texts)
    assert [tok.decode(a) for a in tok.encode(texts)] == [folded(t) for t in texts]


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(_TEXT, min_size=1, max_size=5))
def test_word_round_trip_hypothesis(texts):
    tok = Tokenizer("word").fit(texts, min_count=1)
    for t, ids in zip(texts, tok.encode(texts)):
        assert REFERENCE_WORD.findall(tok.decode(ids)) == REFERENCE_WORD.findall(t.lower())


def test_subword_round_trip_and_unknown(real_slice):
    sources, _ = real_slice
    for kind in ("unigram", "bpe"):
        tok = Tokenizer("subword", subword_type=kind).fit(sources, max_size=1000)
        assert 500 < tok.vocab_size <= 1000
        assert tok.id_to_token[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
        ids = tok.encode(sources)
        assert [tok.decode(a) for a in ids] == [folded(s) for s in sources]
        # subwords: fewer tokens than characters, more than words
        n = sum(a.size - 2 for a in ids)
        assert sum(len(REFERENCE_WORD.findall(s)) for s in sources) <= n
        assert n < sum(len(s) for s in sources) / 2
        pieces = tok.tokens("Let's try something.")
        assert "".join(pieces).replace("\u2581", " ").strip() == "Let's try something."
        unknown = tok.encode(["ok 我"], add_bos_eos=False)[0]  # no Chinese in the English side
        assert UNK in unknown.tolist()


def test_subword_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    with pytest.raises(MissingExtraError, match=r"needs the 'translate' extra: pip install "):
        Tokenizer("subword").fit(["a b c"])


@pytest.mark.parametrize("level", ["char", "word", "subword"])
def test_json_round_trip(real_slice, level):
    sources, targets = real_slice
    texts = targets if level == "char" else sources
    tok = Tokenizer(level).fit(texts, max_size=800 if level == "subword" else None)
    text = tok.to_json()
    assert "pickle" not in text and isinstance(text, str)
    back = Tokenizer.from_json(text)
    probe = texts[:200] + ["unseen ☃ text 我"]
    assert all(np.array_equal(a, b) for a, b in zip(back.encode(probe), tok.encode(probe)))
    assert back.id_to_token == tok.id_to_token
    assert back.to_json() == text


def _hostile():
    good = Tokenizer("char").fit(["abc"]).to_dict()
    import json

    def d(**kw):
        return json.dumps({**good, **kw})

    return [
        ("not json", r"Tokenizer.from_json: not valid UTF-8 JSON"),
        ("[1, 2]", r"argument 'd' must be a JSON object; got list"),
        (d(format="other"), r"argument 'format' must be 'lstmkit.translate.tokenizer' version 1"),
        (d(version=2), r"argument 'format' must be .* version 1; got .* version 2"),
        (d(level="bytes"), r"argument 'level' must be one of \['char', 'word', 'subword'\]"),
        (d(tokens="abc"), r"argument 'tokens' must be a list of str; got str"),
        (d(tokens=["<pad>", "<s>"]), r"argument 'tokens' must be from 4 to 1,000,000; got 2"),
        (d(tokens=["a", "<s>", "</s>", "<unk>"]), r"argument 'tokens' must be to start with"),
        (d(tokens=[*good["tokens"], 5]), r"argument 'tokens' must be a str of 1 to 1 .*int at id 7"),
        (d(tokens=[*good["tokens"], "ab"]), r"must be a str of 1 to 1 characters; got 'ab' at id 7"),
        (d(tokens=[*good["tokens"], "a"]), (r"argument 'tokens' must be each token once; got "
         r"repeated entries \['a'\]")),
        (d(level="subword", subword_type="wordpiece"), r"argument 'subword_type' must be one of"),
        (d(level="subword", subword_type="bpe", model="@@@"), r"argument 'model' must be a base64"),
        (d(level="subword", subword_type="bpe", model="AAAA"), r"the sentencepiece model does not"),
        ("[" * 50 + "]" * 50, r"nested 50 deep, more than the limit of 4"),
    ]  # fmt: skip


@pytest.mark.parametrize("text, pattern", _hostile())
def test_hostile_json_refused(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        Tokenizer.from_json(text)


def test_oversized_json_refused_before_parsing(monkeypatch):
    monkeypatch.setattr("lstmkit.apps.translate_tokens.MAX_JSON_BYTES", 1000)
    with pytest.raises(ValueError, match=r"1,010 bytes, more than the limit of 1,000"):
        Tokenizer.from_json('"' + "a" * 1008 + '"')


# -- pad_batch ---------------------------------------------------------------------------------------
def test_pad_batch():
    ids, lengths = pad_batch([np.array([5, 6, 7], np.int32), [8], np.array([], np.int32)])
    assert ids.dtype == np.int32 and ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0]
    assert pad_batch([[4]], pad=9)[0].tolist() == [[4]]
    assert pad_batch([[1, 2], [3]], pad=9)[0].tolist() == [[1, 2], [3, 9]]
    with pytest.raises(ValueError, match=r"argument 'seqs' must be a non-empty list .*empty list"):
        pad_batch([])
    with pytest.raises(ValueError, match=r"must hold 1-D integer arrays; got shape \(2,\) dtype "
                       r"float64 at position 1"):  # fmt: skip
        pad_batch([[1], [0.5, 2.0]])


# -- the validation split ----------------------------------------------------------------------------
def test_split_real_data_no_leak_and_all_references(real_pairs):
    sources, targets = real_pairs
    sp = split_validation(sources, targets, 2000, seed=3)
    assert len(sp.valid_sources) == 2000
    assert len(sp.train_sources) == len(sources) - 2000
    assert not set(sp.valid_sources) & set(sp.train_sources)
    assert not set(sp.valid_targets) & set(sp.train_targets)
    # together the two parts are the file's pairs, each once
    both = sorted(zip(sp.train_sources + sp.valid_sources, sp.train_targets + sp.valid_targets))
    assert both == sorted(zip(sources, targets))
    every = defaultdict(list)  # all references of each source in the whole file
    for s, t in zip(sources, targets):
        every[s].append(t)
    assert sorted(sp.eval_sources) == sorted(set(sp.valid_sources))
    for s, refs in zip(sp.eval_sources, sp.eval_references):
        assert sorted(refs) == sorted(every[s])
    assert max(map(len, sp.eval_references)) > 1  # Tatoeba has sources with several references


def test_split_deterministic_and_seeded(real_slice):
    sources, targets = real_slice
    a = split_validation(sources, targets, 300, seed=1)
    b = split_validation(sources, targets, 300, seed=1)
    c = split_validation(sources, targets, 300, seed=2)
    assert a == b
    assert a.valid_sources != c.valid_sources


def test_split_keeps_linked_pairs_together():
    # a-x, b-x, b-y are linked through x and b: one group of 3; c-z and d-w are alone
    sources = ["a", "b", "b", "c", "d"]
    targets = ["x", "x", "y", "z", "w"]
    for seed in range(20):
        sp = split_validation(sources, targets, 3, seed=seed)
        in_valid = set(sp.valid_sources)
        assert {"a", "b"} <= in_valid or not {"a", "b"} & in_valid
        assert len(sp.valid_sources) in (1, 2, 3)
    with pytest.raises(ValueError, match=r"argument 'n_valid' must be an int from 1 to 4 .*got 5"):
        split_validation(sources, targets, 5)
    with pytest.raises(ValueError, match=r"groups linked by shared sentences too large"):
        split_validation(["a", "a", "a"], ["x", "y", "z"], 1)
    with pytest.raises(ValueError, match=r"must have the same length; got 2 and 1"):
        split_validation(["a", "b"], ["x"], 1)


# -- scores --------------------------------------------------------------------------------------------
def test_scores_perfect_and_empty():
    refs = ["The cat sat on the mat.", "It rains today, again."]
    perfect = scores(refs, refs, "char")
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    assert perfect["exact"] == 1.0
    empty = scores(["", ""], refs, "word")
    assert empty["bleu"] == 0.0 and empty["chrf"] == 0.0 and empty["exact"] == 0.0


def test_bleu_hand_computed_with_brevity_penalty():
    hyp = "the cat sat on the mat"  # 6 tokens
    ref = "the cat sat on a red mat"  # 7 tokens
    # 1-grams: the x2 (clipped to 1 by the reference), cat, sat, on, mat -> 5 of 6
    # 2-grams: the cat, cat sat, sat on | on the, the mat -> 3 of 5
    # 3-grams: the cat sat, cat sat on | sat on the, on the mat -> 2 of 4
    # 4-grams: the cat sat on | cat sat on the, sat on the mat -> 1 of 3
    # brevity penalty: hypothesis 6 < reference 7 -> exp(1 - 7/6)
    want = math.exp(1 - 7 / 6) * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25 * 100
    got = scores([hyp], [[ref]], "word")
    assert got["bleu"] == pytest.approx(want, rel=1e-9)
    assert got["tokenize"] == "13a"
    assert copy_baseline([hyp], [ref], "word")["bleu"] == pytest.approx(want, rel=1e-9)
    # case is folded for word targets (their tokenizer lower-cases), kept otherwise
    assert scores([hyp], [ref.upper()], "word")["bleu"] == pytest.approx(want, rel=1e-9)
    assert scores([hyp], [ref.upper()], "subword")["bleu"] < 1


def test_bleu_multi_reference_with_variable_counts():
    # each hypothesis equals one of its references: 100, whatever the others say
    hyps = ["a b c d e", "f g h i j k"]
    refs = [["x y z w v", "a b c d e"], ["f g h i j k"]]
    assert scores(hyps, refs, "word")["bleu"] == pytest.approx(100.0)
    assert scores(hyps, [r[0] for r in refs], "word")["bleu"] < 70


def test_bleu_chinese_is_scored_per_character():
    ref = "我们明天去北京"  # 7 characters
    hyp = "我们明天去北海"  # the last one differs
    # zh tokenization: 7 tokens each; n-grams not touching the last character all match:
    # 1-grams 6/7, 2-grams 5/6, 3-grams 4/5, 4-grams 3/4; same length, no brevity penalty
    want = (6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25 * 100
    got = scores([hyp], [ref], "char")
    assert got["tokenize"] == "zh"
    assert got["bleu"] == pytest.approx(want, rel=1e-9)
    # 13a would see one token each, all different
    assert scores([hyp], [ref], "word")["bleu"] < 1


def test_exact_match_by_hand():
    hyps = ["a b", "c", "x  y", "q"]
    refs = [["A b"], ["d", "c"], ["x y"], ["r"]]
    # word targets fold case and whitespace: the first three match -> 3/4
    assert scores(hyps, refs, "word")["exact"] == 0.75
    # char targets keep case: "a b" != "A b" -> 2/4
    assert scores(hyps, refs, "char")["exact"] == 0.5
    with pytest.raises(ValueError, match=r"argument 'references' must have one entry per hyp"):
        scores(hyps, refs[:2], "word")
    with pytest.raises(ValueError, match=r"argument 'target_level' must be one of"):
        scores(hyps, refs, "zh")


# -- synthetic tasks --------------------------------------------------------------------------------------
def test_synthetic_reverse():
    sources, targets = synthetic_pairs("reverse", 500, seed=0)
    assert all(t == s[::-1] for s, t in zip(sources, targets))
    assert all(s.isalpha() and s.islower() and 2 <= len(s) <= 12 for s in sources)
    assert synthetic_pairs("reverse", 500, seed=0) == (sources, targets)
    assert synthetic_pairs("reverse", 500, seed=1) != (sources, targets)


def test_synthetic_dates():
    sources, targets = synthetic_pairs("dates", 600, seed=0)
    forms = {"%B %d, %Y": 0, "%d %b %Y": 0, "%Y-%m-%d": 0}
    for s, t in zip(sources, targets):
        parsed = []
        for form in forms:
            try:
                parsed.append((form, datetime.strptime(s, form).date()))
            except ValueError:
                pass
        assert len(parsed) == 1, s
        form, date = parsed[0]
        forms[form] += 1
        assert t == date.strftime("%Y-%m-%d")
        assert 1950 <= date.year <= 2049
    assert min(forms.values()) > 150  # the three forms all appear


_WORDS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
_WORDS.update(
    {
        w: 10 * i
        for i, w in enumerate(
            ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2
        )
    }
)


def _parse_number(text):
    """English words -> int, written for this test (the module spells; this reads)."""
    total = current = 0
    for word in text.replace("-", " ").split():
        if word == "hundred":
            current *= 100
        elif word == "thousand":
            total, current = total + current * 1000, 0
        else:
            current += _WORDS[word]
    return total + current


def test_synthetic_numbers():
    sources, targets = synthetic_pairs("numbers", 2000, seed=0)
    values = [int(t) for t in targets]
    assert all(t == str(v) for t, v in zip(targets, values))  # plain digits, no leading zeros
    assert [_parse_number(s) for s in sources] == values
    assert min(values) < 10 and max(values) >= 100_000
    assert "and" not in " ".join(sources).split()
    assert td.synthetic_pairs("numbers", 2000, seed=0) == (sources, targets)
    with pytest.raises(ValueError, match=r"argument 'task' must be one of"):
        synthetic_pairs("sort", 3)
    with pytest.raises(ValueError, match=r"argument 'n' must be an int from 1"):
        synthetic_pairs("dates", 0)


# -- the attention heatmap ----------------------------------------------------------------------------------
def _png_size(png):
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_attention_heatmap_png_with_chinese_tokens(tmp_path):
    from matplotlib.image import imread

    from lstmkit.inspect import attention

    source = ["let", "'", "s", "try", "something", "."]
    target = list("我們試試看！")
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(len(source)), size=len(target))  # (Tt, Ts) rows sum to 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attention._warned = False
        png = attention.plot_attention(w, source, target, "en -> zh")
        attention.plot_attention(w, source, target, "again")
    width, height = _png_size(png)
    assert (width, height) == (round((2.2 + 0.32 * 6) * 110), round((1.6 + 0.3 * 6) * 110))
    pixels = imread(io.BytesIO(png))
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].min() < 0.2  # the heaviest weights are drawn dark
    said = [str(c.message) for c in caught if "plot_attention" in str(c.message)]
    if attention._fonts()[0] is None:  # no CJK font installed: code points, said once
        assert len(said) == 1 and "U+6211" in said[0]
    else:
        assert said == []
    out = attention.save_attention(tmp_path / "sub" / "att.png", w, source, target)
    assert _png_size(out.read_bytes()) == (width, height)
    with pytest.raises(ValueError, match=r"argument 'weights' must have shape \(target tokens, "
                       r"source tokens\) = \(6, 6\); got \(6, 5\)"):  # fmt: skip
        attention.plot_attention(w[:, :5], source, target)
    # orientation: rows are target tokens, columns source tokens (a 3 x 7 case, not square)
    w37 = rng.dirichlet(np.ones(7), size=3)
    fig = attention.attention_figure(w37, list("abcdefg"), ["x", "y", "z"])
    ax = fig.axes[0]
    assert np.array_equal(np.asarray(ax.images[0].get_array()), w37)
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcdefg")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y", "z"]
    with pytest.raises(ValueError, match=r"argument 'weights' holds NaN"):
        attention.plot_attention(np.full((6, 6), np.nan), source, target)


def test_read_pairs_file_csv_roundtrip_of_writer(tmp_path):
    # pairs written by the csv module (quotes, commas, newlines inside a cell) read back as written
    pairs = [('Hi, "you".', "你好，你。"), ("two\nlines", "两行"), ("plain", "平")]
    with open(tmp_path / "w.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "target"])
        writer.writerows(pairs)
    assert read_pairs(tmp_path / "w.csv") == tuple(list(x) for x in zip(*pairs))


def test_importing_costs_no_optional_package():
    # sacrebleu, sentencepiece and matplotlib are imported by the functions that use them
    import subprocess

    code = (
        "import sys, lstmkit.apps.translate_data, lstmkit.inspect.attention;"
        "print(sorted(m for m in ('sacrebleu', 'sentencepiece', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_header_of_many_names_is_checked_in_linear_time(tmp_path):
    """A hostile header (300,000 names, one repeated) is refused at once: the repeated-name check
    counts names once (it was ``header.count`` per name, 9e10 steps here, an apparent hang).
    Run in a child process with a deadline far above the linear cost."""
    import subprocess
    import sys

    path = tmp_path / "wide.csv"
    names = [f"c{i}" for i in range(300_000)] + ["c7"]
    path.write_text(",".join(names) + "\n" + ",".join("x" * len(names)) + "\n", encoding="utf-8")
    code = (
        "import sys\nfrom lstmkit.apps.translate_data import read_pairs\n"
        "try:\n    read_pairs(sys.argv[1])\nexcept ValueError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "repeated column names ['c7']" in out.stdout, out.stderr[-2000:]
