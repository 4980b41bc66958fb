"""The engines' build parameters, one record each: what an engine is compiled with, as its RTL names it.

`FEParams` (fe_engine.sv), `RLParams` (rl_engine.sv) and `CoreParams` (dtl_uart_core.sv: both engines,
their shared memory and the UART) declare every parameter once, with its HDL name on the engine and
on the board core. Each consumer takes its view from the record: the Verilator `-G` values of the
simulation tops (`FESimBuild`, `RLSimBuild`: the engine record and the testbench DRAM), the board
top, rtl/dtl_params.svh, the HLS header (`hls_values`), the board-design resource model
(`dtlgen.perf.board`), sim/params.json and ecp5/build.json (`to_dict` / `from_dict`).

`from_dict` reads a record from a project file, which is untrusted data: every field must be there,
be a bounded non-negative integer, and agree with what the record derives from the others; anything
else is one ValueError naming the file and the field (the project loader adds the fix).

Like the rest of `dtlgen.isa`, this module depends on no other dtlgen package.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from dtlgen.isa import fe as isa_fe, rl as isa_rl

HDL_INT_MAX = (1 << 31) - 1  # an SV `int` parameter
# what the FE buffers are sized for (a board design sizes them all for its program; the testbench leaves them full)
FE_BUFFER_SIZING = ("k_max", "s_max", "has_add", "has_scale", "has_gen", "has_sparse", "dw_k")
FE_SIZING_FLAGS = FE_BUFFER_SIZING[2:6]  # the parts built or not (0 / 1); dw_k is a kernel (0: no delay line)
# the sizing a full-size engine (the testbenches', the HLS engine's, the Xilinx RTL IP's) keeps at its
# largest; the scale banks, the weight generator, the sparse expander and the depthwise delay line follow the
# design's ops in the Xilinx IP's shell
FULL_SIZE = FE_BUFFER_SIZING[:3]


def _param(hdl: str, core: str | None = None, lowest: int = 0, **kwargs: Any) -> Any:
    """A parameter called `hdl` on its engine and `core` (by default the same) on dtl_uart_core, at least `lowest`."""
    return field(metadata={"hdl": hdl, "core": core or hdl, "lowest": lowest}, **kwargs)


def _names(record: Any, view: str) -> dict[str, int]:
    """The record's parameters under the `view` ("hdl" or "core") names, in declaration order."""
    return {f.metadata[view]: getattr(record, f.name) for f in fields(record) if view in f.metadata}


def _check_lowest(record: Any, engine: str) -> None:
    for f in fields(record):
        if f.init and getattr(record, f.name) < f.metadata.get("lowest", 0):
            raise ValueError(f"the {engine} engine's {f.name} is {getattr(record, f.name)}: expected at least "
                             f"{f.metadata['lowest']}")


def _read_ints(data: Any, keys: list[str], where: str, limit: int) -> dict[str, int]:
    if not isinstance(data, Mapping) or set(data) != set(keys):
        raise ValueError(f"{where} must hold exactly the fields {', '.join(keys)}")
    for key in keys:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise ValueError(f"{where}: field '{key}' is {value!r}: expected an integer from 0 to {limit}")
    return dict(data)


def _same(record_dict: dict[str, int], data: Mapping[str, int], where: str) -> None:
    """The fields a record derives (the FE drain, an absent RL engine's fill values) must be what it derives."""
    for key, value in record_dict.items():
        if data[key] != value:
            raise ValueError(f"{where}: field '{key}' is {data[key]}, but the other fields give {value}")


@dataclass(frozen=True)
class FEParams:
    """fe_engine.sv's parameters. `tm` x `tn`: the multiplier array (output x input channels per trip);
    `tr` x `tc`: the output tile (rows x columns); `a_bits`, `w_bits`: activation and weight widths;
    `bus_bytes`: the memory port; `m_max`: the output channels the bias table holds; `k_max`, `s_max`,
    `has_add`, `has_scale`: the largest kernel and stride the input buffers hold and whether an add's second
    operand and a scaled conv's per-channel scales have room (`has_gen`, `has_sparse`: the weight generator and
    the sparse-weight expander are built; `dw_k`: the largest depthwise kernel the delay line serves, 0 for none,
    `dtlgen.isa.fe.depthwise_slots`) (the engine's full size unless a board design
    sizes them for its program); `drain`: the
    pipeline's fill/drain cycles (once per descriptor, and after short trips), which follow from `tn` (`dtlgen.isa.fe.pipeline_depth`); `pack`:
    1 to compute lanes 2j and 2j+1 on one multiply per column (Xilinx DSP48 packing, `dtlgen.perf.fe`);
    `lut_mults`: the array's last products built in fabric (the design's `fe.lut_mults`)."""

    tm: int = _param("TM", "FE_TM", lowest=1)
    tn: int = _param("TN", "FE_TN", lowest=1)
    tr: int = _param("TR", "FE_TR", lowest=1)
    tc: int = _param("TC", "FE_TC", lowest=1)
    a_bits: int = _param("A_BITS", lowest=1)
    w_bits: int = _param("W_BITS", lowest=1)
    bus_bytes: int = _param("BUS_BYTES", lowest=1)
    m_max: int = _param("M_MAX", lowest=1)
    k_max: int = _param("K_MAX", lowest=1, default=isa_fe.K_MAX)
    s_max: int = _param("S_MAX", lowest=1, default=isa_fe.S_MAX)
    has_add: int = _param("HAS_ADD", default=1)
    has_scale: int = _param("HAS_SCALE", default=1)
    has_gen: int = _param("HAS_GEN", default=1)
    has_sparse: int = _param("HAS_SPARSE", default=1)
    dw_k: int = _param("DW_K", default=isa_fe.K_MAX)
    pf_beats: int = _param("PF_BEATS", "FE_PF_BEATS", default=0)
    drain: int = _param("DRAIN", init=False)
    pack: int = _param("PACK", "FE_PACK", default=0)
    lut_mults: int = _param("LUT_MULTS", "FE_LUT_MULTS", default=0)

    def __post_init__(self) -> None:
        _check_lowest(self, "FE")
        if self.lut_mults > self.tm * self.tn or self.pack > 1:
            raise ValueError(f"the FE engine's lut_mults {self.lut_mults} and pack {self.pack}: expected at most "
                             f"tm·tn = {self.tm * self.tn} and 1")
        if self.pf_beats and (self.pf_beats & (self.pf_beats - 1) or not 2 <= self.pf_beats <= isa_fe.PREFETCH_BEATS_MAX):
            raise ValueError(f"the FE engine's pf_beats {self.pf_beats}: expected 0 or a power of two from 2 to "
                             f"{isa_fe.PREFETCH_BEATS_MAX} (the read FIFO of prefetched requests)")
        object.__setattr__(self, "drain", isa_fe.pipeline_depth(self.tn))

    @classmethod
    def for_array(cls, cfg: Any, bus_bytes: int, m_max: int, pack: int = 0, **sizing: int) -> "FEParams":
        """The engine for a design's FE array `cfg` (tm, tn, tr, tc, a_bits, w_bits: `perf.fe.FEConfig`)."""
        return cls(cfg.tm, cfg.tn, cfg.tr, cfg.tc, cfg.a_bits, cfg.w_bits, bus_bytes, m_max, pack=pack,
                   lut_mults=cfg.lut_mults, **sizing)

    @property
    def full_size(self) -> bool:
        """The buffers hold every kernel, stride and add the engine runs (fe_engine.sv's defaults)."""
        return (self.k_max, self.s_max, self.has_add) == (isa_fe.K_MAX, isa_fe.S_MAX, 1)

    def hdl_parameters(self) -> dict[str, int]:
        """fe_engine's parameters."""
        return _names(self, "hdl")

    def hls_values(self, memory_bytes: int) -> dict[str, int]:
        """dtl_params.h's FE values (hw_templates/hls/dtl_params.h.j2): the HLS engine is built full size."""
        if not self.full_size:
            raise ValueError(f"the HLS FE engine is built with full-size buffers ({', '.join(FULL_SIZE)})")
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "acc_bits": isa_fe.ACC_BITS, "desc_bytes": isa_fe.DESCRIPTOR_BYTES, "memory_bytes": memory_bytes}


@dataclass(frozen=True)
class RLParams:
    """rl_engine.sv's parameters. `tm` x `tn`: the processing-element array; `bits`: weights, activations
    and gradients; `acc_bits`: the accumulators; `bus_bytes`: the memory port; `lanes`: stash banks;
    `a_depth`, `g_depth`: words per activation / gradient stash bank; `w_depth`: weight tiles; `b_depth`:
    bias rows; `has_mask`: a pruning-mask bit beside every weight (LOAD_M, UPDATE writes 0 where it is 0).
    The stochastic rounding's LFSR polynomial (`dtlgen.isa.rl.LFSR_MASK`) goes with them."""

    tm: int = _param("TM", "RL_TM", lowest=1)
    tn: int = _param("TN", "RL_TN", lowest=1)
    bits: int = _param("BITS", "RL_BITS", lowest=1)
    acc_bits: int = _param("ACC_BITS", "RL_ACC_BITS", lowest=1)
    bus_bytes: int = _param("BUS_BYTES", lowest=1)
    lanes: int = _param("LANES", lowest=1)
    a_depth: int = _param("A_DEPTH", lowest=1)
    g_depth: int = _param("G_DEPTH", lowest=1)
    w_depth: int = _param("W_DEPTH", lowest=1)
    b_depth: int = _param("B_DEPTH", lowest=1)
    has_mask: int = _param("HAS_MASK", default=0)

    def __post_init__(self) -> None:
        _check_lowest(self, "RL")
        if self.has_mask not in (0, 1):
            raise ValueError(f"the RL engine's has_mask is {self.has_mask}: expected 0 or 1")

    def hdl_parameters(self) -> dict[str, int]:
        """rl_engine's parameters."""
        return {**_names(self, "hdl"), "LFSR_MASK": isa_rl.LFSR_MASK}

    def hls_values(self, memory_bytes: int) -> dict[str, int]:
        """dtl_params.h's RL values (hw_templates/hls/dtl_params.h.j2)."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "desc_bytes": isa_rl.DESCRIPTOR_BYTES, "memory_bytes": memory_bytes}


# dtl_uart_core.sv's defaults for the RL engine's parameters: with HAS_RL = 0 no RL engine is built and
# these only fill the parameter list (the board top and build.json name every parameter).
_RL_NOT_BUILT = {"tm": 2, "tn": 2, "bits": 16, "acc_bits": 40, "lanes": 4, "a_depth": 64, "g_depth": 64, "w_depth": 32,
                 "b_depth": 16, "has_mask": 0}


@dataclass(frozen=True)
class CoreParams:
    """dtl_uart_core.sv's parameters: the FE engine, the RL engine (None: not built), the on-chip memory
    both share (`mem_bytes`, the RL region from `rl_base`) and the UART's bit time in clock cycles."""

    fe: FEParams
    rl: RLParams | None
    mem_bytes: int = _param("MEM_BYTES")
    rl_base: int = _param("RL_BASE")
    clks_per_bit: int = _param("CLKS_PER_BIT")

    def __post_init__(self) -> None:
        if self.rl is not None and self.rl.bus_bytes != self.fe.bus_bytes:
            raise ValueError(f"the engines share one memory port: RL bus_bytes {self.rl.bus_bytes} is not the FE "
                             f"engine's {self.fe.bus_bytes}")

    def hdl_parameters(self) -> dict[str, int]:
        """dtl_uart_core's parameters."""
        rl = self.rl or RLParams(bus_bytes=self.fe.bus_bytes, **_RL_NOT_BUILT)
        return {**_names(self.fe, "core"), "HAS_RL": int(self.rl is not None), **_names(rl, "core"),
                "LFSR_MASK": isa_rl.LFSR_MASK, **_names(self, "core")}

    def to_dict(self) -> dict[str, int]:
        """ecp5/build.json's "core": the parameters by their lower-case names (the LFSR polynomial is a
        constant of the numerics, not of a build)."""
        return {key.lower(): value for key, value in self.hdl_parameters().items() if key != "LFSR_MASK"}

    @classmethod
    def keys(cls) -> list[str]:
        """build.json's core fields, in `to_dict`'s order."""
        return list(cls(FEParams(1, 1, 1, 1, 1, 1, 1, 1), None, 0, 0, 0).to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str, limit: int = HDL_INT_MAX) -> "CoreParams":
        values = _read_ints(data, cls.keys(), where, limit)
        if values["has_rl"] > 1:
            raise ValueError(f"{where}: field 'has_rl' is {values['has_rl']}: expected 0 or 1")
        by_core = {key.upper(): value for key, value in values.items()}
        try:
            fe = FEParams(**{f.name: by_core[f.metadata["core"]] for f in fields(FEParams) if f.init})
            rl = (RLParams(**{f.name: by_core[f.metadata["core"]] for f in fields(RLParams)})
                  if values["has_rl"] else None)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        core = cls(fe, rl, **{f.name: by_core[f.metadata["core"]] for f in fields(cls) if "core" in f.metadata})
        _same(core.to_dict(), values, where)
        return core


# dram_model.sv's timing parameters, which a simulation run sets by plusarg (+DTL_<NAME>=value) rather than
# by build: one Verilator build of a testbench top serves every memory timing
RUNTIME_DRAM = ("LATENCY", "STALL_PERIOD", "STALL_SEED", "ROW_BYTES", "T_MISS", "T_REFI", "T_RFC")


def split_runtime(parameters: dict[str, object]) -> tuple[dict[str, object], list[str]]:
    """A testbench top's parameters as (what its build takes, the plusargs of the memory's timing)."""
    build = {key: value for key, value in parameters.items() if key not in RUNTIME_DRAM}
    return build, [f"+DTL_{key}={parameters[key]}" for key in RUNTIME_DRAM if key in parameters]


@dataclass(frozen=True)
class SimDram:
    """dram_model.sv under a simulation top: read latency in cycles, size, and a seeded stall pattern
    (a period of 0: never stalls)."""

    latency: int = _param("LATENCY")
    memory_bytes: int = _param("SIZE_BYTES")
    stall_period: int = _param("STALL_PERIOD", default=0)
    stall_seed: int = _param("STALL_SEED", default=1)

    def hdl_parameters(self) -> dict[str, int]:
        return _names(self, "hdl")


@dataclass(frozen=True)
class DdrTiming:
    """dram_model.sv's DDR-like timing (all 0: the ideal memory): the address's row of `row_bytes` maps
    to bank (address / row_bytes) mod `banks`; a read beat whose row is not the open one of its bank
    waits `t_miss` cycles (precharge + activate) and opens it, as a write opens its row; every `t_refi`
    cycles the memory refreshes for `t_rfc` cycles (no beats) and closes every row."""

    row_bytes: int = _param("ROW_BYTES", default=0)
    banks: int = _param("BANKS", lowest=1, default=8)
    t_miss: int = _param("T_MISS", default=0)
    t_refi: int = _param("T_REFI", default=0)
    t_rfc: int = _param("T_RFC", default=0)

    def __post_init__(self) -> None:
        _check_lowest(self, "DRAM")
        if self.row_bytes & (self.row_bytes - 1) or self.banks & (self.banks - 1):
            raise ValueError(f"row_bytes {self.row_bytes} and banks {self.banks} must be powers of two")
        if self.t_refi and self.t_miss + self.t_rfc >= self.t_refi:  # a miss would never outlast the refreshes
            raise ValueError(f"t_miss {self.t_miss} + t_rfc {self.t_rfc} must be below t_refi {self.t_refi}")

    def hdl_parameters(self) -> dict[str, int]:
        return _names(self, "hdl")


@dataclass(frozen=True)
class FESimBuild:
    """One build of fe_tb_top: the FE engine, which the testbench builds full size (it passes no buffer
    sizing), and the testbench DRAM. sim/params.json holds it as one flat object."""

    fe: FEParams
    dram: SimDram

    def __post_init__(self) -> None:
        if not self.fe.full_size:
            raise ValueError(f"fe_tb_top builds the FE engine with full-size buffers ({', '.join(FULL_SIZE)})")

    def hdl_parameters(self) -> dict[str, object]:
        """fe_tb_top's parameters (the strings are SV string literals)."""
        engine = {key: value for key, value in self.fe.hdl_parameters().items()
                  if key not in {name.upper() for name in FE_BUFFER_SIZING}}
        return {**engine, **self.dram.hdl_parameters(), "INIT_FILE": '"dram_init.hex"',
                "DUMP_FILE": '"dram_dump.hex"', "PERF_FILE": '"perf_dump.hex"'}

    def to_dict(self) -> dict[str, int]:
        engine = {f.name: getattr(self.fe, f.name) for f in fields(self.fe) if f.name not in FE_BUFFER_SIZING}
        return {**engine, **{f.name: getattr(self.dram, f.name) for f in fields(self.dram)}}

    @classmethod
    def keys(cls) -> list[str]:
        """sim/params.json's fields, in `to_dict`'s order."""
        return list(cls(FEParams(1, 1, 1, 1, 1, 1, 1, 1), SimDram(0, 0)).to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str, limit: int = HDL_INT_MAX) -> "FESimBuild":
        values = _read_ints(data, cls.keys(), where, limit)
        try:
            fe = FEParams(**{f.name: values[f.name] for f in fields(FEParams) if f.init and f.name in values})
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        build = cls(fe, SimDram(**{f.name: values[f.name] for f in fields(SimDram)}))
        _same(build.to_dict(), values, where)
        return build


@dataclass(frozen=True)
class RLSimBuild:
    """One build of rl_tb_top: the RL engine and the testbench DRAM."""

    rl: RLParams
    dram: SimDram

    def hdl_parameters(self) -> dict[str, object]:
        """rl_tb_top's parameters (the strings are SV string literals)."""
        return {**self.rl.hdl_parameters(), **self.dram.hdl_parameters(), "INIT_FILE": '""',
                "LOAD_FILE": '"dram_load.hex"', "DUMP_FILE": '"dram_dump.hex"', "PERF_FILE": '"perf_dump.hex"'}

