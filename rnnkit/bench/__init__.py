"""``rnnkit bench``: rnnkit's recurrent layers against PyTorch's on the same work (issue 3).

:func:`run_bench` runs a suite of cases (:mod:`rnnkit.bench.cases`), the
end-to-end character LM (:mod:`rnnkit.bench.charlm_case`), peak memory and
compile times (:mod:`rnnkit.bench.isolated`), timing both sides interleaved
(:mod:`rnnkit.bench.timing`). :func:`format_table` renders the result.
"""

from .run import format_table, run_bench

__all__ = ["run_bench", "format_table"]
