"""`dtlgen csim PRJ`: C-simulate a project's HLS engines and hold them bit for bit against the golden model.

Three checks, all on the project's own data:
1. the testbenches that Vitis HLS would run (hls/tb_fe.cpp, hls/tb_rl.cpp on hls/tb_data), compiled
   with g++ and run as they are: one FE sample through every descriptor, and the first training
   steps with the logits and parameters checked after each;
2. FE inference through the C-simulation library on the project's DRAM image, every op's output
   against the golden model's;
3. re-training through the host loop (`dtlgen.host.rl_host.RLHost`, the code the board driver and
   the RTL simulation run) for `steps` steps, the weights read back after every step and held
   against the golden model's replay.
Writes hls/csim_report.json. C-simulation has no clock: it gives no cycles; those come from RTL
simulation (`dtlgen sim`) and the analytical model.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dtlgen.atomic import write_json
from dtlgen.csim.engines import CsimDevice, CsimEngines, ap_types_dir
from dtlgen.errors import DesignError

REPORT = "csim_report.json"
SOURCE = "C-simulation: the project's HLS C++ compiled with g++ against hls4ml's ap_types headers (no Vitis HLS)"


def csim_project(project: Path, steps: int = 5, progress: Callable[[str], None] = lambda message: None
                 ) -> dict[str, Any]:
    project = Path(project).resolve()
    if not (project / "hls" / "dtl_params.h").exists():
        raise DesignError(f"'{project}' is not a dtlgen project with HLS engines (no hls/dtl_params.h); generate one "
                          "with 'dtlgen generate MODEL --design D --out PRJ'")
    program = json.loads((project / "sim" / "program.json").read_text())
    progress(f"compiling the HLS engines with g++ (ap_types from {ap_types_dir()}; cached per source hash)")
    engines = CsimEngines(project)
    report: dict[str, Any] = {"model": program["model"], "board": program["board"], "source": SOURCE,
                              "build_s": engines.build_s, "testbenches": [], "bit_exact": True}
    for engine, executable in engines.built.testbenches.items():
        progress(f"running the {engine.upper()} testbench (hls/tb_{engine}.cpp on hls/tb_data)")
        row = run_testbench(executable, project / "hls" / "tb_data")
        report["testbenches"].append({"engine": engine, **row})
    progress("FE inference through the C-simulation library, every op against the golden model")
    report["fe"] = _fe_inference(engines, project, program)
    if engines.has_rl and steps > 0:
        progress(f"re-training {steps} steps through the host loop on the C-simulated RL engine")
        report["training"] = _retrain(engines, project, steps)
    report["bit_exact"] = (all(t["passed"] for t in report["testbenches"]) and report["fe"]["bit_exact"]
                           and report.get("training", {}).get("bit_exact", True))
    write_json(project / "hls" / REPORT, report)
    return report


def run_testbench(executable: Path, data_dir: Path) -> dict[str, Any]:
    """Run a testbench; its PASS / FAIL lines become the row (exit status 0 only if all checks passed)."""
    start = time.perf_counter()
    done = subprocess.run([str(executable), str(data_dir)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = done.stdout.splitlines()
    checks = [line for line in lines if line.startswith(("PASS ", "FAIL "))]
    failed = [line[5:] for line in checks if line.startswith("FAIL ")]
    if done.returncode not in (0, 1):
        raise DesignError(f"testbench {executable.name} could not run (exit {done.returncode}):\n"
                          f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return {"passed": done.returncode == 0 and not failed, "checks": len(checks), "failed": failed, "run_s": wall}


def _fe_inference(engines: CsimEngines, project: Path, program: dict[str, Any]) -> dict[str, Any]:
    expected = np.load(project / "sim" / "expected.npz")
    memory = np.array(expected["memory"], dtype=np.uint8)
    start = time.perf_counter()
    engines.run_fe(memory, program["desc_addr"], len(program["ops"]))
    wall = time.perf_counter() - start
    ops = []
    for i, op in enumerate(program["ops"]):
        count = int(np.prod(op["out_shape"]))
        got = memory[op["out_addr"]:op["out_addr"] + count].view(np.int8).astype(np.int64).reshape(op["out_shape"])
        want = expected[f"op{i}"]
        ops.append({"name": op["name"], "macs": op["macs"], "bit_exact": bool(np.array_equal(got, want)),
                    "mismatches": int(np.sum(got != want))})
    return {"ops": ops, "bit_exact": all(op["bit_exact"] for op in ops), "run_s": wall,
            "macs": sum(op["macs"] for op in ops)}


def _retrain(engines: CsimEngines, project: Path, steps: int) -> dict[str, Any]:
    from dtlgen.generator.project import load_rl_project
    from dtlgen.host.rl_host import RLHost, sample_plan
    from dtlgen.sim.rl_sim import first_mismatch, golden_replay

    rl = load_rl_project(project)
    layout, qnet, state = rl.layout, rl.qnet, rl.state
    plan = sample_plan(rl.features, rl.labels, layout.batch, steps, qnet.precision.lr_shift)
    host = RLHost(CsimDevice(engines, layout.memory_bytes), layout)
    start = time.perf_counter()
    run = asyncio.run(host.train(plan, state))
    wall = time.perf_counter() - start
    mismatch = first_mismatch(run.weights, golden_replay(qnet, plan, state))
    return {"steps": plan.steps, "batch": layout.batch, "tm": layout.tm, "tn": layout.tn,
            "bit_exact": mismatch is None, "first_mismatch": mismatch, "steps_checked": len(plan.check_steps),
            "run_s": wall, "source": {"weights": "C-simulation through the host loop (dtlgen.host.rl_host)",
                                      "bit_exact": "golden model replay"}}
