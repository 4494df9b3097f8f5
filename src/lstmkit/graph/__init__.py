"""The layer graph: symbolic tensors (``Input``), nodes, and the one core that runs them."""

from .network import Network, Tape
from .symbolic import Input, InputLayer, Node, SymbolicTensor, is_symbolic

__all__ = ["Input", "InputLayer", "Network", "Node", "SymbolicTensor", "Tape", "is_symbolic"]
