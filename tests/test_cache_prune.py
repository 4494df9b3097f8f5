"""Stale kernel caches (``lstmkit.ops.cache_prune``): a cache whose installation is gone or has
changed is removed after a compilation; everything else is left alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lstmkit.ops import cache_prune, compiled

OLD = time.time() - 10 * cache_prune.GRACE_SECONDS  # long before the grace period


def _install(root: Path) -> Path:
    """A copy of the kernels' sources, as another installation would hold them."""
    fast = root / "lstmkit" / "ops" / "fast"
    shutil.copytree(compiled._FAST_DIR, fast, ignore=shutil.ignore_patterns("__pycache__"))
    return fast


def _cache(base: Path, fast: Path | None, name: str | None = None, tag="numba-0.1.0-0.68.1"):
    """A filled cache directory under ``base`` for the sources ``fast`` (None: no record),
    dated :data:`OLD`."""
    d = base / tag / (name or compiled.hash_of(fast))
    d.mkdir(parents=True)
    (d / "lstm_fm.lstm_infer-1.py311.nbi").write_bytes(b"index")
    if fast is not None:
        record = {"fast_dir": str(fast), "scheme": cache_prune.SCHEME}
        (d / cache_prune.SOURCE).write_text(json.dumps(record))
    for p in [*d.iterdir(), d]:
        os.utime(p, (OLD, OLD))
    return d


def test_prune_removes_the_caches_of_removed_and_changed_installations_only(tmp_path):
    base = tmp_path / "cache"
    keep_src, live_src = _install(tmp_path / "me"), _install(tmp_path / "live")
    gone_src, changed_src = _install(tmp_path / "gone"), _install(tmp_path / "changed")
    keep = _cache(base, keep_src)
    live = _cache(base, live_src)  # another installation, untouched: in use
    gone = _cache(base, gone_src)
    changed = _cache(base, changed_src, tag="numba-0.1.0-0.67.0")
    unknown = _cache(base, None, name="0123456789abcdef")  # no record: not ours to judge
    other = _cache(base, _install(tmp_path / "other"), name="00000000000000ff")
    (other / cache_prune.SOURCE).write_text(
        json.dumps({"fast_dir": str(tmp_path / "gone-too"), "scheme": cache_prune.SCHEME + 1})
    )  # another lstmkit's way of naming caches: not judged by this one's
    os.utime(other / cache_prune.SOURCE, (OLD, OLD))
    shutil.rmtree(tmp_path / "gone")  # that venv was deleted
    edited = min(changed_src.glob("*.py"))
    edited.write_text(edited.read_text() + "\n# edited\n")  # that tree was edited in place
    foreign = base / "numba-0.1.0-0.68.1" / "notes"  # not a cache directory of ours
    foreign.mkdir()

    removed = cache_prune.prune(base, keep, compiled.hash_of)

    assert sorted(p for p, _ in removed) == sorted([gone, changed])
    reasons = dict(removed)
    assert "are gone" in reasons[gone] and str(gone_src) in reasons[gone]
    assert "have changed" in reasons[changed]
    assert not gone.exists() and not changed.exists()
    assert not changed.parent.exists()  # its tag held nothing else
    for d in (keep, live, unknown, other, foreign):
        assert d.is_dir()


def test_prune_leaves_a_stale_cache_that_is_recent_or_being_compiled_into(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    base = tmp_path / "cache"
    keep = _cache(base, _install(tmp_path / "me"))
    recent = _cache(base, _install(tmp_path / "recent"))
    locked = _cache(base, _install(tmp_path / "locked"))
    shutil.rmtree(tmp_path / "recent")
    shutil.rmtree(tmp_path / "locked")
    (recent / "ready-float32-x.json").write_text("{}")  # written just now
    lock = locked / "lock-float32-x.lock"
    lock.write_text("")
    os.utime(lock, (OLD, OLD))
    hold = (
        "import fcntl, sys, time\nfh = open(sys.argv[1], 'a+')\n"
        "fcntl.flock(fh, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)"
    )
    holder = subprocess.Popen(  # another process compiling into it: holds the lock
        [sys.executable, "-c", hold, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cache_prune.prune(base, keep, compiled.hash_of) == []
        assert recent.is_dir() and locked.is_dir()
    finally:
        holder.kill()
        holder.wait()
    with open(lock, "a+") as fh:  # the lock is free again: the next prune removes it
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    gone = cache_prune.prune(
        base, keep, compiled.hash_of, now=time.time() + 2 * cache_prune.GRACE_SECONDS
    )
    assert sorted(p for p, _ in gone) == sorted([recent, locked])


def test_the_compiler_records_its_sources_and_prunes_after_a_compilation(monkeypatch, tmp_path):
    """The background worker writes ``source.json`` into the cache it fills, and after its
    ready marker removes a stale sibling (the warm-up stubbed: nothing is compiled)."""
    from lstmkit.ops.fast import warmup

    monkeypatch.setenv(compiled.ENV_DIR, str(tmp_path / "cache"))
    compiled._WRITABLE.clear()
    tag = compiled.cache_dir().parent.name
    stale = _cache(compiled.base_dir(), _install(tmp_path / "old"), "fedcba9876543210", tag)
    shutil.rmtree(tmp_path / "old")
    monkeypatch.setattr(warmup, "run", lambda *a, **k: None)
    try:
        assert compiled._worker("float32") == 0
        record = json.loads((compiled.cache_dir() / cache_prune.SOURCE).read_text())
        assert Path(record["fast_dir"]) == compiled._FAST_DIR
        assert compiled.ready("float32")
        assert not stale.exists()
        # and the record names sources that hash to the directory it sits in: never pruned
        assert cache_prune.why_stale(compiled.cache_dir(), compiled.hash_of) is None
    finally:
        compiled._WRITABLE.clear()
