"""Models: ``from lstmkit.models import Sequential``."""

from .sequential import Sequential

__all__ = ["Sequential"]
