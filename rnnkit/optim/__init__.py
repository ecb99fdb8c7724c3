"""Optimisers, gradient clipping and learning-rate schedules (numbers as in ``torch.optim``)."""

from rnnkit.errors import HyperparameterError  # defined with the other errors; re-exported here as before
from rnnkit.optim.clip import clip_grad_norm, clip_grad_value
from rnnkit.optim.adam import Adam, AdamW, adam_for
from rnnkit.optim.base import Optimizer
from rnnkit.optim.optimizers import SGD, Adagrad, RMSprop
from rnnkit.optim import schedules
from rnnkit.optim.schedules import (ConstantLR, CosineAnnealingLR, ExponentialLR, LinearWarmup, Schedule, StepLR,
                                    TimeCosineLR, make_schedule)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "adam_for", "RMSprop", "Adagrad", "HyperparameterError", "clip_grad_norm",
           "clip_grad_value", *schedules.__all__]
