"""The synthetic tasks: shapes, determinism from the seed, the structure of each batch, exact baselines."""

import math

import numpy as np
import pytest

from rnnkit.compare.model import matched_hidden_sizes, parameter_count, SeqModel
from rnnkit.compare.tasks import COPY_LENGTH, COPY_SYMBOLS, make_task
from rnnkit.errors import HyperparameterError
from rnnkit.nn import cross_entropy


@pytest.mark.parametrize("name, T, x_shape, y_shape", [
    ("adding", 30, (30, 5, 2), (5, 1)),
    ("copy", 7, (7 + 2 * COPY_LENGTH, 5, COPY_SYMBOLS + 2), (7 + 2 * COPY_LENGTH, 5)),
    ("temporal_order", 40, (40, 5, 6), (5,)),
])
def test_shapes_and_seeds(name, T, x_shape, y_shape):
    task = make_task(name, T)
    x, y = task.draw(np.random.default_rng(3), 5)
    assert x.shape == x_shape and y.shape == y_shape and x.dtype == np.float32
    x2, y2 = task.draw(np.random.default_rng(3), 5)
    x3, _ = task.draw(np.random.default_rng(4), 5)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, x3)
    assert x.shape[2] == task.input_size


def test_adding_structure_and_baseline():
    task = make_task("adding", 20)
    x, y = task.draw(np.random.default_rng(0), 200_000)
    marks = x[:, :, 1]
    assert np.all(marks.sum(0) == 2)
    assert np.all(marks[:10].sum(0) == 1) and np.all(marks[10:].sum(0) == 1)     # one in each half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * marks).sum(0), rtol=1e-6)
    assert task.baseline == 1 / 6                                                 # 2 * Var(U[0, 1])
    mse_of_one = float(((y - 1.0) ** 2).mean())
    se = float(((y - 1.0) ** 2).std()) / math.sqrt(len(y))
    assert abs(mse_of_one - task.baseline) < 4 * se


def test_copy_structure_and_memoryless_baseline():
    T, K, S = 12, COPY_SYMBOLS, COPY_LENGTH
    task = make_task("copy", T)
    x, y = task.draw(np.random.default_rng(1), 50)
    ids = x.argmax(-1)
    assert np.array_equal(y[-S:], ids[:S])                                        # recall the first S symbols
    assert np.all(ids[T + S] == K + 1) and np.all(y[:-S] == K)
    # the memoryless predictor: blank with certainty before the last S steps, uniform over K after
    logp = np.full(y.shape + (K + 2,), -np.inf)
    logp[:-S, :, K] = 0.0
    logp[-S:, :, :K] = -math.log(K)
    nll = -np.take_along_axis(logp, y[..., None], -1).mean()
    assert nll == pytest.approx(task.baseline, rel=1e-12)
    assert task.baseline == pytest.approx(S * math.log(K) / (T + 2 * S))


def test_temporal_order_labels_follow_the_symbols():
    task = make_task("temporal_order", 50)
    x, y = task.draw(np.random.default_rng(2), 400)
    ids = x.argmax(-1)                                                            # (T, N)
    for n in range(400):
        pos = np.flatnonzero(ids[:, n] >= 4)
        assert len(pos) == 2 and 5 <= pos[0] < 10 and 25 <= pos[1] < 30
        assert y[n] == 2 * (ids[pos[0], n] - 4) + (ids[pos[1], n] - 4)
    assert set(np.unique(y)) == {0, 1, 2, 3}
    uniform = cross_entropy(np.zeros((400, 4)), y)[0]
    assert uniform == pytest.approx(task.baseline)


def test_train_and_test_streams_differ():
    task = make_task("adding", 10)
    assert not np.array_equal(task.test_batch(5, 4)[0], task.draw(np.random.default_rng([5, 1, 0]), 4)[0])


@pytest.mark.parametrize("name, T, match", [("sorting", 10, "task"), ("adding", 0, "seq_len"),
                                             ("temporal_order", 5, ">= 10")])
def test_bad_task_or_length(name, T, match):
    with pytest.raises(HyperparameterError, match=match):
        make_task(name, T)


def test_matched_parameter_counts_are_within_a_few_percent():
    sizes = matched_hidden_sizes(("lstm", "gru", "rnn"), 2, 1, 5000)
    counts = [parameter_count(c, 2, sizes[c], 1) for c in sizes]
    assert max(abs(c - 5000) for c in counts) / 5000 < 0.03
    assert sizes["rnn"] > sizes["gru"] > sizes["lstm"]
    task = make_task("adding", 5)
    for cell, H in sizes.items():                       # the formula counts what the model really allocates
        assert SeqModel(task, cell, H, rng=0).num_parameters() == parameter_count(cell, 2, H, 1)
