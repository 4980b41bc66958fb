"""Run the FE engine's AXI IP (dtl_fe_axi.sv: the engine, its AXI4 master, AXI4-Lite registers) against
cocotbext-axi's AxiRam and AxiLiteMaster, and the AXI4 master (dtl_axi_master.sv) alone.

The engine is the one `dtlgen.sim.fe_sim` runs on the ideal memory port; here the port goes through
the AXI4 master to an AXI4 slave model with random pauses on every channel, so the test is of the
master's conformance (bursts, 4 KB boundaries, realignment, backpressure, read-after-write order)
and of the register interface as well as of the engine's results. Cycles here are the engine's on
that slave, not a board's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dtlgen.errors import ToolMissingError
from dtlgen.generator.rtl import rtl_dir
from dtlgen.isa import fe as isa_fe
from dtlgen.isa.params import FE_BUFFER_SIZING, FULL_SIZE, FEParams
from dtlgen.sim.fe_sim import FESimResult, build_top, run_test, sim_log_tail

TOP = "dtl_fe_axi"
SOURCES = ("dtl_ram.sv", "fe_engine.sv", "dtl_axi_master.sv", "dtl_axil_regs.sv", "dtl_fe_axi.sv")
TEST_MODULE = "fe_axi_cocotb_test"
PERF_DEPTH = 256  # dtl_fe_axi.sv's default
GANG_TB, GANG_SOURCES = "axi_gang_tb", ("dtl_axi_gang.sv", "axi_gang_tb.sv")
SHELL_TOP = "dtl_fe_ip"  # a project's Verilog shell of the FE IP (dtlgen.generator.xilinx.RTL_SHELLS)


@dataclass
class AxiSimResult(FESimResult):
    """An FE run on the AXI4 slave, with the master's transactions as counted on the bus."""

    read_bursts: int = 0
    write_bursts: int = 0  # AW handshakes
    write_beats: int = 0   # W handshakes


def require_cocotbext_axi() -> None:
    try:
        import cocotbext.axi  # noqa: F401
    except ImportError:
        raise ToolMissingError("the AXI4 tests need cocotbext-axi; install the test extra: "
                               "pip install -e '.[test]'") from None


def run_image(memory: np.ndarray, desc_addr: int, desc_count: int, fe: FEParams, workdir: Path,
              max_cycles: int, pause_seed: int = 0, pause_period: int = 4, max_reads: int = 8,
              max_writes: int = 8, error_run: bool = False, shell: str | None = None) -> AxiSimResult:
    """Simulate a memory image holding `desc_count` FE descriptors at `desc_addr` on the AXI4 slave (the
    IP records the cycles of its first 256 descriptors); `error_run` adds a run of the same image with
    its last descriptor storing past the slave's memory, which must end with the AXI-error status
    (fe_axi_cocotb_test.py). `shell`: the text of a project's Verilog shell of the FE IP
    (dtlgen.generator.xilinx.rtl_shell, its parameters in it) as the top instead of dtl_fe_axi; a
    shell that gangs two ports has an AxiRam on each, both on one memory (axi_cocotb.GangRam)."""
    require_cocotbext_axi()
    if not fe.full_size:
        raise ValueError(f"the AXI4 testbench builds the FE engine with full-size buffers ({', '.join(FULL_SIZE)})")
    if desc_count > PERF_DEPTH:
        raise ValueError(f"dtl_fe_axi records the cycles of {PERF_DEPTH} descriptors; this list has {desc_count}")
    workdir = Path(workdir).resolve()  # the runner changes directory: every path must be absolute
    sizing = {name.upper() for name in FE_BUFFER_SIZING}
    parameters = {key: value for key, value in fe.hdl_parameters().items() if key not in sizing}
    parameters |= {"MAX_READS": max_reads, "MAX_WRITES": max_writes}
    sources, top = [rtl_dir() / name for name in SOURCES], TOP
    workdir.mkdir(parents=True, exist_ok=True)
    if shell is not None:
        top, parameters = SHELL_TOP, {}
        (workdir / f"{top}.v").write_text(shell)
        sources += [rtl_dir() / name for name in GANG_SOURCES[:1]] + [workdir / f"{top}.v"]
    start = time.perf_counter()
    build_dir = build_top(sources, top, parameters, "axi")
    build_s = time.perf_counter() - start
    image, dump, perf = workdir / "image.bin", workdir / "image_out.bin", workdir / "perf.txt"
    stats = workdir / "axi_stats.json"
    image.write_bytes(np.asarray(memory, dtype=np.uint8).tobytes())
    for stale in (dump, perf, stats):
        stale.unlink(missing_ok=True)
    env = {"DTLGEN_DESC_COUNT": str(desc_count), "DTLGEN_DESC_ADDR": str(desc_addr),
           "DTLGEN_MAX_CYCLES": str(max_cycles), "DTLGEN_IMAGE": str(image), "DTLGEN_DUMP": str(dump),
           "DTLGEN_PERF": str(perf), "DTLGEN_STATS": str(stats),
           "DTLGEN_PAUSE_SEED": str(pause_seed), "DTLGEN_PAUSE_PERIOD": str(pause_period)}
    if error_run:
        wrong = np.array(memory, dtype=np.uint8)
        last = desc_addr + (desc_count - 1) * isa_fe.DESCRIPTOR_BYTES
        fields = isa_fe.decode(wrong[last:last + isa_fe.DESCRIPTOR_BYTES])
        wrong[last:last + isa_fe.DESCRIPTOR_BYTES] = isa_fe.encode(**(fields | {"out_addr": len(wrong)}))
        (workdir / "image_error.bin").write_bytes(wrong.tobytes())
        env["DTLGEN_ERROR_IMAGE"] = str(workdir / "image_error.bin")
    start = time.perf_counter()
    passed = run_test(build_dir, top, TEST_MODULE, rtl_dir(), workdir, env)
    run_s = time.perf_counter() - start
    if not passed or not dump.exists() or not perf.exists() or not stats.exists():
        raise RuntimeError(f"FE simulation on AXI4 failed in {workdir}:\n{sim_log_tail(workdir)}")
    out = np.frombuffer(dump.read_bytes(), dtype=np.uint8).copy()
    return AxiSimResult(out, [int(v) for v in perf.read_text().split()], build_s, run_s,
                        **json.loads(stats.read_text()))


def check_master(bus_bytes: int, workdir: Path, seed: int, operations: int, pause_period: int = 3,
                 max_reads: int = 8, max_writes: int = 8, requests: int = 8, gang: bool = False) -> None:
    """dtl_axi_master alone under random engine traffic (axi_master_cocotb_test.py); raises on a mismatch.
    `requests`: engine read requests in flight (RQ). `gang`: through dtl_axi_gang onto two ports of half
    the bus, two AxiRams sharing one memory (axi_gang_tb.sv)."""
    require_cocotbext_axi()
    workdir = Path(workdir).resolve()
    parameters = {"BUS_BYTES": bus_bytes, "MAX_READS": max_reads, "MAX_WRITES": max_writes, "RQ": requests}
    top = GANG_TB if gang else "dtl_axi_master"
    sources = ("dtl_axi_master.sv",) + (GANG_SOURCES if gang else ())
    build_dir = build_top([rtl_dir() / name for name in sources], top, parameters, "axi")
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"DTLGEN_SEED": str(seed), "DTLGEN_OPS": str(operations), "DTLGEN_PAUSE_PERIOD": str(pause_period)}
    if not run_test(build_dir, top, "axi_master_cocotb_test", rtl_dir(), workdir, env):
        raise RuntimeError(f"AXI4 master check failed in {workdir}:\n{sim_log_tail(workdir)}")
