"""What a run of the event core returns: ``NetworkResult`` (a whole run) and ``StreamChunk``
(one chunk of a stream, ``Network.stream``); ``StreamChunk.join`` gives the whole run back."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError


@dataclass
class NetworkResult:
    """out [T, B, N_out] (spikes or readout membrane; 0 after a sample's last step), spike
    counts per layer ([B] each), steps run per sample [B] (the exit step under early exit),
    prediction [B] (argmax of the readout summed over the steps run: frozen at the exit),
    and per-layer recordings [T, B, N] if asked for.  Under early exit also the confidence
    at the last step run [B] and, when recording, the confidence after every step [T, B]
    (0 after the exit)."""

    out: torch.Tensor
    counts: list[torch.Tensor]
    steps: torch.Tensor
    records: list[torch.Tensor] = field(default_factory=list)
    pred: torch.Tensor | None = None
    confidence: torch.Tensor | None = None
    confidence_trace: torch.Tensor | None = None


@dataclass
class StreamChunk(NetworkResult):
    """One chunk of t steps of a stream.

    The ``NetworkResult`` fields cover this chunk: out [t, B, N_out], spikes per layer in it
    ([B] each), steps run in it [B], records [t, B, N] and confidence_trace [t, B] (rows after
    a sample's last step are 0); pred [B] and confidence [B] are those after the last step run
    so far (frozen once a sample exits).  Beside them, each sample's stream so far:
    total_steps [B] (steps run since it started: the exit step once it has exited),
    total_counts (spikes per layer [B]), exited [B] (bool: stopped by early exit; new_exits
    marks those that stopped in this chunk) and ended [B] (bool: its stream is over: it reached
    its length, or a chunk gave it fewer steps than the chunk has).
    """

    total_steps: torch.Tensor | None = None
    total_counts: list[torch.Tensor] = field(default_factory=list)
    exited: torch.Tensor | None = None
    new_exits: torch.Tensor | None = None
    ended: torch.Tensor | None = None

    @staticmethod
    def join(chunks: list["StreamChunk"]) -> NetworkResult:
        """The chunks of a stream since its start (or its last reset) as one run: the
        ``NetworkResult`` that ``Network.run`` returns on the whole input, to the bit."""
        if not chunks:
            raise ConfigError("StreamChunk.join needs at least one chunk")
        last = chunks[-1]

        def cat(get) -> torch.Tensor:
            return torch.cat([get(c) for c in chunks], 0)

        return NetworkResult(
            out=cat(lambda c: c.out),
            counts=[sum(c.counts[i] for c in chunks) for i in range(len(last.counts))],
            steps=sum(c.steps for c in chunks),
            records=[cat(lambda c, i=i: c.records[i]) for i in range(len(last.records))],
            pred=last.pred, confidence=last.confidence,
            confidence_trace=None if last.confidence_trace is None else cat(lambda c: c.confidence_trace))


__all__ = ["NetworkResult", "StreamChunk"]
