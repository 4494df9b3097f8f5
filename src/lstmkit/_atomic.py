"""Atomic file writes: write a temporary file beside the target, fsync, rename over it.

A crash mid-write never leaves a half-written file, and a failed write never destroys the file
that was there. NumPy and the standard library only, so every layer of lstmkit can use it.
"""

from __future__ import annotations

import os
import secrets


def atomic_write(path, write_fn, suffix=".tmp"):
    """Call ``write_fn(tmp_path)`` then rename ``tmp_path`` over ``path``. On any exception,
    Ctrl-C included, the temporary file is removed and ``path`` is left as it was."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".{os.path.basename(path)}.{secrets.token_hex(6)}{suffix}")
    try:
        # O_EXCL on a random name never clobbers anything; 0o666 lets the umask apply as usual
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        mode = _mode_of(path, tmp)
        write_fn(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):  # also when Ctrl-C came right after creating it
            os.unlink(tmp)
        raise


def _mode_of(path, tmp) -> int:
    """The permission bits the written file gets: the replaced file's, else those the umask
    leaves of 0o666 (read from ``tmp`` as just created). Some writers (safetensors) create
    their file anew with 0o600, which would otherwise make every model file private."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return os.stat(tmp).st_mode & 0o7777
