"""Event data: SHD/SSC (HDF5) and N-MNIST (.bin) readers and writers, binning,
augmentation, and a cached torch Dataset. Times are integer microseconds throughout."""
from __future__ import annotations

from .dataset import EventDataset, EventReader, SparseFrames, events_collate, load_dataset, pad_collate
from .events import TXP_DTYPE, XYTP_DTYPE, check_events, empty_events, make_events, sort_by_time
from .nmnist import (
    MAX_TIMESTAMP_US,
    NMNIST_CLASSES,
    NMNIST_SENSOR,
    NMNISTFolder,
    decode_nmnist_bytes,
    encode_nmnist_bytes,
    read_nmnist_bin,
    write_nmnist_bin,
)
from .shd import SHD_CHANNELS, SHD_CLASSES, SHD_KEYS, SSC_CLASSES, SHDFile, write_shd
from .transforms import (
    SHDAugment,
    ToFrames,
    channel_jitter,
    channel_shift,
    crop_time,
    drop_events,
    pool_channels,
    pooled_size,
    time_jitter,
    time_shift,
    time_stretch,
    to_frames,
)

__all__ = [
    "XYTP_DTYPE", "TXP_DTYPE", "make_events", "empty_events", "check_events", "sort_by_time",
    "SHDFile", "write_shd", "SHD_CHANNELS", "SHD_CLASSES", "SSC_CLASSES", "SHD_KEYS",
    "read_nmnist_bin", "write_nmnist_bin", "decode_nmnist_bytes", "encode_nmnist_bytes",
    "NMNISTFolder", "NMNIST_SENSOR", "NMNIST_CLASSES", "MAX_TIMESTAMP_US",
    "to_frames", "crop_time", "pool_channels", "pooled_size", "channel_shift", "channel_jitter",
    "time_jitter", "time_shift", "time_stretch", "drop_events", "SHDAugment", "ToFrames",
    "EventDataset", "EventReader", "SparseFrames", "pad_collate", "events_collate", "load_dataset",
]
