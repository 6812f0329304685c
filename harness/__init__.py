"""trainbench: reproducible, pytest-driven benchmarks for image-classification training."""

__version__ = "0.1.0"
