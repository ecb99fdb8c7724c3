"""Layers: recurrent stacks, cells, feed-forward blocks and losses."""

from .cells import Cell, GRUCell, LSTMCell, RNNCell
from .layers import Dropout, Embedding, Linear
from .losses import cross_entropy, log_softmax, mse, softmax
from .module import Module, Parameter
from .recurrent import GRU, LSTM, RNN, Recurrent
from .recurrent_step import StepCache, StepGradients
from .scan import scan_backward, scan_forward

__all__ = ["Module", "Parameter", "Cell", "RNNCell", "LSTMCell", "GRUCell", "scan_forward", "scan_backward",
           "Recurrent", "RNN", "LSTM", "GRU", "StepCache", "StepGradients", "Linear", "Embedding", "Dropout",
           "cross_entropy", "mse", "log_softmax", "softmax"]
