"""The event-driven simulator core: layers, event propagation, per-sample active masks, streaming."""
from .events import Events
from .network import Conv, Layer, Network, Pool
from .result import NetworkResult, StreamChunk
from .stream import NetworkState, NetworkStream

__all__ = ["Conv", "Events", "Layer", "Network", "Pool", "NetworkResult", "NetworkState", "NetworkStream", "StreamChunk"]
