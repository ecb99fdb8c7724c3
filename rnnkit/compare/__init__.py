"""``rnnkit compare``: tanh RNN vs GRU vs LSTM on long-range synthetic tasks, and why (gradient diagnostics).

:mod:`.tasks` (adding, copy, temporal order, with exact baselines), :mod:`.model`
(one layer + read-out, hidden sizes matched to a parameter budget), :mod:`.run`
(:func:`compare`: seeds, budget, table, JSON), :mod:`.plots` (the two figures).
The diagnostics themselves live in :mod:`rnnkit.nn.diagnostics`.
"""

from .model import SeqModel, matched_hidden_sizes, parameter_count
from .run import CELLS, compare, format_table
from .tasks import TASKS, Task, make_task

__all__ = ["compare", "format_table", "CELLS", "SeqModel", "matched_hidden_sizes", "parameter_count", "TASKS",
           "Task", "make_task"]
