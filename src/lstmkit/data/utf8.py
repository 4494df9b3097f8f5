"""Reading text files that must be UTF-8, with an error that says where they are not.

Python's own message (``'utf-8' codec can't decode byte 0xe4 in position 2: invalid
continuation byte``) names neither the file nor a position in it. ``read_utf8`` names the file,
the byte, its offset, line and column, and how to convert the file::

    argument 'corpus': 'notes.txt' is not UTF-8: byte 0xe4 at offset 1234 (line 5, column 12):
    invalid continuation byte; save it as UTF-8, e.g. iconv -f latin1 -t utf-8 notes.txt >
    notes.utf8.txt
"""

from __future__ import annotations

import os

from .csvio import DataFileNotFoundError

__all__ = ["read_utf8", "utf8_error"]


def read_utf8(path, arg="path", owner=None) -> str:
    """The text of ``path`` decoded as UTF-8 (a leading byte-order mark is dropped).

    Messages name the argument ``arg`` (and the function ``owner`` when given). A missing file
    raises ``DataFileNotFoundError``; an unreadable one or bytes that are not UTF-8 raise
    ``ValueError`` (see the module docstring). Line ends are returned as they are in the file.
    """
    path = os.fspath(path)
    what = f"{owner + ': ' if owner else ''}argument '{arg}'"
    if not os.path.isfile(path):
        raise DataFileNotFoundError(f"{what} must be an existing file; got {path!r}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:  # unreadable (permissions, a device): a message, not a traceback
        raise ValueError(f"{what}: cannot read {path!r}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")  # not utf-8-sig: its error offsets would skip the mark
    except UnicodeDecodeError as e:
        raise utf8_error(path, what, data, e) from None
    return text.removeprefix("\ufeff")


def utf8_error(path, what, data: bytes, err: UnicodeDecodeError) -> ValueError:
    """The ``ValueError`` for ``err``, raised while decoding all of ``data`` (the bytes of
    ``path``), so that ``err.start`` is an offset into the file; ``what`` starts the message."""
    start = err.start
    line = data.count(b"\n", 0, start) + 1
    column = start - (data.rfind(b"\n", 0, start) + 1) + 1  # in bytes, from 1
    stem, ext = os.path.splitext(os.path.basename(path))
    return ValueError(
        f"{what}: {path!r} is not UTF-8: byte 0x{data[start]:02x} at offset {start} "
        f"(line {line}, column {column}): {err.reason}; save it as UTF-8, e.g. "
        f"iconv -f latin1 -t utf-8 {os.path.basename(path)} > {stem}.utf8{ext}"
    )
