"""Torch datasets over HDF5 shards: normalisation, augmentation, a split by sequence."""

from codecnn.datasets.info import dataset_info, format_info
from codecnn.datasets.shard_dataset import ShardDataset, list_sequences, split_by_sequence
from codecnn.io.shard import DEPTH_SCALE, PLANES, QP_SCALE

__all__ = [
    "DEPTH_SCALE",
    "PLANES",
    "QP_SCALE",
    "ShardDataset",
    "dataset_info",
    "format_info",
    "list_sequences",
    "split_by_sequence",
]
