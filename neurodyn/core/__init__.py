"""The event-driven simulator core: layers, event propagation, per-sample active masks."""
from .network import Layer, Network, NetworkResult

__all__ = ["Layer", "Network", "NetworkResult"]
