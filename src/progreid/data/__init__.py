"""Records, dataset layouts, image cache, augmentation and samplers."""

from progreid.data.records import Record, Split
from progreid.data.layouts import LAYOUTS, load_dataset

__all__ = ["Record", "Split", "LAYOUTS", "load_dataset"]
