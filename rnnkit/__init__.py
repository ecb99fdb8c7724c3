"""rnnkit: recurrent neural networks on NumPy, with exact hand-derived BPTT."""

__version__ = "0.1.0"
