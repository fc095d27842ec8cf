"""Datasets: loading (cache, local copies, tfds) and subsampling."""

from jal.data.dataset import Dataset, ImageSpec, PoolData, channel_stats
from jal.data.sources import SEGMENTATION, load, subsample

__all__ = ["Dataset", "ImageSpec", "PoolData", "channel_stats", "load", "subsample"]
