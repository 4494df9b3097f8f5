"""A check run in a forked child (POSIX): what the child sees of state the parent had."""

from __future__ import annotations

import os
import traceback


def in_forked_child(check) -> bool:
    """Fork; the child runs ``check()`` and leaves at once (no test teardown, no atexit), its
    exit status saying whether ``check()`` returned True (an exception is printed, and False).
    Returns that answer in the parent."""
    pid = os.fork()
    if pid == 0:  # the child
        ok = False
        try:
            ok = bool(check())
        except BaseException:  # noqa: BLE001  (a child never unwinds into the test runner)
            traceback.print_exc()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
