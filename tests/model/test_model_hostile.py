"""Hostile MODEL arguments: every bad file, factory, shape, weight, op or split is one DtlgenError naming it.

Each case writes a tiny model file to tmp_path and loads it with `load_model` as the CLI does; a few
go through `python -m dtlgen.cli import` to pin what the user sees: exit status 1 and exactly one
line on stderr, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlgen.cli import main
from dtlgen.errors import DtlgenError, DtlgenWarning, ModelSpecError, UnsupportedLayerError
from dtlgen.model import load_model

HEADER = """\
import torch
import torch.nn.functional as F
from torch import nn
"""

# A model that wants 1x8x8: conv 3x3 (-> 4x6x6), flatten, two linears.
TINY = "nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 8), nn.ReLU(), nn.Linear(8, 3))"


def write_model(tmp_path, body: str, name: str = "net.py"):
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def load_error(spec: str, kind: type[DtlgenError] = ModelSpecError, split=None) -> str:
    """The message of the error `load_model` must raise; it is always one line."""
    with pytest.raises(kind) as info:
        load_model(spec, split)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --- the input shape -------------------------------------------------------------------------
def test_shape_that_does_not_fit_the_model_names_factory_shape_and_torch_reason(tmp_path):
    path = write_model(tmp_path, f"def f():\n    return {TINY}, (3, 32, 32)\n")
    message = load_error(f"{path}:f")
    assert f"factory `f` in {path}" in message and "(3, 32, 32)" in message
    assert "module '0' (Conv2d)" in message and "expected input[2, 3, 32, 32] to have 1 channels" in message
    assert "give the per-sample input shape the model expects" in message


@pytest.mark.parametrize("shape, problem", [
    ("(True, 8, 8)", "True is a bool"),
    ("(1.0, 8, 8)", "1.0 is a float"),
    ("(-1, 8, 8)", "at least 1"),
    ("(1, 0, 8)", "at least 1"),
    ("('1', 8, 8)", "'1' is a str"),
    ("([1], 8, 8)", "[1] is a list"),
    ("(1, 10**9, 10**9)", "at most 16,777,216"),
    ("(8, 8)", "2 dimensions"),
    ("()", "0 dimensions"),
    ("'1x8x8'", "it is a str"),
    ("None", "it is a NoneType"),
])
def test_malformed_input_shape_names_shape_and_form(tmp_path, shape, problem):
    path = write_model(tmp_path, f"def f():\n    return {TINY}, {shape}\n")
    message = load_error(f"{path}:f")
    assert f"factory `f` in {path}" in message and problem in message
    assert "(C, H, W) for images or (F,) for vectors" in message


# --- the weights -----------------------------------------------------------------------------
@pytest.mark.parametrize("poison, layer, words", [
    ("m[0].weight[0, 0, 0, 0] = float('nan')", "'0' (Conv2d)", "weight has 1 NaN/inf"),
    ("m[3].bias[2] = float('inf')", "'3' (Linear)", "bias has 1 NaN/inf"),
    ("m[1].running_mean[0] = float('nan')", "'1' (BatchNorm2d)", "running_mean has 1 NaN/inf"),
    ("m[1].running_var[1] = -1.0", "'1' (BatchNorm2d)", "running_var + eps is not positive"),
])
def test_non_finite_weights_are_refused_naming_the_layer(tmp_path, poison, layer, words):
    path = write_model(tmp_path, f"""
        def f():
            m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 3))
            with torch.no_grad():
                {poison}
            return m, (1, 8, 8)
    """)
    message = load_error(f"{path}:f")
    assert f"layer {layer}" in message and words in message and f"factory `f` in {path}" in message


# --- the file and the factory ------------------------------------------------------------------
@pytest.mark.parametrize("body, words", [
    ("def f():\n    raise ValueError('no weights here\\nsecond line')\n",
     "raised ValueError: no weights here; fix the factory"),
    ("def f():\n    raise SystemExit(3)\n", "raised SystemExit: 3; fix the factory"),
    ("def f():\n    import sys\n    sys.exit('bye')\n", "raised SystemExit: bye"),
    ("def f(n):\n    return None\n", "needs arguments (n)"),
    ("def f():\n    return None\n",
     "must return (module, input_shape) or (module, input_shape, split); it returned None"),
    (f"def f():\n    return ({TINY},)\n", "it returned a tuple of 1 values"),
    (f"def f():\n    return {TINY}, (1, 8, 8), None, 'x'\n", "it returned a tuple of 4 values"),
    ("def f():\n    return 'model', (1, 8, 8)\n", "first value must be a torch.nn.Module"),
    ("def f():\n    return nn.Linear, (4,)\n", "return an instance, e.g. Linear(...)"),
])
def test_bad_factory_names_factory_and_reason(tmp_path, body, words):
    path = write_model(tmp_path, body)
    message = load_error(f"{path}:f")
    assert f"factory `f` in {path}" in message and words in message


def test_keyboard_interrupt_in_a_factory_is_not_swallowed(tmp_path):
    path = write_model(tmp_path, "def f():\n    raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        load_model(f"{path}:f")


@pytest.mark.parametrize("body, suffix, words", [
    ("def f(:\n", ":f", "raised SyntaxError"),
    ("import sys\nsys.exit(4)\n", ":f", "raised SystemExit: 4; fix the file"),
    ("raise ImportError('no module named foo')\n", ":f", "raised ImportError: no module named foo"),
    ("def g():\n    pass\n", ":f", "has no function 'f'; functions defined there: g"),
    ("f = 3\n", ":f", "'f' in"),
    ("class f(nn.Module):\n    pass\n", ":f", "is a type, not a function"),
    ("def f():\n    pass\n", "", "name the factory function too"),
    ("def f():\n    pass\n", ":", "'' after ':' is not a function name"),
    ("def f():\n    pass\n", ":f.g", "'f.g' after ':' is not a function name"),
])
def test_bad_factory_file_names_the_file(tmp_path, body, suffix, words):
    path = write_model(tmp_path, body)
    message = load_error(f"{path}{suffix}")
    assert str(path) in message and words in message


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp / "absent.py", "no such file"),
    (lambda tmp: tmp, "it is a directory"),
    (lambda tmp: (tmp / "net.txt").write_text("x = 1\n") and tmp / "net.txt", "does not end in .py"),
    (lambda tmp: tmp / ("x" * 300 + ".py"), "is not a Python file"),
])
def test_path_that_is_not_a_python_file(tmp_path, make, words):
    path = make(tmp_path)
    message = load_error(f"{path}:f")
    assert str(path) in message and words in message


# --- ops the IR does not map yet -------------------------------------------------------------
def test_a_cat_the_engine_cannot_write_in_place_names_where_it_is_and_the_fix(tmp_path):
    path = write_model(tmp_path, """
        class Branches(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Conv2d(1, 2, 3, padding=1)
            def forward(self, x):
                return torch.cat([x, self.a(x)], 1)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.block = Branches()
            def forward(self, x):
                return torch.flatten(self.block(x), 1)
        def f():
            return Net(), (1, 8, 8)
    """)
    message = load_error(f"{path}:f", UnsupportedLayerError)
    assert message.startswith("cat() in the forward() of 'block' (Branches)")
    assert "concatenates the network input" in message and "put a layer" in message


@pytest.mark.parametrize("pool, where, words", [
    ("nn.AvgPool2d(2, 2, ceil_mode=True)", "1: AvgPool2d(ceil_mode=True)", "on a 7x7 input gives 4x4 outputs"),
    ("nn.MaxPool2d(2, 2, dilation=2)", "1: MaxPool2d with dilation 2", "use dilation 1"),
])
def test_pool_options_name_the_module_and_a_workaround(tmp_path, pool, where, words):
    # conv 3x3 on 9x9 gives 7x7: a 2x2/2 pool needs ceil_mode for the 4x4 output.
    path = write_model(tmp_path, f"def f():\n    return nn.Sequential(nn.Conv2d(1, 2, 3), {pool}, nn.Flatten()), "
                                 "(1, 9, 9)\n")
    message = load_error(f"{path}:f", UnsupportedLayerError)
    assert message.startswith(where) and words in message


def test_functional_ceil_mode_names_the_forward_it_is_in(tmp_path):
    path = write_model(tmp_path, """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 2, 3)
            def forward(self, x):
                return torch.flatten(F.avg_pool2d(self.conv(x), 2, ceil_mode=True), 1)
        def f():
            return Net(), (1, 9, 9)
    """)
    message = load_error(f"{path}:f", UnsupportedLayerError)
    assert message.startswith("avg_pool2d() in the top-level forward(): avg_pool2d(ceil_mode=True)")


def test_unforeseen_graph_is_an_unsupported_layer_not_a_crash(tmp_path):
    path = write_model(tmp_path, """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 2, 3)
            def forward(self, x):
                return self.conv(x).mean((2, 3))
        def f():
            return Net(), (1, 8, 8)
    """)
    message = load_error(f"{path}:f", UnsupportedLayerError)
    assert ".mean()" in message and "not supported by the IR yet" in message


# --- splits ----------------------------------------------------------------------------------
@pytest.mark.parametrize("split, words", [
    ("9", "split index 9 from factory `f`"),
    ("-1", "negative indices are not supported"),
    ("'fc9'", "split layer 'fc9' from factory `f`"),
    ("True", "split True from factory `f`"),
    ("1.0", "split 1.0 from factory `f`"),
    ("{'retrain_last': 4}", "'f' has 3 conv/linear layers; give K from 1 to 3"),
    ("{'retrain_last': 0}", "give K from 1 to 3"),
    ("{'retrain_last': 1.5}", "retrain_last=1.5"),
    ("{'last': 1}", "is a dict; give a layer name"),
    ("[3]", "is a list"),
])
def test_bad_split_from_the_factory_names_split_and_factory(tmp_path, split, words):
    path = write_model(tmp_path, f"def f():\n    return {TINY}, (1, 8, 8), {split}\n")
    message = load_error(f"{path}:f")
    assert words in message and str(path) in message


@pytest.mark.parametrize("split, words", [
    ({"retrain_last": 4}, "retrain_last=4: 'f' has 3 conv/linear layers; give K from 1 to 3"),
    (6, "split index 6 is out of range; 'f' has layers 0..3"),
    ("nope", "split layer 'nope' is not in 'f'; layers are: 0, 2, 3, 5"),
])
def test_bad_split_option_names_it(tmp_path, split, words):
    path = write_model(tmp_path, f"def f():\n    return {TINY}, (1, 8, 8)\n")
    assert words in load_error(f"{path}:f", split=split)


def test_split_that_retrains_no_weights_is_refused(tmp_path):
    path = write_model(tmp_path, "def f():\n    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), "
                                 "nn.Flatten()), (1, 8, 8)\n")
    message = load_error(f"{path}:f", split=1)
    assert "would retrain only 1, 2, which have no weights" in message and "at or before '0' (index 0)" in message
    with pytest.warns(DtlgenWarning):
        assert load_model(f"{path}:f").split_index == 3  # no split: everything frozen (and a warning)
    # Retraining every layer (no FE layer) is left to the commands that need an FE layer to judge.
    assert load_model(f"{path}:f", {"retrain_last": 1}).split_index == 0


# --- random input shapes (hypothesis) ----------------------------------------------------------
HOLDER = "_dtlgen_hostile_shape"
dims = st.one_of(st.integers(-2, 12), st.sampled_from([10 ** 9, 2 ** 31, 2 ** 63, 10 ** 30]), st.booleans(),
                 st.floats(allow_nan=True), st.text(max_size=2), st.lists(st.integers(0, 3), max_size=2), st.none())
shapes = st.one_of(st.tuples(st.just(1), st.integers(1, 12), st.integers(1, 12)),  # some that import
                   st.lists(dims, max_size=4).map(tuple), st.lists(dims, max_size=4), dims)


@pytest.fixture(scope="module")
def shape_factory(tmp_path_factory):
    """A factory file returning a 1x1-conv model (any 1xHxW fits) and whatever shape the test put in HOLDER."""
    path = write_model(tmp_path_factory.mktemp("shapes"), f"""
        import sys
        def f():
            return nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten()), sys.modules["{HOLDER}"].SHAPE
    """)
    sys.modules[HOLDER] = types.ModuleType(HOLDER)
    yield f"{path}:f"
    del sys.modules[HOLDER]


@settings(max_examples=60, deadline=None)
@given(shape=shapes)
def test_random_input_shapes_import_or_raise_a_dtlgen_error(shape_factory, shape):
    sys.modules[HOLDER].SHAPE = shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DtlgenWarning)  # the factory gives no split (on purpose)
            network = load_model(shape_factory)
    except DtlgenError as exc:
        assert "\n" not in str(exc) and "factory `f`" in str(exc)
    else:
        assert network.input_shape == tuple(shape) and network.layers[0].op == "conv2d"


# --- through the command line ------------------------------------------------------------------
def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dtlgen.cli", *argv], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.parametrize("body, words", [
    (f"def f():\n    return {TINY}, (3, 32, 32)\n", ["factory `f`", "(3, 32, 32)", "to have 1 channels"]),
    ("def f():\n    raise SystemExit(3)\n", ["factory `f`", "raised SystemExit: 3"]),
    (("class Net(nn.Module):\n    def forward(self, x):\n        return torch.cat([x, x], 1)\n"
      "def f():\n    return Net(), (1, 8, 8)\n"), ["cat()", "concatenates the network input"]),
])
def test_cli_exits_1_with_one_line(tmp_path, body, words):
    path = write_model(tmp_path, body)
    result = cli("import", f"{path}:f")
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "error" in result.stderr and all(w in result.stderr for w in words)


@pytest.mark.parametrize("body, extra, words", [
    (("def f():\n    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))\n    m[1].weight.data[0, 0] = float('nan')\n"
      "    return m, (1, 4, 4)\n"), [], "layer '1' (Linear) weight has 1 NaN/inf"),
    ("def f():\n    return nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), (True, 4, 4)\n", [], "True is a bool"),
    (f"def f():\n    return {TINY}, (1, 8, 8)\n", ["--retrain-last", "7"], "give K from 1 to 3"),
    (f"def f():\n    return {TINY}, (1, 8, 8)\n", ["--split", "-2"], "split index -2 is out of range"),
])
def test_cli_in_process_user_errors(tmp_path, capsys, body, extra, words):
    path = write_model(tmp_path, body)
    code = main(["import", f"{path}:f", *extra])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == "" and captured.err.count("\n") == 1 and words in captured.err
