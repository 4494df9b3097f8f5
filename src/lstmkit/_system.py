"""Facts about the machine this process runs on, read in one place."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask on Linux, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def skip_final_collection() -> None:
    """Called as a command-line process ends: the objects alive now (numba's types and compiled
    functions, the kernels, the modules) move to the garbage collector's permanent generation
    (``gc.freeze``), so that the interpreter's finalization does not walk and free them one by
    one. That walk took 0.2-0.3 s of a 1.5 s ``lstmkit forecast predict`` (docs/forecast.md,
    "Outside the training steps"); the memory goes back to the system with the process anyway.
    The ``atexit`` handlers, the flush of stdout and stderr and the closing of files freed by
    their reference counts still run; what is left is the finalizers of objects in reference
    cycles (a file left open in a cycle would not be flushed: lstmkit's own outputs are written
    atomically and closed before). Only for a process's entry points (``python -m lstmkit``,
    the ``lstmkit`` script, the forecast children), never inside a library call."""
    import gc

    gc.freeze()
