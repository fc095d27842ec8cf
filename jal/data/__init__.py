"""Datasets: loading (cache, local copies, tfds) and subsampling."""

from jal.data.dataset import Dataset, channel_stats
from jal.data.sources import load, subsample

__all__ = ["Dataset", "channel_stats", "load", "subsample"]
