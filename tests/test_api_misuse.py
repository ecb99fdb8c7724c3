"""Library calls a PyTorch user makes by habit get one clear error, never a deep one or a silent other model.

Each case was found by a new user's probe of the Python API (2026-12-05): before, they built another model
(a string flag), or failed deep inside (AttributeError, IndexError, NumPy's or array_api_compat's TypeError).
"""

import numpy as np
import pytest

from rnnkit.errors import HyperparameterError, ShapeError
from rnnkit.nn import GRU, LSTM, RNN, Dropout, Embedding, GRUCell, Linear, LSTMCell, RNNCell
from rnnkit.nn.xp import DeviceError

X = np.zeros((3, 2, 4), np.float32)                             # (T, N, D)


@pytest.mark.parametrize("flag", ["bias", "batch_first", "bidirectional", "peephole", "layer_norm"])
@pytest.mark.parametrize("value", ["False", "no", 2, None])
def test_a_flag_that_is_not_a_bool_is_refused_not_read_as_true(flag, value):
    # bool("False") is True: LSTM(peephole="no") built a peephole LSTM
    with pytest.raises(HyperparameterError, match=f"^{flag} must be True or False, got {value!r}$"):
        LSTM(4, 4, **{flag: value})
    assert LSTM(4, 4, **{flag: np.bool_(False)}).__dict__[flag] is False      # NumPy's bools are bools


@pytest.mark.parametrize("make", [lambda: LSTM(4, 5, 2, dropout=0.5), lambda: LSTM(4, 5, zoneout=0.1),
                                  lambda: GRU(4, 5, variational_dropout=0.2)])
@pytest.mark.parametrize("rng", [0, np.random.SeedSequence(0), np.random.RandomState(0)])
def test_a_seed_for_rng_in_forward_names_the_generator_to_make(make, rng):
    # the constructor takes a seed; forward draws masks at every call, so it needs the generator itself
    with pytest.raises(HyperparameterError, match=r"^rng must be a numpy.random.Generator \(made once: "
                                                  r"np.random.default_rng\(seed\)\), got \w+$"):
        make().forward(X, rng=rng)
    make().forward(X, rng=np.random.default_rng(0))
    with pytest.raises(HyperparameterError, match="rng must be a numpy.random.Generator"):
        LSTM(4, 5, 2, dropout=0.5).step_forward(X[0], rng=rng)


def test_dtype_may_be_a_torch_dtype_or_a_name_and_anything_else_is_one_line():
    torch = pytest.importorskip("torch")
    assert LSTM(4, 4, dtype=torch.float64).dtype == np.float64 and GRU(4, 4, dtype="float64").dtype == np.float64
    assert Linear(3, 2, dtype=torch.float64).weight.data.dtype == np.float64
    assert Embedding(5, 2, dtype=torch.float64).weight.data.dtype == np.float64
    for bad in (torch.int32, np.float16, "int64", object()):
        for make in (lambda: LSTM(4, 4, dtype=bad), lambda: Linear(3, 2, dtype=bad), lambda: Embedding(3, 2, dtype=bad)):
            with pytest.raises(ValueError, match="^dtype: expected float32 or float64, got "):
                make()


@pytest.mark.parametrize("call, message", [
    (lambda: Embedding(0, 3), "num_embeddings must be >= 1, got 0"),
    (lambda: Embedding(5, 0), "embedding_dim must be >= 1, got 0"),
    (lambda: Embedding(5, -3), "embedding_dim must be >= 1, got -3"),
    (lambda: Embedding(5, 2.5), "embedding_dim must be an integer, got 2.5"),
    (lambda: Embedding("5", 2), "num_embeddings must be an integer, got '5'"),
    (lambda: Embedding(5, 2, padding_idx=1.5), "padding_idx must be an integer, got 1.5"),
    (lambda: Dropout("0.5"), "p must be a real number, got '0.5'"),
    (lambda: Dropout(1.0), r"p must be in \[0, 1\), got 1.0"),
    (lambda: Dropout(0.5).forward(X, rng=0), "rng must be a numpy.random.Generator"),
])
def test_embedding_and_dropout_check_their_arguments_like_linear(call, message):
    with pytest.raises(HyperparameterError, match=message):
        call()


def test_load_torch_state_dict_given_a_module_or_a_list_says_what_it_wants():
    torch = pytest.importorskip("torch")
    from rnnkit.io.torch_interop import load_torch_state_dict
    with pytest.raises(TypeError, match=r"got LSTM \(a PyTorch module: pass its .state_dict\(\)\)$"):
        load_torch_state_dict(LSTM(3, 4), torch.nn.LSTM(3, 4))
    with pytest.raises(TypeError, match="expected a mapping of names to tensors or arrays, got list$"):
        load_torch_state_dict(LSTM(3, 4), list(torch.nn.LSTM(3, 4).state_dict().items()))
    with pytest.raises(ShapeError, match=r"state_dict\['weight_ih_l0'\]: not an array of numbers"):
        load_torch_state_dict(LSTM(3, 4), {"weight_ih_l0": [[1.0, 2.0], [3.0]]})
    theirs = torch.nn.LSTM(3, 4)
    ours = LSTM(3, 4)
    load_torch_state_dict(ours, theirs.state_dict())                # the right call still works
    np.testing.assert_array_equal(ours.weight_hh_l0.data, theirs.weight_hh_l0.detach().numpy())


def test_a_torch_initial_state_on_a_numpy_layer_is_a_device_error_like_a_torch_input():
    torch = pytest.importorskip("torch")
    for which, state in (("h", torch.zeros(1, 2, 5)), ("c", (np.zeros((1, 2, 5), np.float32), torch.zeros(1, 2, 5)))):
        with pytest.raises(DeviceError, match=f"initial state {which}: on device .* but the layer's parameters"):
            (GRU(4, 5) if which == "h" else LSTM(4, 5)).forward(X, state=state)


@pytest.mark.parametrize("other", [lambda: LSTM(4, 5, num_layers=2), lambda: LSTM(4, 5), lambda: GRU(4, 5, dtype=np.float64),
                                   lambda: GRU(4, 5, bidirectional=True)])
def test_another_layers_cache_in_backward_is_named_not_an_index_error(other):
    layer = other()
    _, _, cache = layer.forward(X.astype(layer.dtype))
    with pytest.raises(ValueError, match=r"backward: the cache is not from this layer's forward \(it is from an? "
                                         r"\w+, .*; this layer is a GRU, 1 layer\(s\) x 1 direction\(s\), hidden 5, "
                                         r"float32\)"):
        GRU(4, 5).backward(np.zeros((3, 2, 5), np.float32), cache)
    with pytest.raises(ValueError, match=r"it is from a tuple"):
        GRU(4, 5).backward(np.zeros((3, 2, 5), np.float32), (1, 2))
    same = GRU(4, 5)                           # another layer of the same shape: its cache fits, as in PyTorch's
    _, _, cache = same.forward(X)             # functional use (weights differ, activations are the input's)
    dx, _ = GRU(4, 5).backward(np.ones((3, 2, 5), np.float32), cache)
    assert dx.shape == X.shape and np.all(np.isfinite(dx))


@pytest.mark.parametrize("make", [lambda: LSTM(4, 5, 2), lambda: GRU(4, 5), lambda: LSTM(4, 5, proj_size=3)])
def test_step_backward_keeps_the_layers_dtype_as_backward_does(make):
    layer = make()
    _, state, cache = layer.step_forward(X[0])
    d_state = tuple(np.ones(s.shape) for s in state) if isinstance(state, tuple) else np.ones(state.shape)
    dx, d_prev = layer.step_backward(np.ones((2, layer.output_size)), cache, d_state)       # float64 gradients
    assert dx.dtype == np.float32
    assert all(d.dtype == np.float32 for d in (d_prev if isinstance(d_prev, tuple) else (d_prev,)))
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())
    ref = make()
    ref.load_state_dict(layer.state_dict())
    _, _, c32 = ref.step_forward(X[0])
    d32 = tuple(d.astype(np.float32) for d in d_state) if isinstance(d_state, tuple) else d_state.astype(np.float32)
    dx32, _ = ref.step_backward(np.ones((2, ref.output_size), np.float32), c32, d32)
    np.testing.assert_array_equal(dx, dx32)                         # the cast changes no number


@pytest.mark.parametrize("cell, layer", [(LSTMCell, "LSTM"), (GRUCell, "GRU"), (RNNCell, "RNN")])
def test_a_cell_built_with_sizes_like_torchs_points_to_the_layer(cell, layer):
    with pytest.raises(TypeError, match=rf"{cell.__name__} takes no sizes: .*\(unlike torch.nn.{cell.__name__}\); "
                                        rf"for the layer use rnnkit.nn.{layer}\(input_size, hidden_size\)"):
        cell(8, 16)
    assert cell().num_gates in (1, 3, 4)
    assert RNNCell("relu").nonlinearity == "relu" and RNN(4, 5, nonlinearity="relu").mode == "RNN_RELU"


@pytest.mark.parametrize("make", [lambda r: LSTM(4, 6, rng=r), lambda r: Linear(4, 6, rng=r),
                                  lambda r: Embedding(5, 3, rng=r)])
@pytest.mark.parametrize("rng", [-1, "a", 1.5, True])
def test_a_bad_seed_for_a_layer_is_named_not_numpys_error(make, rng):
    # LSTM(4, 6, rng=-1) failed inside NumPy's SeedSequence ("expected non-negative integer")
    with pytest.raises(HyperparameterError, match=rf"^rng must be an integer >= 0, or none for fresh entropy .*got "):
        make(rng)
    for good in (0, None, np.int64(3), np.random.default_rng(0), np.random.SeedSequence(1)):
        make(good)


def test_torch_interop_given_an_estimator_says_to_pass_its_network():
    from rnnkit.charlm import CharModel
    from rnnkit.io.torch_interop import load_torch_state_dict, to_torch_state_dict
    est = CharModel(hidden_size=8, num_layers=1, max_steps=1, seq_len=10, batch_size=4, progress=False)
    with pytest.raises(TypeError, match=r"^module: expected an rnnkit.nn.Module, got CharModel \(an estimator not "
                                        r"fitted yet has no network: fit or load it first\)$"):
        to_torch_state_dict(est)
    est.fit("hello world, a tiny text. " * 20)
    with pytest.raises(TypeError, match=r"got CharModel \(a fitted estimator: pass its network, .model_\)$"):
        load_torch_state_dict(est, to_torch_state_dict(est.model_))
    with pytest.raises(TypeError, match=r"^module: expected an rnnkit.nn.Module, got NoneType$"):
        to_torch_state_dict(None)


def test_translator_evaluate_checks_its_pairs_as_fit_does():
    from rnnkit.errors import DataError
    from rnnkit.translate import Translator
    tr = Translator(hidden_size=8, embedding_size=4, epochs=1, batch_size=4, progress=False)
    pairs = [("un chat .", "a cat ."), ("un chien .", "a dog ."), ("une maison .", "a house .")] * 4
    tr.fit(pairs)
    for bad, match in (("un chat", r"^pairs: expected a list of \(source, target\) pairs of strings, got a str"),
                       ([("a",)], r"^pairs\[0\]: expected a \(source, target\) pair of strings, got \('a',\)")):
        with pytest.raises(DataError, match=match):
            tr.evaluate(bad)
