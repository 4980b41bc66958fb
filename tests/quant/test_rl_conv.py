"""Convolutions and max-pools trained by the golden model (issue 20): the tap-major GEMM kernels against
torch autograd, exactly, and a fixed-point training step on digits_cnn's convs against the float one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtlgen.api import load_model
from dtlgen.errors import UnsupportedLayerError
from dtlgen.model.digits_task import load_digits_task
from dtlgen.model.ir import conv_out_size
from dtlgen.perf.rl import GemmLayer, gemm_of, rl_window
from dtlgen.quant import fixed, golden, ops, reference
from dtlgen.quant.quantize import PrecisionConfig, quantize


@st.composite
def conv_cases(draw):
    k = draw(st.sampled_from([1, 3, 5]))
    s = draw(st.sampled_from([1, 2]))
    p = draw(st.integers(0, k // 2))
    h, w = draw(st.integers(k, 9)), draw(st.integers(k, 9))
    return dict(b=draw(st.integers(1, 3)), n=draw(st.integers(1, 5)), m=draw(st.integers(1, 5)), h=h, w=w, k=k,
                s=s, p=p, seed=draw(st.integers(0, 2 ** 31)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_cases())
def test_tap_major_conv_gemms_equal_torch_autograd(case):
    """FWD, BWD_DATA (col2im of Wᵀ·dY) and BWD_WEIGHT (dYᵀ·im2col) on integer values: float64 is exact here,
    so equality is exact."""
    rng = np.random.default_rng(case["seed"])
    b, n, m, h, w, k, s, p = (case[key] for key in ("b", "n", "m", "h", "w", "k", "s", "p"))
    x = rng.integers(-9, 10, (b, n, h, w)).astype(np.float64)
    weight = rng.integers(-9, 10, (m, n, k, k)).astype(np.float64)
    r, c = conv_out_size(h, k, s, p), conv_out_size(w, k, s, p)
    grad = rng.integers(-9, 10, (b, m, r, c)).astype(np.float64)

    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, stride=s, padding=p)
    yt.backward(torch.tensor(grad))

    rows = ops.im2col_rows(x, k, s, p)
    wm = ops.rl_weight_matrix(weight)
    assert rows.shape == (b * r * c, k * k * n) and wm.shape == (m, k * k * n)
    np.testing.assert_array_equal(ops.from_gemm_rows(rows @ wm.T, (b, m, r, c)), yt.detach().numpy())
    g = ops.gemm_rows(grad)
    np.testing.assert_array_equal(ops.col2im_rows(g @ wm, x.shape, k, s, p), xt.grad.numpy())
    np.testing.assert_array_equal(ops.from_rl_weight_matrix(g.T @ rows, weight.shape), wt.grad.numpy())
    np.testing.assert_array_equal(ops.from_rl_weight_matrix(wm, weight.shape), weight)


def test_tap_major_columns():
    """Column (kr·K + kc)·N + n: each tap a 1×1 conv of the shifted input (the LFSR's order in an UPDATE)."""
    x = np.arange(2 * 4 * 4).reshape(1, 2, 4, 4)
    rows = ops.im2col_rows(x, 3, 1, 1)
    # output (1, 2): tap (0, 0) reads input (0, 1), tap (2, 2) input (2, 3); channel 1 is 16 further on
    assert list(rows[1 * 4 + 2, 0:2]) == [1, 17] and list(rows[1 * 4 + 2, 16:18]) == [11, 27]
    assert list(rows[0, 0:2]) == [0, 0]  # the padding
    weight = np.arange(3 * 2 * 3 * 3).reshape(3, 2, 3, 3)
    assert list(ops.rl_weight_matrix(weight)[0, :4]) == [weight[0, 0, 0, 0], weight[0, 1, 0, 0], weight[0, 0, 0, 1],
                                                          weight[0, 1, 0, 1]]


@st.composite
def pool_cases(draw):
    k = draw(st.sampled_from([2, 3]))
    s = draw(st.sampled_from([1, 2, k]))
    p = draw(st.integers(0, k // 2))
    return dict(b=draw(st.integers(1, 2)), n=draw(st.integers(1, 3)), h=draw(st.integers(k, 8)),
                w=draw(st.integers(k, 8)), k=k, s=s, p=p, levels=draw(st.sampled_from([3, 1000])),
                seed=draw(st.integers(0, 2 ** 31)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_cases())
def test_max_pool_backward_equals_torch(case):
    """Each window's gradient to its first maximum, summed where windows overlap; `levels` 3 makes ties."""
    rng = np.random.default_rng(case["seed"])
    b, n, h, w, k, s, p = (case[key] for key in ("b", "n", "h", "w", "k", "s", "p"))
    x = rng.integers(0, case["levels"], (b, n, h, w)).astype(np.float64)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, k, s, p)
    grad = rng.integers(-9, 10, tuple(yt.shape)).astype(np.float64)
    yt.backward(torch.tensor(grad))
    np.testing.assert_array_equal(ops.max_pool(x, k, s, p, -np.inf), yt.detach().numpy())
    np.testing.assert_array_equal(ops.max_pool_backward(x, grad, k, s, p, -np.inf), xt.grad.numpy())


# --- a fixed-point training step through digits_cnn's convs --------------------------------------------
@pytest.fixture(scope="module")
def digits_convs():
    network = load_model("digits_cnn", split="conv3")
    task = load_digits_task()
    calib_x, calib_y = task.retrain_x[:128], task.retrain_y[:128]
    qnet = quantize(network, calib_x, PrecisionConfig(batch=16), calib_labels=calib_y)
    return task, network, qnet


def _float_view(qnet, features, trace, state, first_input):
    acts = {first_input: fixed.to_float(features[first_input], qnet.fmt_of(first_input).frac)}
    for layer in qnet.rl_layers:
        acts[layer.name] = fixed.to_float(trace.activations[layer.name], qnet.layers[layer.name].out_fmt.frac)
    params = {name: (fixed.to_float(w, qnet.layers[name].w_fmt.frac), fixed.to_float(b, qnet.layers[name].b_fmt.frac))
              for name, (w, b) in state.items()}
    return acts, params


def test_conv_gradients_in_fixed_point_track_float(digits_convs):
    """conv3 (3×3, 32→64), conv4, pool4, flatten, fc1, fc2 trained in 16-bit fixed point: every dW and db
    within 1 % (relative norm) of the float backward on the same activations and weights, over 3 steps."""
    task, network, qnet = digits_convs
    state = golden.initial_rl_state(qnet)
    first_input = qnet.rl_layers[0].inputs[0]
    for start in (200, 216, 232):
        x, labels = task.retrain_x[start:start + 16], task.retrain_y[start:start + 16]
        features = golden.fe_forward(qnet, golden.quantize_input(qnet, x))
        new_state, trace = golden.rl_train_step(qnet, state, features, labels, step=start)
        acts, params = _float_view(qnet, features, trace, state, first_input)
        ref = reference.float_backward(network, params, acts, labels)
        assert set(trace.grad_w) == {"conv3", "conv4", "fc1", "fc2"} and set(trace.grad_in) == {"conv4", "fc1", "fc2"}
        for name in trace.grad_w:
            lq = qnet.layers[name]
            for kind, got, frac in (("dw", trace.grad_w[name], lq.dw_fmt.frac), ("db", trace.grad_b[name], lq.db_fmt.frac)):
                q = fixed.to_float(got, frac)
                f = ref[name][kind]
                q = ops.from_rl_weight_matrix(q, f.shape) if kind == "dw" else q
                rel = np.linalg.norm(q - f) / np.linalg.norm(f)
                assert np.abs(q).max() > 0 and rel <= 0.01, f"{name} {kind}: relative error {rel:.4f}"
        for name, (w, _) in new_state.items():
            assert w.shape == state[name][0].shape and not np.array_equal(w, state[name][0])
        state = new_state


def test_a_layer_that_is_not_trained_passes_gradients_and_keeps_its_weights(digits_convs):
    task, network, _ = digits_convs
    layers = [layer if layer.name != "conv4" else type(layer)(**{**layer.__dict__, "trained": False})
              for layer in network.layers]
    network = type(network)(network.name, network.input_shape, layers)
    qnet = quantize(network, task.retrain_x[:128], PrecisionConfig(batch=16), calib_labels=task.retrain_y[:128])
    state = golden.initial_rl_state(qnet)
    x, labels = task.retrain_x[:16], task.retrain_y[:16]
    features = golden.fe_forward(qnet, golden.quantize_input(qnet, x))
    new_state, trace = golden.rl_train_step(qnet, state, features, labels, step=0)
    assert "conv4" in trace.grad_in and "conv4" not in trace.grad_w  # BWD_DATA, no BWD_WEIGHT
    assert new_state["conv4"] is state["conv4"]
    assert not np.array_equal(new_state["conv3"][0], state["conv3"][0])
    # the float step leaves it alone too
    params = reference.initial_float_params(network)
    acts = reference.float_forward(network, x)
    new = reference.float_rl_train_step(network, params, {"pool2": acts["pool2"]}, labels, 2.0 ** -6)
    assert new["conv4"] is params["conv4"] and new["conv3"] is not params["conv3"]


def test_quantize_admits_max_pools_and_the_rl_engine_names_those_it_cannot_run(digits_convs):
    _, network, _ = digits_convs
    calib = np.random.default_rng(0).random((4, 1, 8, 8))
    qnet = quantize(network, calib)
    pool4 = network.layer("pool4")
    assert gemm_of(network, pool4)[0] == GemmLayer("pool4", 64, 64, 4, taps=4, in_positions=16, trained=False, pool=True)
    assert qnet.layers["pool4"].grad_fmt == qnet.layers["conv4"].grad_fmt  # MAXPOOL_BWD moves values unshifted
    for kernel, stride, in_shape, out_shape in ((3, 3, (64, 6, 6), (64, 2, 2)), (2, 1, (64, 4, 4), (64, 3, 3)),
                                                (2, 2, (64, 5, 5), (64, 2, 2))):
        odd = type(pool4)(**{**pool4.__dict__, "kernel": kernel, "stride": stride, "in_shape": in_shape,
                             "out_shape": out_shape})
        with pytest.raises(UnsupportedLayerError, match="'pool4' .*kernel = stride <= 2, no padding"):
            rl_window(odd)
    # a split at the pool: no gradient reaches it (the first trained layer comes after it)
    with pytest.raises(UnsupportedLayerError, match="'pool4' .*before the first trained layer"):
        quantize(network.with_split(network.index("pool4")), calib)
    head = network.with_split(network.index("fc1"))
    head.layers[-1].trained = False
    quantize(head, calib)  # fc1 trains, fc2 runs forward and backward only
    for layer in head.retrainable_layers:
        layer.trained = False
    with pytest.raises(UnsupportedLayerError, match="no retrainable layer has trained weights"):
        quantize(head, calib)
