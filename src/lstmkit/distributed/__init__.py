"""Beyond one machine, on Ray (``pip install 'lstmkit[ray]'``).

- :class:`RayStrategy`: synchronous data-parallel training,
  ``model.fit(x, y, ..., distribute=RayStrategy(num_workers=4, address="auto"))``. N actors each
  hold a shard of the rows and a replica of the model; at every step each runs lstmkit's own
  forward/backward on its part of the global batch, the gradients are averaged weighted by the
  parts' sizes, and every replica applies the same optimizer update. The result equals a local
  ``fit`` with the same batch size, to float32 rounding.
- ``train_translator(..., distribute=RayStrategy(N))`` (``translate train --engine ray``): the
  same for the translator, its gradients averaged weighted by target tokens
  (:mod:`lstmkit.distributed.translate`).
- :func:`predict_panel`: a panel's forecasts computed by Ray tasks, one per group of series,
  the model put once in the object store, the rows streamed into one CSV (written atomically).

Importing this package does not import Ray; the functions that need it do, and say which extra
to install when it is missing. The design, measurements and scaling model: ``docs/distributed.md``.
"""

from .panel import predict_panel
from .strategy import RayStrategy

__all__ = ["RayStrategy", "predict_panel"]
