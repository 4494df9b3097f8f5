"""Kernel caches no installation can use any more, found and removed.

Each installation of lstmkit caches its compiled kernels in its own directory,
``<base>/numba-<lstmkit>-<numba>/<hash>`` (:func:`lstmkit.ops.compiled.cache_dir`; the hash
covers where the ``ops/fast`` sources are, their contents and their modification times), about
7 MB a CPU and float type. A removed virtual environment, a reinstall or an edited source tree
leaves its directory behind. The background compiler records in each directory it fills where
its sources were (``source.json``); after a successful compilation it removes every sibling whose
sources are gone or now hash to another directory (:func:`prune`). A directory without that
record (made by another tool or an older lstmkit) is not judged; nor is one being compiled into
(a lock held) or written in the last :data:`GRACE_SECONDS`. Under a tag whose numba version an
installation no longer has, a directory is kept while its sources are unchanged: which numba that
installation now imports is not known from here.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

SOURCE = "source.json"  # {"fast_dir": "<the ops/fast directory cached here>", "scheme": 1}
SCHEME = 1  # how hash_of names a cache: a record of another scheme is not judged by this one
GRACE_SECONDS = 600.0  # a directory touched more recently than this is left alone
_HASH = re.compile(r"[0-9a-f]{16}")


def record(cache: Path, fast_dir: Path) -> None:
    """Write ``cache/source.json`` naming the sources cached there (once)."""
    from .._atomic import atomic_write

    path = cache / SOURCE
    if not path.is_file():
        text = json.dumps({"fast_dir": str(fast_dir), "scheme": SCHEME})
        atomic_write(path, lambda p: Path(p).write_text(text))


def why_stale(cache: Path, hash_of: Callable[[Path], str]) -> str | None:
    """Why no installation can use ``cache`` any more, or None (usable, or not ours to judge)."""
    try:
        rec = json.loads((cache / SOURCE).read_text())
        fast_dir, scheme = rec["fast_dir"], rec["scheme"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(fast_dir, str) or scheme != SCHEME:
        return None
    src = Path(fast_dir)
    if not src.is_dir():
        return f"its sources {src} are gone"
    with contextlib.suppress(OSError):
        if hash_of(src) != cache.name:
            return f"its sources {src} have changed"
    return None


def _recent(cache: Path, now: float) -> bool:
    newest = max((p.stat().st_mtime for p in cache.rglob("*")), default=cache.stat().st_mtime)
    return now - newest < GRACE_SECONDS


@contextlib.contextmanager
def _all_locks(cache: Path):
    """Every compile lock of ``cache`` taken (held until the block ends, so that no compilation
    starts in it meanwhile), or None when some process holds one."""
    try:
        import fcntl
    except ImportError:  # no locks to read: judge by the grace period alone
        yield []
        return
    with contextlib.ExitStack() as stack:
        for lock in cache.glob("*.lock"):
            fh = stack.enter_context(open(lock, "a+"))
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
        yield stack


def prune(
    base: Path, keep: Path, hash_of: Callable[[Path], str], now: float | None = None
) -> list[tuple[Path, str]]:
    """Remove the stale cache directories under ``base`` other than ``keep``; return each
    removed directory with the reason."""
    now = time.time() if now is None else now
    removed = []
    for cache in sorted(base.glob("numba-*/*")):
        if cache == keep or not cache.is_dir() or not _HASH.fullmatch(cache.name):
            continue
        try:  # a cache that changes under us (another prune, a compilation) is left alone
            why = why_stale(cache, hash_of)
            if why is None or _recent(cache, now):
                continue
            with _all_locks(cache) as locks:
                if locks is None:
                    continue
                shutil.rmtree(cache, ignore_errors=True)
        except OSError:
            continue
        if not cache.exists():
            removed.append((cache, why))
    for tag in base.glob("numba-*"):
        with contextlib.suppress(OSError):
            tag.rmdir()  # only if empty
    return removed
