"""The only tests that may skip when CI=true, each with the skip reason it may skip with.

Under ``CI=true`` (what ``.ci/run`` runs under) any other skip, xfail or XPASS
fails the run (see ``tests/ci_skip_guard.py``). CI installs ``.[test]``, every
optional dependency included, so a test that skips there is a test that was
meant to run and did not. Keep this list short: prefer a test that does not
need to skip (fake the condition, as the test next to each entry does).

Key: a node id as pytest prints it (a test, all its parametrizations, or a
module for a skip at collection). Value: text the skip reason must contain.
"""

ALLOWED_SKIPS = {
    # CI runs as root, and root writes into a 0o500 directory anyway; the test beside it,
    # test_unwritable_checkpoint_directory_fails_before_training, fakes the refusal and runs as root too.
    "tests/test_train_loop.py::test_read_only_checkpoint_directory_fails_before_training":
        "root can write anywhere",
    # The real full-disk tests mount a 256 KiB tmpfs, which needs root and a kernel that allows it
    # (this project's machines do); elsewhere they skip with this reason. The atomic writer's
    # failure path also runs without a mount in test_io_atomic.py's writer-fails-midway tests.
    "tests/test_io_atomic.py::test_full_disk_tmpfs_atomic_write_keeps_previous_file": "full-disk test: ",
    "tests/test_io_atomic.py::test_full_disk_tmpfs_model_file_too_large": "full-disk test: ",
    "tests/test_io_atomic.py::test_full_disk_tmpfs_cli_prints_one_line_naming_the_file": "full-disk test: ",
    # CuPy and a GPU are in no test environment of this project (CI has neither; the gpu extra is not in
    # `test`). The kernels' C source is still checked on the host, element by element, by the test beside it.
    "tests/test_cupy_cells.py::test_fused_kernels_on_the_gpu_equal_the_reference_cells": "no GPU/CuPy on this machine",
    # The whole engine and the char LM on a real GPU (CuPy, and PyTorch on CUDA for parity); the same
    # array-API code runs without a GPU in test_array_api_engine.py and test_charlm_device.py (array-api-strict).
    "tests/test_gpu.py": "no GPU/CuPy on this machine",
}
