"""codecnn: CNN in-loop filters for VVC, from coded video to training data, models and reports."""

__version__ = "0.1.0"
