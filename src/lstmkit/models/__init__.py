"""Models: ``from lstmkit.models import Model, Sequential, load_model``."""

from ..saving import load_model, register_model
from .functional import Model
from .sequential import Sequential

register_model("Sequential", Sequential)
register_model("Functional", Model)
register_model("Model", Model)

__all__ = ["Model", "Sequential", "load_model"]
