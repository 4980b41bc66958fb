"""The ECP5 board-design resource model (dtlgen.perf.board): its counting rules, the fit, and the DSE's view."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlgen.boards import load_board
from dtlgen.isa.params import CoreParams, FEParams, RLParams
from dtlgen.model import load_model
from dtlgen.perf import Design, predict
from dtlgen.perf import board as board_model
from dtlgen.perf import fe as perf_fe

BASE_CORE = CoreParams(FEParams(2, 2, 2, 2, a_bits=8, w_bits=8, bus_bytes=2, m_max=64, k_max=3, s_max=1, has_add=0,
                                has_scale=0, has_gen=0, has_sparse=0),
                       RLParams(2, 2, bits=16, acc_bits=41, bus_bytes=2, lanes=2, a_depth=596, g_depth=84, w_depth=2128,
                                b_depth=21), mem_bytes=1 << 17, rl_base=1 << 16, clks_per_bit=434)


def doubled(core: CoreParams, engine: str, name: str) -> CoreParams:
    """`core` with parameter `name` of its `engine` ("fe" or "rl") doubled."""
    params = getattr(core, engine)
    return replace(core, **{engine: replace(params, **{name: getattr(params, name) * 2})})


def arrays(core: CoreParams, fe: tuple[int, ...], rl: tuple[int, int] | None = None) -> CoreParams:
    """`core` with another FE array (tm, tn, tr, tc) and RL array (tm, tn)."""
    fe_params = replace(core.fe, **dict(zip(("tm", "tn", "tr", "tc"), fe)))
    return replace(core, fe=fe_params, rl=replace(core.rl, tm=rl[0], tn=rl[1]) if rl else core.rl)


def design(fe=(2, 2, 2, 2), rl=(2, 2), board="ulx3s-85f") -> Design:
    return Design.from_dict({"board": board, "clock_mhz": 50,
                             "fe": {"tm": fe[0], "tn": fe[1], "tr": fe[2], "tc": fe[3], "w_bits": 8, "a_bits": 8},
                             "rl": {"tm": rl[0], "tn": rl[1], "bits": 16, "batch": 4}})


def test_dp16kd_counting_rule():
    assert board_model.dp16kd_blocks(64, 16) == 0  # 16 DPR16X4 cells: distributed RAM
    assert board_model.dp16kd_blocks(84, 16) == 0  # 24 cells (the 2x2 core's gradient stash)
    assert board_model.dp16kd_blocks(256, 32) == 1  # 512x36
    assert board_model.dp16kd_blocks(65536, 8) == 32  # 2Kx9 blocks
    assert board_model.dp16kd_blocks(2128, 16) == 3  # 1Kx18: three deep
    assert board_model.dp16kd_blocks(64, 32) == 1  # 32 cells: yosys takes block RAM (the FE bias table)
    # the 2x2 core: two 64 KiB byte banks, the counters, the FE bias table, 4 RL weight banks of 3, one
    # activation stash bank per lane; the FE input, weight and output banks are distributed RAM
    assert board_model.board_resources(BASE_CORE).dp16kd == 2 * 32 + 1 + 1 + 4 * 3 + 2 * 1


def test_fit_recovers_known_coefficients():
    """Measurements made from known coefficients come back from the fit, with no leave-one-out error."""
    cores = []
    for fe in ((1, 1, 2, 2), (2, 2, 2, 2), (2, 2, 4, 4), (4, 2, 2, 2), (2, 4, 2, 4), (1, 2, 4, 2), (4, 4, 2, 2), (1, 1, 8, 8)):
        for rl in ((1, 1), (2, 2), (4, 2)):
            cores.append(arrays(BASE_CORE, fe, rl))
    truth = {r: {name: 100 * (1.0 + 0.37 * i) for i, name in enumerate(template)}  # large: rounding is negligible
             for r, template in board_model.COEFFICIENTS.items()}
    measured = [board_model.board_resources(core, truth).to_dict() for core in cores]
    fit = board_model.fit_coefficients(cores, measured)
    for resource in ("lut4", "ff", "mult18"):
        got = board_model.board_resources(cores[5], fit["coefficients"]).to_dict()[resource]
        assert got == pytest.approx(measured[5][resource], rel=1e-6, abs=1)
        assert fit["loo_max_error"][resource] < 1e-3


@settings(max_examples=60, deadline=None)
@given(tm=st.integers(1, 8), tn=st.integers(1, 8), tr=st.integers(1, 16), tc=st.integers(1, 16), grow=st.sampled_from(
    [("fe", "tm"), ("fe", "tn"), ("fe", "tr"), ("fe", "tc"), ("rl", "tm"), ("rl", "tn"), ("fe", "k_max"), ("fe", "m_max")]))
def test_prediction_grows_with_the_design_but_luts_may_move_to_block_ram(tm, tn, tr, tc, grow):
    core = arrays(BASE_CORE, (tm, tn, tr, tc))
    bigger = doubled(core, *grow)
    small, large = board_model.board_resources(core).to_dict(), board_model.board_resources(bigger).to_dict()
    # A buffer that outgrows distributed RAM moves to block RAM (as yosys maps it): its LUTs go, a
    # DP16KD comes. Only then may LUT4 shrink; nothing else ever does.
    shrinks = [r for r in small if large[r] < small[r]]
    assert shrinks in ([], ["lut4"]), (grow, small, large)
    assert not shrinks or large["dp16kd"] > small["dp16kd"], (grow, small, large)


def test_dse_view_of_the_core_equals_the_generated_one(tmp_path):
    """core_parameters (from shapes, before generation) gives exactly the parameters dtlgen generate writes."""
    from dtlgen.cli import main

    for fe, rl in (((2, 2, 2, 2), (2, 2)), ((4, 2, 4, 4), (1, 3))):
        d = design(fe, rl)
        path = tmp_path / f"{fe}{rl}.json"
        path.write_text(json.dumps(d.to_dict()))
        out = tmp_path / f"p{fe[0]}{rl[1]}"
        assert main(["generate", "digits_cnn", "--design", str(path), "--out", str(out)]) == 0
        generated = json.loads((out / "ecp5" / "build.json").read_text())["core"]
        assert board_model.core_parameters(load_model("digits_cnn", None), d, load_board("ulx3s-85f")).to_dict() \
            == generated


def test_open_flow_boards_are_judged_by_the_board_design():
    network = load_model("digits_cnn", None)
    prediction = predict(network, design(), load_board("ulx3s-85f"))
    core = prediction.board_core
    assert core is not None and prediction.resources.lut == core.lut4 and prediction.resources.bram18 == core.dp16kd
    assert prediction.to_dict()["board_core"]["lut4"] == core.lut4
    assert predict(network, design(board="pynq-z2"), load_board("pynq-z2")).board_core is None
    # an RL array whose requantisers cannot fit the 85F's LUTs is infeasible there (32 of them, 64
    # multipliers), and an FE array past its multipliers likewise
    huge = predict(network, design(rl=(32, 2)), load_board("ulx3s-85f"))
    assert not huge.feasible and any(v.startswith("lut") for v in huge.violations)
    wide = predict(network, design((16, 16, 16, 16)), load_board("ulx3s-85f"))
    assert not wide.feasible and any(v.startswith("dsp") for v in wide.violations)


def test_the_scale_banks_and_the_generator_add_their_measured_cells():
    """The FE's optional parts are outside the fitted features (no calibration design builds them): each adds
    its out-of-context measurement (perf.board.OPTIONAL_PARTS), the generator's MULT18s above all."""
    plain = replace(BASE_CORE, fe=replace(BASE_CORE.fe, has_scale=0, has_gen=0, has_sparse=0))
    base = board_model.board_resources(plain)
    sparse = perf_fe.sparse_expander_cells(plain.fe.tm, plain.fe.tn, plain.fe.bus_bytes)
    for flags, parts in (({"has_scale": 1}, ["has_scale"]), ({"has_scale": 1, "has_gen": 1}, ["has_scale", "has_gen"]),
                         ({"has_sparse": 1}, ["has_sparse"])):
        core = replace(plain, fe=replace(plain.fe, **flags))
        use = board_model.board_resources(core)
        for r in ("lut4", "ff", "mult18"):
            parts_cells = sum(sparse[r] if p == "has_sparse" else board_model.OPTIONAL_PARTS[p][r] for p in parts)
            # the scale banks' distributed RAM is a fitted feature; the parts add the measured rest
            features = sum(c * (board_model.core_features(core)[n] - board_model.core_features(plain)[n])
                           for n, c in board_model.COEFFICIENTS[r].items())
            assert abs(getattr(use, r) - getattr(base, r) - parts_cells - features) <= 1, (flags, r)
        assert use.dp16kd >= base.dp16kd
    assert board_model.OPTIONAL_PARTS["has_gen"]["mult18"] == 36  # eight 32x32 mixer multiplies
    m = board_model.SPARSE_MEASURED  # the expander's structure count is the measurement where it was measured
    at = perf_fe.sparse_expander_cells(m["tm"], m["tn"], m["bus_bytes"])
    assert (at["lut4"], at["ff"]) == (m["lut4"], m["ff"])
