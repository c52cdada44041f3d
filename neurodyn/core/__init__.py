"""The event-driven simulator core: layers, event propagation, per-sample active masks."""
from .events import Events
from .network import Layer, Network, NetworkResult

__all__ = ["Events", "Layer", "Network", "NetworkResult"]
