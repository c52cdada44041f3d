"""The event-driven simulator core: layers, event propagation, per-sample active masks, streaming."""
from .events import Events
from .network import Layer, Network
from .result import NetworkResult, StreamChunk
from .stream import NetworkState, NetworkStream

__all__ = ["Events", "Layer", "Network", "NetworkResult", "NetworkState", "NetworkStream", "StreamChunk"]
