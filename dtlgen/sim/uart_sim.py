"""Simulate the board design (rtl/dtl_uart_core.sv) in cocotb + Verilator with its UART link: the
PC's host code (dtlgen.host.uart_link) drives it bit by bit over a simulated serial line.

`BoardCore` holds the core's build parameters (both engines, the on-chip memory, the RL region's
base, the bit time); `simulate_link` loads an FE program over the link, runs it, reads every op's
output back, and optionally re-trains through `RLHost` on the RL engine, returning what came back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dtlgen.generator.fe_program import FEProgram
from dtlgen.generator.rl_program import RLLayout
from dtlgen.generator.rtl import rtl_dir
from dtlgen.host.rl_host import TrainingPlan
from dtlgen.quant.fixed import LFSR_MASK
from dtlgen.sim.fe_sim import build_top, run_test, sim_log_tail

CORE_SOURCES = ("uart_rx.sv", "uart_tx.sv", "rl_bank.sv", "fe_engine.sv", "rl_engine.sv", "dtl_uart_core.sv")
CORE_TOP = "dtl_uart_core"
CORE_TEST = "uart_cocotb_test"


@dataclass(frozen=True)
class BoardCore:
    """dtl_uart_core's parameters (the same names as the RTL's)."""

    fe_tm: int
    fe_tn: int
    fe_tr: int
    fe_tc: int
    a_bits: int
    w_bits: int
    m_max: int
    drain: int
    bus_bytes: int
    mem_bytes: int
    rl_base: int
    clks_per_bit: int
    k_max: int = 7  # the FE buffers' largest kernel and stride, and whether an add's second operand has room
    s_max: int = 2
    has_add: int = 1
    has_rl: int = 0
    rl_tm: int = 2
    rl_tn: int = 2
    rl_bits: int = 16
    rl_acc_bits: int = 40
    lanes: int = 4
    a_depth: int = 64
    g_depth: int = 64
    w_depth: int = 32
    b_depth: int = 16

    @classmethod
    def with_rl(cls, layout: RLLayout, **fe: Any) -> "BoardCore":
        return cls(**fe, has_rl=1, rl_tm=layout.tm, rl_tn=layout.tn, rl_bits=layout.bits, rl_acc_bits=layout.acc_bits,
                   lanes=layout.lanes, a_depth=layout.a_depth, g_depth=layout.g_depth, w_depth=layout.w_depth,
                   b_depth=layout.b_depth)

    def hdl_parameters(self) -> dict[str, int]:
        return {**{key.upper(): value for key, value in asdict(self).items()}, "LFSR_MASK": LFSR_MASK}


def simulate_link(core: BoardCore, program: FEProgram, workdir: Path, rl: tuple | None = None) -> dict[str, np.ndarray]:
    """Drive the core over its simulated UART: FE `program` (every op read back), then optionally
    `rl` = (layout, plan, state) re-trained through RLHost. Returns uart_result.npz's arrays."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    image = program.memory[:program.extent]
    if len(image) > core.rl_base or (core.has_rl == 0 and len(image) > core.mem_bytes):
        raise ValueError(f"the FE image ({len(image)} bytes) does not fit below the RL region at {core.rl_base}")
    job: dict[str, Any] = {"fe_image": image, "fe_desc_addr": program.desc_addr, "fe_count": len(program.ops),
                           "fe_regions": np.array([(i.out_addr, int(np.prod(i.out_shape))) for i in program.ops])}
    if rl is not None:
        layout, plan, state = rl
        assert isinstance(plan, TrainingPlan)
        job.update(rl_layout=json.dumps(layout.to_dict()), rl_base=core.rl_base, features=plan.features,
                   labels=plan.labels, order=plan.order, batch_sizes=np.array(plan.batch_sizes),
                   lr_shifts=np.array(plan.lr_shifts), first_step=plan.first_step,
                   check_steps=np.array(plan.check_steps),
                   **{f"w_{name}": w for name, (w, _) in state.items()}, **{f"b_{name}": b for name, (_, b) in state.items()})
    np.savez(workdir / "job.npz", **job)
    (workdir / "uart_result.npz").unlink(missing_ok=True)
    build_dir = build_top([rtl_dir() / name for name in CORE_SOURCES], CORE_TOP, core.hdl_parameters(), "uart")
    passed = run_test(build_dir, CORE_TOP, CORE_TEST, rtl_dir(), workdir,
                      {"DTLGEN_UART_JOB": str(workdir / "job.npz"), "DTLGEN_UART_CLKS_PER_BIT": str(core.clks_per_bit)})
    if not passed or not (workdir / "uart_result.npz").exists():
        raise RuntimeError(f"board-link simulation failed in {workdir}:\n{sim_log_tail(workdir)}")
    return dict(np.load(workdir / "uart_result.npz"))
