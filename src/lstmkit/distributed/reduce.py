"""Summing the workers' weighted gradients, then the same update on every replica.

Three ways, each returning the refs of every worker's ``apply`` (the step is done when they are):

- ``collective``: ``ray.util.collective`` allreduce (torch.distributed's gloo) inside one call
  per worker (:meth:`Worker.step_collective`); the bytes go worker to worker over TCP.
- ``tree``: through the object store. Level by level, worker ``i`` adds its partner's partial sum
  (``log2 N`` levels); every worker then reads the root's sum (one object, N readers).
- ``ring``: through the object store, the bandwidth-optimal pattern: the vector cut in ``N``
  chunks, ``N - 1`` reduce-scatter rounds (each worker adds the chunk its left neighbour sends)
  and ``N - 1`` all-gather rounds; each worker sends ``2 (N - 1) / N`` of the vector in all.

The driver only composes object refs: no gradient passes through it, and Ray runs each actor's
calls in the order they were submitted, so the rounds need no barrier of their own.
"""

from __future__ import annotations

REDUCES = ("auto", "collective", "ring", "tree")


def tree(workers, flats):
    """``flats``: one ref per worker (its weighted gradient) -> refs of every ``apply``."""
    nodes = list(enumerate(flats))  # (worker that holds the partial sum, its ref)
    while len(nodes) > 1:
        pairs = [
            (nodes[j][0], workers[nodes[j][0]].add.remote(nodes[j][1], nodes[j + 1][1]))
            for j in range(0, len(nodes) - 1, 2)
        ]
        nodes = pairs + ([nodes[-1]] if len(nodes) % 2 else [])
    total = nodes[0][1]
    return [w.apply.remote(total) for w in workers]


def ring(workers):
    """Ring allreduce of the workers' ``buf`` (already filled by ``grad``) -> refs of ``apply``."""
    n = len(workers)
    chunk = list(range(n))  # the chunk worker i sends in the current round
    sends = [w.ring_chunk.remote(i) for i, w in enumerate(workers)]
    for method in ("ring_reduce", "ring_set"):  # reduce-scatter, then all-gather
        for _ in range(n - 1):
            sends = [
                getattr(workers[j], method).remote(chunk[j - 1], sends[j - 1]) for j in range(n)
            ]
            chunk = [chunk[j - 1] for j in range(n)]  # j - 1 = -1 wraps to the last worker
    return [w.apply.remote() for w in workers]
