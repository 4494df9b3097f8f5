"""What Keras-style objects share (initializers, regularizers, constraints, losses, metrics):
``get_config()`` returns the constructor arguments and ``from_config(cfg)`` is ``cls(**cfg)``;
the serialized form ``{"module", "class_name", "config", "registered_name"}``; and ``get``'s
lookups by name and by config dict, with errors naming the argument."""

from __future__ import annotations


class Configurable:
    """The config is the constructor (Keras' ``get_config`` / ``from_config``)."""

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def keras_config(obj, module) -> dict:
    """``obj`` as Keras serializes it (``module`` e.g. ``"keras.initializers"``)."""
    return {
        "module": module,
        "class_name": type(obj).__name__,
        "config": obj.get_config(),
        "registered_name": None,
    }


def from_name(name, lookup: dict, kind, arg, expected):
    """``lookup[name]()``; an unknown name: ValueError naming ``arg`` and what is ``expected``."""
    make = lookup.get(name)
    if make is None:
        raise ValueError(f"argument '{arg}': unknown {kind} {name!r}; expected {expected}")
    return make()


def from_config_dict(spec, classes: dict, kind, arg, aliases=None, check=None):
    """``{"class_name": ..., "config": {...}}`` -> ``cls.from_config(config)``; the class looked
    up in ``classes`` (then ``aliases``), ``check(config)`` run before construction."""
    name, cfg = spec.get("class_name"), spec.get("config") or {}
    cls = classes.get(name) or (aliases or {}).get(name)
    if cls is None or not isinstance(cfg, dict):
        raise ValueError(
            f"argument '{arg}': unknown {kind} config {spec!r:.200}; expected class_name in "
            f"{sorted(classes)}"
        )
    if check is not None:
        check(cfg)
    try:
        return cls.from_config(cfg)
    except TypeError as e:
        raise ValueError(f"argument '{arg}': invalid config for {name}: {e}") from None
