"""The engines' parameter records (dtlgen.isa.params): their names are the RTL's, their JSON records
read back what they wrote, and a tampered record is one ValueError naming the file and the field."""

from __future__ import annotations

import re

import pytest

from dtlgen.generator.rtl import rtl_dir
from dtlgen.isa import fe as isa_fe, rl as isa_rl
from dtlgen.isa.params import CoreParams, DdrTiming, FEParams, FESimBuild, RLParams, RLSimBuild, SimDram

FE = FEParams(4, 2, 8, 30, a_bits=7, w_bits=8, bus_bytes=2, m_max=64, k_max=3, s_max=1, has_add=0)
RL = RLParams(2, 3, bits=16, acc_bits=41, bus_bytes=2, lanes=4, a_depth=300, g_depth=44, w_depth=1431, b_depth=21)
CORE = CoreParams(FE, RL, mem_bytes=1 << 17, rl_base=1 << 16, clks_per_bit=434)
WHERE = "prj/ecp5/build.json: core"


def sv_parameters(top: str) -> dict[str, str]:
    """The parameters of module `top` (rtl/<top>.sv) and their default values, as written."""
    text = (rtl_dir() / f"{top}.sv").read_text()
    header = re.search(rf"module {top} #\((.*?)\n\) \(", text, re.S).group(1)
    return dict(re.findall(r"parameter\s+(?:int\s+|logic\s*\[[^\]]*\]\s*)?(\w+)\s*=\s*([^,\n]+?)\s*(?:,|//|$)",
                           header, re.M))


@pytest.mark.parametrize("top, parameters", [
    ("fe_engine", FE.hdl_parameters()), ("rl_engine", RL.hdl_parameters()), ("dtl_uart_core", CORE.hdl_parameters()),
    # (with the testbench memory's DDR-like timing, which fe_sim.build adds on request)
    ("fe_tb_top", FESimBuild(FEParams(4, 4, 4, 4, 8, 8, 8, 64), SimDram(20, 1 << 20)).hdl_parameters()
     | DdrTiming().hdl_parameters()),
    ("rl_tb_top", RLSimBuild(RL, SimDram(20, 1 << 16)).hdl_parameters())])
def test_every_parameter_of_a_top_is_in_its_record_by_the_rtls_name(top, parameters):
    assert set(parameters) == set(sv_parameters(top))


def test_an_absent_rl_engine_fills_the_cores_parameters_with_its_defaults():
    defaults = sv_parameters("dtl_uart_core")
    core = CoreParams(FE, None, 1 << 16, 1 << 15, 434).hdl_parameters()
    assert core["HAS_RL"] == 0
    for name in ("RL_TM", "RL_TN", "RL_BITS", "RL_ACC_BITS", "LANES", "A_DEPTH", "G_DEPTH", "W_DEPTH", "B_DEPTH"):
        assert core[name] == int(defaults[name]), name
    assert int(defaults["LFSR_MASK"].replace("'h", "0x"), 16) == core["LFSR_MASK"] == isa_rl.LFSR_MASK


def test_the_drain_follows_the_array_and_the_testbench_builds_the_engine_full_size():
    assert FE.drain == isa_fe.pipeline_depth(2) and FE.hdl_parameters()["DRAIN"] == FE.drain
    with pytest.raises(ValueError, match="full-size"):
        FESimBuild(FE, SimDram(20, 1 << 20))
    with pytest.raises(ValueError, match="tn is 0"):
        FEParams(4, 0, 4, 4, 8, 8, 8, 64)


def test_records_read_back_what_they_write():
    assert CoreParams.from_dict(CORE.to_dict(), WHERE) == CORE
    absent = CoreParams(FE, None, 1 << 16, 1 << 15, 434)
    assert CoreParams.from_dict(absent.to_dict(), WHERE) == absent
    build = FESimBuild(FEParams(4, 4, 4, 4, 8, 8, 8, 64), SimDram(20, 1 << 20, stall_period=5, stall_seed=7))
    assert FESimBuild.from_dict(build.to_dict(), "params.json") == build
    assert "LFSR_MASK" not in CORE.to_dict() and CORE.to_dict()["fe_tm"] == 4 and CORE.to_dict()["has_rl"] == 1


@pytest.mark.parametrize("change, message", [
    ({"fe_tm": True}, "field 'fe_tm' is True: expected an integer from 0 to 65536"),
    ({"rl_bits": -1}, "field 'rl_bits' is -1: expected an integer"),
    ({"mem_bytes": 1 << 20}, "field 'mem_bytes' is 1048576: expected an integer from 0 to 65536"),
    ({"a_depth": "64"}, "field 'a_depth' is '64'"),
    ({"drain": 99}, f"field 'drain' is 99, but the other fields give {isa_fe.pipeline_depth(2)}"),
    ({"has_rl": 2}, "field 'has_rl' is 2: expected 0 or 1"),
    ({"has_rl": 0}, "field 'rl_tn' is 3, but the other fields give 2"),
    ({"fe_tn": 0}, "the FE engine's tn is 0: expected at least 1"),
    ({"extra": 1}, "must hold exactly the fields fe_tm, fe_tn"),
])
def test_a_tampered_core_is_one_error_naming_the_file_and_the_field(change, message):
    data = {**CORE.to_dict(), "mem_bytes": 1 << 16, **change}
    with pytest.raises(ValueError) as caught:
        CoreParams.from_dict(data, WHERE, limit=1 << 16)
    assert str(caught.value).startswith(WHERE) and message in str(caught.value) and "\n" not in str(caught.value)


def test_a_core_without_a_field_or_not_an_object_is_refused():
    data = CORE.to_dict()
    del data["lanes"]
    for bad in (data, None, [1, 2]):
        with pytest.raises(ValueError, match=f"^{re.escape(WHERE)} must hold exactly the fields"):
            CoreParams.from_dict(bad, WHERE)
