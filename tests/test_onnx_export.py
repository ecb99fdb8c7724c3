"""ONNX export: every exported stack, run in onnxruntime, equals rnnkit's forward pass; whole models too.

The oracle is rnnkit's own forward pass on the same float32 weights (rtol 1e-5,
atol 1e-6 for entries near zero), over the grid of the PyTorch parity tests
(tests/recurrent_cases.py: cells x layers x directions x lengths x initial state), and
the LSTM part of that grid again with peepholes (ONNX's ``P`` input).
"""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from rnnkit.cli.main import main                                  # noqa: E402
from rnnkit.errors import NotFittedError, RnnkitError              # noqa: E402
from rnnkit.io import export_onnx, to_onnx                         # noqa: E402
from rnnkit.io.onnx_graph import OPSET                             # noqa: E402
from rnnkit.nn import GRU, LSTM                                    # noqa: E402
from rnnkit.nn.cells import LSTMCell                               # noqa: E402

from recurrent_cases import GRID, GRID_IDS, as_tuple, make_case, make_layer   # noqa: E402

TEXT = "the quick brown fox jumps over the lazy dog. " * 12
RTOL, ATOL = 1e-5, 1e-6


def session(proto_or_path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3                     # no notices about constant folding on stderr
    opts.intra_op_num_threads = 1
    data = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") else str(proto_or_path)
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def run_stack(sess, kind, x, state, lengths):
    feed = {"input": x}
    if lengths is not None:
        feed["lengths"] = np.asarray(lengths, np.int32)
    if state is not None:
        feed["h0"] = as_tuple(state)[0]
        if kind == "lstm":
            feed["c0"] = as_tuple(state)[1]
    return sess.run(None, feed)


def assert_close(got, want, what):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


def randomise_peepholes(layer, seed=5):
    """Every ``weight_ph`` uniform(-1, 1): large enough that a wrong block order in ONNX's P shows."""
    rng = np.random.default_rng(seed)
    for name, p in layer.named_parameters():
        if name.startswith("weight_ph"):
            p.data[...] = rng.uniform(-1.0, 1.0, p.shape)
    return layer


def peephole_case(num_layers, bidirectional, varlen, given_state, **kw):
    case = make_case("lstm", num_layers, bidirectional, varlen, given_state, dtype=np.float32, T=5, N=4, D=3, H=4,
                     peephole=True, **kw)
    randomise_peepholes(case[0])
    return case


def assert_exported_stack_equals_rnnkit(kind, layer, x, state, lengths):
    layer.eval()
    y, state_n, _ = layer.forward(x, state, lengths, need_cache=False)
    proto = to_onnx(layer, lengths=lengths is not None, initial_state=state is not None)
    outs = run_stack(session(proto), kind, x, state, lengths)
    want = [y] + list(as_tuple(state_n))
    assert len(outs) == len(want)
    for name, got, w in zip(["output", "h_n", "c_n"], outs, want):
        assert_close(got, w, name)
    return proto


@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
def test_exported_stack_equals_rnnkit(kind, num_layers, bidirectional, varlen, given_state):
    layer, x, state, lengths, _, _ = make_case(kind, num_layers, bidirectional, varlen, given_state,
                                               dtype=np.float32, T=5, N=4, D=3, H=4)
    assert_exported_stack_equals_rnnkit(kind, layer, x, state, lengths)


PEEPHOLE_GRID = [case[1:] for case in GRID if case[0] == "lstm"]
PEEPHOLE_IDS = [i.replace("lstm-", "peephole-", 1) for case, i in zip(GRID, GRID_IDS) if case[0] == "lstm"]


@pytest.mark.parametrize("num_layers,bidirectional,varlen,given_state", PEEPHOLE_GRID, ids=PEEPHOLE_IDS)
def test_exported_peephole_lstm_equals_rnnkit(num_layers, bidirectional, varlen, given_state):
    """The LSTM grid with peepholes: weight_ph [p_i, p_f, p_o] go to ONNX's P as [p_i, p_o, p_f]."""
    layer, x, state, lengths, _, _ = peephole_case(num_layers, bidirectional, varlen, given_state)
    proto = assert_exported_stack_equals_rnnkit("lstm", layer, x, state, lengths)
    lstms = [n for n in proto.graph.node if n.op_type == "LSTM"]
    assert len(lstms) == num_layers
    shapes = {i.name: tuple(i.dims) for i in proto.graph.initializer}
    for node in lstms:                                        # P is the 8th input: (K, 3H)
        assert len(node.input) == 8 and shapes[node.input[7]] == (2 if bidirectional else 1, 12)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
def test_dynamic_axes_batch_first_and_no_bias(kind):
    """One exported file runs any T and N; batch_first and bias=False layouts export too."""
    rng = np.random.default_rng(1)
    layer = make_layer(kind, 3, 5, num_layers=2, bidirectional=True, dtype=np.float32, seed=2,
                       batch_first=True, bias=False).eval()
    sess = session(to_onnx(layer, lengths=True, initial_state=False))
    for T, N in [(1, 1), (7, 3), (2, 6)]:
        x = rng.standard_normal((N, T, 3)).astype(np.float32)                     # (N, T, D)
        lengths = rng.integers(1, T + 1, N)
        y, state_n, _ = layer.forward(x, None, lengths, need_cache=False)
        outs = run_stack(sess, kind, x, None, lengths)
        assert outs[0].shape == (N, T, 10)
        for got, want in zip(outs, [y] + list(as_tuple(state_n))):
            assert_close(got, want, f"T={T} N={N}")


def test_a_float64_layer_exports_in_float32():
    layer, x, state, lengths, _, _ = make_case("gru", 2, True, True, True, dtype=np.float64, T=5, N=4, D=3, H=4)
    y = layer.eval().forward(x, state, lengths, need_cache=False)[0]
    proto = to_onnx(layer)
    weights = [i.data_type for i in proto.graph.initializer if i.name.startswith(("rnn_W", "rnn_R", "rnn_B"))]
    assert len(weights) == 6 and set(weights) == {onnx.TensorProto.FLOAT}        # W, R, B of two layers
    got = run_stack(session(proto), "gru", x.astype(np.float32), state.astype(np.float32), lengths)[0]
    np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-6)


def test_weight_reordering_is_what_makes_it_match():
    """Sanity of the oracle: with rnnkit's gate order copied unchanged, the LSTM differs."""
    from rnnkit.io import onnx_graph

    layer, x, state, lengths, _, _ = make_case("lstm", 1, False, True, True, dtype=np.float32, T=5, N=4, D=3, H=4)
    y = layer.eval().forward(x, state, lengths, need_cache=False)[0]
    saved = dict(onnx_graph.GATE_ORDER)
    try:
        onnx_graph.GATE_ORDER["LSTM"] = (0, 1, 2, 3)
        wrong = run_stack(session(to_onnx(layer)), "lstm", x, state, lengths)[0]
    finally:
        onnx_graph.GATE_ORDER.update(saved)
    assert not np.allclose(wrong, y, rtol=RTOL, atol=1e-3)


@pytest.mark.parametrize("order", [(0, 1, 2), (0, 0, 0)], ids=["rnnkit-order", "p_i-everywhere"])
def test_peephole_reordering_is_what_makes_it_match(monkeypatch, order):
    """Sanity of the peephole oracle: with the P blocks in another order, the exported LSTM differs."""
    from rnnkit.io import onnx_graph

    layer, x, state, lengths, _, _ = peephole_case(2, True, True, True)
    y = layer.eval().forward(x, state, lengths, need_cache=False)[0]
    monkeypatch.setattr(onnx_graph, "PEEPHOLE_ORDER", order)
    wrong = run_stack(session(to_onnx(layer)), "lstm", x, state, lengths)[0]
    assert not np.allclose(wrong, y, rtol=RTOL, atol=1e-3)


def test_peephole_batch_first_without_bias_at_several_sizes():
    """One exported peephole file runs any T and N; batch_first and bias=False (B left out, P kept) too."""
    rng = np.random.default_rng(4)
    layer = randomise_peepholes(make_layer("lstm", 3, 5, num_layers=2, bidirectional=True, dtype=np.float32, seed=2,
                                           batch_first=True, bias=False, peephole=True)).eval()
    sess = session(to_onnx(layer, lengths=True, initial_state=True))
    for T, N in [(1, 1), (7, 3), (2, 6)]:
        x = rng.standard_normal((N, T, 3)).astype(np.float32)                     # (N, T, D)
        lengths = rng.integers(1, T + 1, N)
        state = tuple((0.5 * rng.standard_normal((4, N, 5))).astype(np.float32) for _ in range(2))
        y, state_n, _ = layer.forward(x, state, lengths, need_cache=False)
        outs = run_stack(sess, "lstm", x, state, lengths)
        assert outs[0].shape == (N, T, 10)
        for got, want in zip(outs, [y] + list(as_tuple(state_n))):
            assert_close(got, want, f"T={T} N={N}")


def test_written_file_passes_the_full_check_and_states_its_opset(tmp_path):
    layer = make_layer("gru", 3, 4, num_layers=2, dtype=np.float32)
    path = tmp_path / "gru.onnx"
    assert export_onnx(layer, path) == str(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    assert [n.op_type for n in proto.graph.node].count("GRU") == 2
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["time", "batch", 3]


def test_a_layer_on_another_device_exports_the_same_graph():
    """Export reads host copies of the weights: a layer moved to array-api-strict's device1 gives the same
    bytes as the layer on the host (no hidden NumPy conversion, which that device refuses)."""
    xps = pytest.importorskip("array_api_strict")
    host = to_onnx(make_layer("lstm", 3, 4, num_layers=2, bidirectional=True, dtype=np.float32))
    moved = make_layer("lstm", 3, 4, num_layers=2, bidirectional=True, dtype=np.float32).to(xps.Device("device1"))
    assert type(moved.parameters()[0].data).__module__.startswith("array_api_strict")
    assert to_onnx(moved).SerializeToString() == host.SerializeToString()


@pytest.fixture(scope="module", params=["lstm", "gru", "rnn", "lstm-peephole"])
def charmodel(request):
    from rnnkit.charlm import CharModel
    cell, _, variant = request.param.partition("-")
    return CharModel(cell=cell, hidden_size=16, num_layers=2, embedding_size=4 if cell != "gru" else 0,
                     seq_len=8, batch_size=4, learning_rate=1e-2, sample_length=0, max_steps=25,
                     peephole=variant == "peephole", random_state=0).fit(TEXT)


def test_charlm_logits_and_greedy_text_equal_rnnkit(charmodel, tmp_path):
    path = export_onnx(charmodel, tmp_path / "lm.onnx")
    sess = session(path)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    chars = json.loads(meta["rnnkit.vocab"])
    assert chars == list(charmodel.vocab_.chars)
    lm = charmodel.model_
    names = [i.name for i in sess.get_inputs()]

    def feed(ids, state):
        st = as_tuple(state)
        return dict(zip(names, [np.asarray(ids, np.int64)] + list(st)))

    ids = np.random.default_rng(0).integers(0, len(chars), (6, 3))                 # (T, N)
    state0 = tuple(0.3 * s + 0.1 for s in as_tuple(lm.initial_state(3)))
    state0 = state0 if lm.cell == "lstm" else state0[0]
    logits, state_n, _ = lm.forward(ids, state0)
    outs = sess.run(None, feed(ids, state0))
    assert_close(outs[0], logits, "logits")
    for got, want in zip(outs[1:], as_tuple(state_n)):
        assert_close(got, want, "state")

    prime, length = "the qu", 60
    want = charmodel.sample(prime=prime, length=length, temperature=0.0)
    state = lm.initial_state(1)
    body = [chars.index(c) for c in prime]
    outs = sess.run(None, feed(np.array(body[:-1])[:, None], state))                 # warm up on the prime
    state, cur, text = tuple(outs[1:]), body[-1], []
    for _ in range(length):                                                        # one step per character
        outs = sess.run(None, dict(zip(names, [np.array([[cur]], np.int64)] + list(state))))
        cur = int(np.argmax(outs[0][0, 0]))
        state = tuple(outs[1:])
        text.append(chars[cur])
    assert "".join(text) == want


@pytest.mark.parametrize("strategy,future", [("recursive", False), ("direct", True), ("direct", False)])
def test_forecaster_network_equals_rnnkit(strategy, future):
    from rnnkit.forecast import RNNForecaster

    t = np.arange(80, dtype=np.float64)
    y = np.sin(t / 4.0) + 0.01 * t
    fut = np.stack([np.cos(t / 3.0), t % 7], axis=1) if future else None
    est = RNNForecaster(lookback=6, horizon=3, strategy=strategy, cell="lstm", hidden_size=5, num_layers=2,
                        batch_size=8, epochs=1, max_steps=3, random_state=0).fit(y, future_covariates=fut)
    net = est.net_
    sess = session(to_onnx(est))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4, net.rnn.input_size)).astype(np.float32)       # (T, N, D)
    h0 = rng.standard_normal((2, 4, 5)).astype(np.float32)
    c0 = rng.standard_normal((2, 4, 5)).astype(np.float32)
    feed = {"x": x, "h0": h0, "c0": c0}
    future_in = None
    if strategy == "direct" and net.future_size:
        future_in = rng.standard_normal((4, net.horizon * net.future_size)).astype(np.float32)
        feed["future"] = future_in
    raw, state_n, _ = net.forward(x, (h0, c0), future_in)
    outs = sess.run(None, feed)
    for got, want, what in zip(outs, [raw, *state_n], ["raw", "h_n", "c_n"]):
        assert_close(got, want, what)


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_forecaster_network_with_a_peephole_stack_equals_rnnkit(strategy):
    """The forecaster's graph goes through the same recurrent export: a peephole stack in its place carries P."""
    from rnnkit.forecast.model import ForecastNet

    net = ForecastNet(cell="lstm", input_size=2, hidden_size=5, num_layers=2, dropout=0.0, strategy=strategy,
                      n_out=1, head_size=2, horizon=3, future_size=0, rng=0)
    net.rnn = randomise_peepholes(LSTM(2, 5, num_layers=2, peephole=True, dtype=np.float32, rng=1))
    net.eval()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4, 2)).astype(np.float32)                        # (T, N, D)
    h0, c0 = (rng.standard_normal((2, 4, 5)).astype(np.float32) for _ in range(2))
    raw, state_n, _ = net.forward(x, (h0, c0), need_cache=False)
    outs = session(to_onnx(net)).run(None, {"x": x, "h0": h0, "c0": c0})
    for got, want, what in zip(outs, [raw, *state_n], ["raw", "h_n", "c_n"]):
        assert_close(got, want, what)


class VariantCell(LSTMCell):
    """Stands for a variant step (a coupled input-forget gate, say): a subclass of the cell, which ONNX's LSTM
    operator may not compute, so export must refuse it without looking at what it overrides."""

    def step(self, xw, hw, state):
        return super().step(xw, hw, state)


def test_unsupported_models_are_refused_naming_what_is_missing():
    layer = LSTM(3, 4)
    layer.cell = VariantCell()
    with pytest.raises(RnnkitError, match="VariantCell is a variant of LSTMCell"):
        to_onnx(layer)
    with pytest.raises(RnnkitError, match=r"layer_norm=True \(layer normalisation of the gate pre-activations and "
                                          r"the cell state at every step\) has no counterpart in ONNX's LSTM"):
        to_onnx(LSTM(3, 4, layer_norm=True))
    with pytest.raises(RnnkitError, match=r"layer_norm=True \(layer normalisation of the gate pre-activations at "
                                          r"every step\) has no counterpart in ONNX's GRU"):
        to_onnx(GRU(3, 4, layer_norm=True))
    with pytest.raises(RnnkitError, match="proj_size=2 .* no counterpart in ONNX's LSTM"):
        to_onnx(LSTM(3, 4, peephole=True, proj_size=2))       # peepholes export, the projection still does not
    layer = GRU(3, 4)
    layer.add_parameter("weight_ph_l0", np.zeros(12))         # a peephole has an input in ONNX's LSTM only
    with pytest.raises(RnnkitError, match=r"ONNX's GRU operator has weight inputs W, R and B only, and this stack "
                                          r"has parameters it cannot place \(weight_ph_l0\)"):
        to_onnx(layer)
    layer = LSTM(3, 4, peephole=True)
    layer.add_parameter("weight_xx_l0", np.zeros(12))
    with pytest.raises(RnnkitError, match=r"ONNX's LSTM operator has weight inputs W, R, B and P \(peepholes\) "
                                          r"only, and this stack has parameters it cannot place \(weight_xx_l0\)"):
        to_onnx(layer)
    layer = LSTM(3, 4)
    layer.proj_size = 2
    with pytest.raises(RnnkitError, match="proj_size=2 .* no counterpart in ONNX's LSTM"):
        to_onnx(layer)
    for kwargs, attr in (({"zoneout": 0.1}, "zoneout=0.1"), ({"zoneout_cell": 0.2}, "zoneout_cell=0.2")):
        with pytest.raises(RnnkitError, match=f"{attr} .* no counterpart in ONNX's LSTM"):
            to_onnx(LSTM(3, 4, **kwargs))     # no parameters of its own: refused by its setting, not its names
    with pytest.raises(RnnkitError, match="zoneout=0.1 .* no counterpart in ONNX's GRU"):
        to_onnx(GRU(3, 4, zoneout=0.1))
    with pytest.raises(RnnkitError, match="cannot export a dict"):
        to_onnx({})
    for flag in ("lengths", "initial_state"):                 # bool("no") is True: it added the input
        with pytest.raises(RnnkitError, match=f"^{flag} must be True or False, got 'no'$"):
            to_onnx(GRU(3, 4), **{flag: "no"})
    from rnnkit.charlm import CharModel
    with pytest.raises(NotFittedError, match="not fitted"):
        to_onnx(CharModel())
    from rnnkit.translate import Translator
    with pytest.raises(RnnkitError, match="cannot export a translator to ONNX: its attention decoder"):
        to_onnx(Translator())


def test_cli_export_writes_the_file_and_refuses_mistakes_in_one_line(charmodel, tmp_path, capsys):
    model = tmp_path / "lm.npz"
    charmodel.save(model)
    out = tmp_path / "lm.onnx"
    assert main(["export", str(model), str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "ONNX opset 17" in printed and "ids (time, batch)" in printed
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    assert main(["export", str(model), str(model)]) == 2                       # the output is the input
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "OUT" in err and "input MODEL" in err
    assert main(["export", str(tmp_path / "missing.npz"), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MODEL" in err and "no such file" in err
    for opset in ("9", "999"):
        assert main(["export", str(model), str(out), "--opset", opset]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--opset" in err
    newest = onnx.defs.onnx_opset_version()
    assert main(["export", str(model), str(out), "--opset", str(newest)]) == 0
    assert onnx.load(str(out)).opset_import[0].version == newest
