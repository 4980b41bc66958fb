"""Simulate the board design (rtl/dtl_uart_core.sv) in cocotb + Verilator with its UART link: the
PC's host code (dtlgen.host.uart_link) drives it bit by bit over a simulated serial line.

`CoreParams` (dtlgen.isa.params) holds the core's build parameters; `simulate_link` loads an FE program
over the link, runs it, reads every op's output back, and optionally re-trains through `RLHost` on the
RL engine, returning what came back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dtlgen.generator.ecp5 import CORE_SOURCES, CORE_TOP
from dtlgen.generator.fe_program import FEProgram
from dtlgen.generator.rtl import rtl_dir
from dtlgen.host.rl_plan import TrainingPlan, plan_arrays
from dtlgen.isa.params import CoreParams
from dtlgen.sim.fe_sim import build_top, run_test, sim_log_tail

CORE_TEST = "uart_cocotb_test"


def simulate_link(core: CoreParams, program: FEProgram, workdir: Path, rl: tuple | None = None) -> dict[str, np.ndarray]:
    """Drive the core over its simulated UART: FE `program` (every op read back), then optionally
    `rl` = (layout, plan, state) re-trained through RLHost. Returns uart_result.npz's arrays."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    image = program.memory[:program.extent]
    if len(image) > core.rl_base or (core.rl is None and len(image) > core.mem_bytes):
        raise ValueError(f"the FE image ({len(image)} bytes) does not fit below the RL region at {core.rl_base}")
    job: dict[str, Any] = {"fe_image": image, "fe_desc_addr": program.desc_addr, "fe_count": len(program.ops),
                           "fe_regions": np.array([(i.out_addr, int(np.prod(i.out_shape))) for i in program.ops])}
    if rl is not None:
        layout, plan, state = rl
        assert isinstance(plan, TrainingPlan)
        job.update(rl_layout=json.dumps(layout.to_dict()), rl_base=core.rl_base, **plan_arrays(plan),
                   **{f"w_{name}": w for name, (w, _) in state.items()}, **{f"b_{name}": b for name, (_, b) in state.items()})
    np.savez(workdir / "job.npz", **job)
    (workdir / "uart_result.npz").unlink(missing_ok=True)
    build_dir = build_top([rtl_dir() / name for name in CORE_SOURCES], CORE_TOP, core.hdl_parameters(), "uart")
    passed = run_test(build_dir, CORE_TOP, CORE_TEST, rtl_dir(), workdir,
                      {"DTLGEN_UART_JOB": str(workdir / "job.npz"), "DTLGEN_UART_CLKS_PER_BIT": str(core.clks_per_bit)})
    if not passed or not (workdir / "uart_result.npz").exists():
        raise RuntimeError(f"board-link simulation failed in {workdir}:\n{sim_log_tail(workdir)}")
    return dict(np.load(workdir / "uart_result.npz"))
