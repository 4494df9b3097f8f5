"""Every ``lstmkit forecast`` argument is checked before any work: a bad value stops the command
with status 2 and one message naming the argument, the value and what is allowed; no data file
is read, no output written, nothing falls back to a default.

Witnesses: the exit status, the exact argparse message, and files that must not appear.
"""

from __future__ import annotations

import pytest

from lstmkit.cli import main

# argument, bad value, what the message says is allowed
BAD = [
    ("--lookback", "0", "an integer >= 1"),
    ("--lookback", "-3", "an integer >= 1"),
    ("--lookback", "2.5", "an integer >= 1"),
    ("--horizon", "0", "an integer >= 1"),
    ("--season", "0", "an integer >= 1"),
    ("--units", "0", "an integer from 1 to 4096"),
    ("--units", "100000", "an integer from 1 to 4096"),
    ("--dropout", "-0.1", "a number with 0 <= p < 1"),
    ("--dropout", "1", "a number with 0 <= p < 1"),
    ("--dropout", "nan", "a number with 0 <= p < 1"),
    ("--dropout", "half", "a number with 0 <= p < 1"),
    ("--epochs", "0", "an integer >= 1"),
    ("--patience", "0", "an integer >= 1"),
    ("--batch-size", "0", "an integer >= 1"),
    ("--learning-rate", "0", "a finite number > 0"),
    ("--learning-rate", "-1e-3", "a finite number > 0"),
    ("--learning-rate", "inf", "a finite number > 0"),
    ("--learning-rate", "nan", "a finite number > 0"),
    ("--seed", "-1", "an integer >= 0"),
    ("--seed", "x", "an integer >= 0"),
    ("--max-rows", "0", "an integer >= 1"),
    ("--transform", "cube", "invalid choice: 'cube'"),
    ("--normalize", "zscore", "invalid choice: 'zscore'"),
    ("--fill", "ffill", "invalid choice: 'ffill'"),
    ("--trend", "damped", "invalid choice: 'damped'"),
]


@pytest.mark.parametrize("arg, value, allowed", BAD)
def test_train_refuses_bad_values_at_the_door(tmp_path, capsys, arg, value, allowed):
    out = tmp_path / "m.lstmkit"
    argv = ["forecast", "train", str(tmp_path / "not-read.csv"), "--column", "y"]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(out), f"{arg}={value}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    if allowed.startswith("invalid choice"):
        assert err.startswith(f"lstmkit forecast train: error: argument {arg}: {allowed}")
    else:
        assert err == f"lstmkit forecast train: error: argument {arg}: expected {allowed}, got " \
                      f"{value!r} (see lstmkit forecast train --help)"  # fmt: skip
    assert not out.exists() and not (tmp_path / "not-read.csv").exists()


@pytest.mark.parametrize("argv", [["forecast", "demo", "--seed", "-2"],
                                  ["forecast", "demo", "--seed", "1.5"]])  # fmt: skip
def test_demo_refuses_a_negative_seed(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "demo")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --seed: expected an integer >= 0, got '{argv[-1]}'" in err
    assert not (tmp_path / "demo").exists()


def test_predict_refuses_a_bad_fill_before_loading(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["forecast", "predict", "m", "d.csv", "--out", str(tmp_path / "f.csv"), "--fill", "x"])
    assert e.value.code == 2 and "argument --fill: invalid choice: 'x'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arg, value, parsed",
    [
        ("--dropout", "0", 0.0),
        ("--dropout", "0.999", 0.999),
        ("--learning-rate", "1e-9", 1e-9),
        ("--units", "4096", 4096),
        ("--seed", "0", 0),
        ("--max-rows", "1", 1),
        ("--trend", "select", "select"),
        ("--trend", "off", "off"),
        ("--trend", "hedge", "hedge"),
        ("--trend", "auto", "auto"),
    ],
)
def test_edge_values_that_are_allowed_pass_the_door(arg, value, parsed):
    from lstmkit.cli import build_parser

    argv = ["forecast", "train", "d.csv", "--column", "y", "--out", "m", arg, value]
    args = build_parser().parse_args(argv)
    assert getattr(args, arg[2:].replace("-", "_")) == parsed


def test_max_rows_too_few_for_lookback_and_horizon(tmp_path, capsys):
    out = tmp_path / "m.lstmkit"
    argv = ["forecast", "train", str(tmp_path / "not-read.csv"), "--column", "y"]
    argv += ["--lookback", "24", "--horizon", "12", "--max-rows", "50", "--engine", "single"]
    argv += ["--out", str(out)]
    assert main(argv) == 2
    # the training part (70%) needs 24 + 12 rows: 36 / 0.7 -> 52; test and validation 12 / 0.15
    assert capsys.readouterr().err.strip() == (
        "lstmkit forecast: error: argument '--max-rows' got 50, expected at least 80 for "
        "--lookback 24 and --horizon 12 (the training part, 70% of the rows, needs lookback + "
        "horizon rows, validation and test horizon rows each)"
    )
    assert not out.exists()


def test_trend_reaches_the_config():
    from lstmkit.cli import build_parser
    from lstmkit.cli.forecast import _config

    argv = ["forecast", "train", "d.csv", "--out", "m", "--trend", "select"]
    assert _config(build_parser().parse_args(argv)).trend == "select"
