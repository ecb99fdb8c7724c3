"""The training loop every application uses, its checkpoints, history and progress display."""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .context import StepContext, StopTraining
from .history import History
from .loop import fit
from .progress import Progress

__all__ = ["fit", "StepContext", "StopTraining", "History", "Checkpoint", "load_checkpoint",
           "save_checkpoint", "Progress"]
