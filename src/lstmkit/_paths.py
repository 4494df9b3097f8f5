"""Checks on a command's paths, run before it does any work.

Two promises of the command line: an output never replaces an input, and a command that cannot
write its outputs says so before it trains, not after. Each command declares what it reads and
writes on its parser::

    p.set_defaults(func=cmd_train, reads=("data",), writes=("--out",))

``reads`` and ``writes`` name arguments (``"--out"`` is read from ``args.out``); ``writes`` may
instead be a function ``args -> [Output, ...]`` for outputs derived from the arguments (a default
path, files inside a directory). ``lstmkit.cli.main`` calls :func:`check_args` before the command.

Everything here is cheap: ``os.stat`` calls, one directory listing for a directory output with
patterns, and one empty probe file per directory written to. No file is read.

Missing directories are not an error: they are created when the outputs are written (as
``atomic_write`` and Keras' ``ModelCheckpoint`` do; the default output locations ``out/...`` do
not exist on a fresh checkout). The check makes sure they can be: the nearest existing ancestor
must be a writable directory.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Output:
    """``arg`` as the user knows it (``"--out"``, ``"out"``, ``"--plot (default)"``) and the path
    written. With ``names`` (glob patterns) ``path`` is a directory the command writes files of
    those names into."""

    arg: str
    path: str
    names: tuple = ()


def _attr(arg):
    return arg.lstrip("-").replace("-", "_")


def _values(args, arg):
    value = getattr(args, _attr(arg), None)
    values = value if isinstance(value, (list, tuple)) else [value]
    return [os.fspath(v) for v in values if v is not None]


def declared(args):
    """``(inputs [(arg, path)], outputs [Output])`` that ``args`` declares (see the module doc)."""
    inputs = [(arg, v) for arg in getattr(args, "reads", ()) for v in _values(args, arg)]
    spec = getattr(args, "writes", ())
    if callable(spec):
        outputs = list(spec(args))
    else:
        outputs = [Output(arg, v) for arg in spec for v in _values(args, arg)]
    return inputs, outputs


def check_args(args):
    """Raise ``ValueError`` (one line naming the argument and the paths) when an output would
    replace an input or another output, or cannot be written; returns the outputs."""
    inputs, outputs = declared(args)
    check_paths(inputs, outputs)
    return outputs


def check_paths(inputs, outputs):
    for out in outputs:
        for arg, path in inputs:
            _refuse_input(out, arg, path)
    for k, out in enumerate(outputs):
        for other in outputs[:k]:
            _refuse_twice(out, other)
    probed = {}
    for out in outputs:
        _check_writable(out, probed)


# -- an output that is an input -----------------------------------------------------------------
def _stat(path):
    try:
        return os.stat(path)  # follows symlinks: a link and its target are one file
    except (OSError, ValueError):
        return None


def _same(a, b):
    return a is not None and b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _how(out_path, in_path):
    """Why two different spellings are one file, for the message."""
    if os.path.islink(out_path) or os.path.islink(in_path):
        return " (through a symbolic link)"
    if os.path.realpath(out_path) != os.path.realpath(in_path):
        return " (a hard link)"
    return ""


def _refuse_input(out, in_arg, in_path):
    st = _stat(in_path)
    if st is None:
        return  # an input that does not exist cannot be lost (reading it fails on its own)
    for path in [out.path, *_matching(out)]:
        if _same(_stat(path), st):
            raise ValueError(
                f"argument '{out.arg}' {path!r} is the same file as input '{in_arg}' "
                f"{in_path!r}{_how(path, in_path)}; refusing to overwrite an input, choose "
                "another output path"
            )


def _matching(out):
    """Existing files in a directory output whose names the command writes."""
    if not out.names or not os.path.isdir(out.path):
        return []
    with os.scandir(out.path) as entries:
        names = [e.name for e in entries]
    return [
        os.path.join(out.path, n) for n in names if any(fnmatch.fnmatch(n, p) for p in out.names)
    ]


def _key(path):
    return os.path.realpath(os.path.abspath(path))


def _refuse_twice(out, other):
    if _key(out.path) == _key(other.path) or _same(_stat(out.path), _stat(other.path)):
        raise ValueError(
            f"argument '{out.arg}' {out.path!r} is the same file as argument '{other.arg}' "
            f"{other.path!r}; one would overwrite the other, choose another path"
        )


# -- an output that cannot be written -----------------------------------------------------------
def _check_writable(out, probed):
    path = os.path.abspath(out.path)
    if out.names:
        directory = path
    elif os.path.isdir(path):
        raise ValueError(f"argument '{out.arg}' got a directory {out.path!r}, expected a file path")
    else:
        directory = os.path.dirname(path)
        if os.path.isfile(path) and not os.path.islink(path) and not os.access(path, os.W_OK):
            # a rename would replace it, but read-only says "keep", and some writers open it
            raise ValueError(f"argument '{out.arg}' {out.path!r} is a read-only file")
    existing = directory
    while not os.path.lexists(existing):  # missing directories are created when writing
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(
            f"argument '{out.arg}' {out.path!r} cannot be written: {existing!r} is not a directory"
        )
    if existing not in probed:
        probed[existing] = _probe(existing)
    if probed[existing]:
        raise ValueError(
            f"argument '{out.arg}' {out.path!r} cannot be written: directory {existing!r} is "
            f"not writable ({probed[existing]})"
        )


def _probe(directory):
    """``""`` when a file can be created in ``directory``, else the reason. Creating one is the
    only faithful test: it honours ACLs, read-only mounts and root, which ``os.access`` may not."""
    tmp = os.path.join(directory, f".lstmkit-probe-{secrets.token_hex(6)}")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        return os.strerror(e.errno or errno.EACCES).lower()
    os.unlink(tmp)
    return ""


# -- what an interrupted command left -----------------------------------------------------------
def _files(outputs):
    return [p for out in outputs for p in (_matching(out) if out.names else [out.path])]


def snapshot(outputs):
    """``{path: (device, inode, mtime, size) or None}`` of the output files, to tell later which
    were written (an atomic write gives a file a new inode)."""
    snap = {}
    for path in _files(outputs):
        st = _stat(path)
        snap[path] = None if st is None else (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    return snap


def written_since(snap):
    """The paths of ``snap`` whose file changed since."""
    return [p for p, before in snap.items() if snapshot([Output("", p)])[p] != before]
