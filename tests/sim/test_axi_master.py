"""The FE engine behind its AXI4 master (dtl_axi_master.sv) on cocotbext-axi's AxiRam.

Bit-exact against the golden model with the slave pausing at random on every channel (AW, W, B, AR,
R), on 1-, 2- and 8-byte buses (every row segment starts unaligned somewhere), with few reads in
flight and with many; the layers read what the layer before stored, so a read that overtook an
unanswered write would show as a wrong output. Cycles on the slave are not a board's and are not
held to the model; pauses must cost cycles, not results.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from dtlgen.boards import load_board
from dtlgen.generator.fe_program import build_fe_program
from dtlgen.generator.xilinx import rtl_shell
from dtlgen.isa.params import FEParams
from dtlgen.model import load_model
from dtlgen.model.digits_task import load_digits_task
from dtlgen.perf.fe import FEConfig, op_cycles
from dtlgen.quant import golden
from dtlgen.quant.quantize import PrecisionConfig, quantize
from dtlgen.sim import axi_sim, fe_sim

MEMORY_BYTES = 1 << 18


@pytest.fixture(scope="module")
def digits():
    task = load_digits_task()
    qnet = quantize(load_model("digits_cnn"), task.retrain_x, PrecisionConfig())
    return qnet, golden.quantize_input(qnet, task.test_x[:1])[0]


def run(digits, workdir, bus: int, pause_seed: int = 0, max_reads: int = 8, error_run: bool = False,
        board: str | None = None):
    """`board`: through that board's generated Verilog shell of the FE IP (pynq-z2's gangs two ports)."""
    qnet, x_int = digits
    cfg = FEConfig(4, 4, 4, 8)
    params = FEParams(4, 4, 4, 8, a_bits=8, w_bits=8, bus_bytes=bus, m_max=1024)
    shell = None if board is None else rtl_shell("fe", params, load_board(board))
    program = build_fe_program(qnet, cfg, x_int, MEMORY_BYTES, bus_bytes=bus)
    predicted = sum(op_cycles(img.op, cfg, bus, 0).cycles for img in program.ops)
    result = axi_sim.run_image(program.memory, program.desc_addr, len(program.ops), params, workdir,
                               max_cycles=8 * predicted + 20_000, pause_seed=pause_seed, max_reads=max_reads,
                               error_run=error_run, shell=shell)
    reference = golden.fe_forward(qnet, x_int[None])
    exact = [np.array_equal(program.read(result.memory, i), reference[img.layer][0])
             for i, img in enumerate(program.ops)]
    return result, exact


def test_axi_master_is_lint_clean_with_all_warnings():
    bin_dir = fe_sim.verilator_bin()
    sources = [str(fe_sim.rtl_dir() / name) for name in axi_sim.SOURCES]
    for bus in (1, 2, 8, 16):
        result = subprocess.run([str(bin_dir / "verilator"), "--lint-only", "-Wall", "--top-module", axi_sim.TOP,
                                 *sources, f"-GBUS_BYTES={bus}"], capture_output=True, text=True)
        assert result.returncode == 0, (bus, result.stderr)


# the 8-byte bus by default (30 s); the others, 35 s each, with -m slow
@pytest.mark.parametrize("bus, max_reads", [(8, 8), pytest.param(2, 1, marks=pytest.mark.slow),
                                            pytest.param(1, 4, marks=pytest.mark.slow)])
def test_digits_fe_on_axi4_with_backpressure_on_every_channel(tmp_path, digits, bus, max_reads):
    # the calm run also checks SLVERR answers: CONTROL's error bit and the driver sequence's error
    calm, exact = run(digits, tmp_path / "calm", bus, max_reads=max_reads, error_run=True)
    assert all(exact)
    # the stores' consecutive beats leave as write bursts (the monitor checked WLAST and 4 KB)
    assert 0 < calm.write_bursts < calm.write_beats
    paused, exact = run(digits, tmp_path / "paused", bus, pause_seed=3, max_reads=max_reads)
    assert all(exact)
    assert sum(paused.cycles) > sum(calm.cycles), "pauses on every channel must cost cycles"


@pytest.mark.parametrize("bus, seed, max_reads, requests", [(8, 1, 8, 8),
                                                             pytest.param(1, 3, 1, 3, marks=pytest.mark.slow),
                                                             pytest.param(4, 2, 2, 8, marks=pytest.mark.slow),
                                                             pytest.param(16, 4, 4, 5, marks=pytest.mark.slow)])
def test_master_alone_under_random_traffic(tmp_path, bus, seed, max_reads, requests):
    """Random beat writes and burst reads (unaligned, across 4 KB, past 256 beats, reads right after the
    writes they cover) against AxiRam pausing on every channel: every read beat as the reference memory
    (with 8 engine requests in flight, and with 3 or 5: queues that wrap short of a power of two)."""
    axi_sim.check_master(bus, tmp_path, seed, operations=300, max_reads=max_reads, requests=requests)


@pytest.mark.slow  # 26 s cold; ganged ports stay in the default run (random traffic), the shell in -m slow
def test_digits_fe_through_the_pynq_z2_shell_on_two_ganged_ports(tmp_path, digits):
    """The FE IP as a pynq-z2 project builds it (the generated Verilog shell: dtl_fe_axi's 16-byte master
    through dtl_axi_gang onto m_axi and m1_axi, 8 bytes each), an AxiRam on each port pausing on its own
    patterns, both on one memory in the ganged layout; the error run's store past the memory ends with
    the AXI-error status through either port: bit-exact, and pauses cost cycles."""
    calm, exact = run(digits, tmp_path / "calm", 16, error_run=True, board="pynq-z2")
    assert all(exact) and 0 < calm.write_bursts < calm.write_beats
    paused, exact = run(digits, tmp_path / "paused", 16, pause_seed=5, board="pynq-z2")
    assert all(exact)
    assert sum(paused.cycles) > sum(calm.cycles)


@pytest.mark.parametrize("bus, seed, max_reads", [(16, 5, 8), pytest.param(4, 6, 2, marks=pytest.mark.slow)])
def test_master_through_two_ganged_ports_under_random_traffic(tmp_path, bus, seed, max_reads):
    """The same traffic through dtl_axi_gang onto two ports of half the bus (pynq-z2's two HP ports), each
    an AxiRam pausing on its own patterns, both on one memory in the ganged layout: every read beat as the
    reference memory, the memory as the reference after the writes, each port's bursts inside 4 KB."""
    axi_sim.check_master(bus, tmp_path, seed, operations=300, max_reads=max_reads, gang=True)


def test_gang_is_lint_clean_with_all_warnings():
    bin_dir = fe_sim.verilator_bin()
    sources = [str(fe_sim.rtl_dir() / name) for name in ("dtl_axi_master.sv",) + axi_sim.GANG_SOURCES]
    for bus in (2, 8, 16, 32):
        result = subprocess.run([str(bin_dir / "verilator"), "--lint-only", "-Wall", "--top-module", axi_sim.GANG_TB,
                                 *sources, f"-GBUS_BYTES={bus}"], capture_output=True, text=True)
        assert result.returncode == 0, (bus, result.stderr)
