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
simulation (`dtlgen sim`) and the analytical model. Beside the checks, the report's `hls_check` lists
what a static reading of the project's HLS C++ finds that Vitis would schedule slower than the RTL
(`dtlgen.csim.hls_check`: patterns, not a schedule; no Vitis here), and `hls_estimate` the cycles
those loops would take by a stated rule (`dtlgen.csim.hls_estimate`: measured trip counts, estimated
per-loop cost) beside the RTL model's cycles for the same FE descriptors and RL training step.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dtlgen.atomic import check_owned, check_writable, record_files, write_json
from dtlgen.generator.loader import (ProjectData, RLProject, check_sources, load_rl_project, open_project,
                                    render_test_vectors)
from dtlgen.csim.engines import CsimDevice, CsimEngines, ap_types_dir
from dtlgen.csim.hls_check import check_files
from dtlgen.csim.hls_estimate import SOURCE as ESTIMATE_SOURCE, UnmodelledSchedule, hls_estimate
from dtlgen.errors import DesignError
from dtlgen.host.rl_plan import check_steps
from dtlgen.progress import current as current_progress, step_counter

REPORT = "csim_report.json"
SOURCE = "C-simulation: the project's HLS C++ compiled with g++ against hls4ml's ap_types headers (no Vitis HLS)"
CHECK_SOURCE = ("static reading of the project's HLS C++ (dtlgen.csim.hls_check): code patterns that Vitis HLS "
                "schedules slower than the RTL, not a Vitis schedule")
HLS_SOURCES = ("dtl_params.h", "dtl_engines.h", "dtl_fe_engine.cpp", "dtl_rl_engine.cpp")


def csim_project(project: Path, steps: int = 5, progress: Callable[[str], None] = lambda message: None,
                 train: tuple[np.ndarray, np.ndarray] | None = None, teacher: tuple[Any, Any] | None = None,
                 replay: float = 0.0, regrow: bool = False) -> dict[str, Any]:
    """C-simulate `project`: its testbenches, FE inference and `steps` re-training steps on the
    project's re-training set, or on `train` (FE features and labels: `dtlgen.api.Project.training_set`);
    with `teacher` (a teacher's float logits of that set, and the `fixed.Distillation` weights) the
    host distils; `replay` and `regrow` as `RLProject.strategies` takes them."""
    try:
        steps = check_steps(steps, 0)
    except ValueError as error:
        raise DesignError(str(error)) from None
    project = Path(project).resolve()
    data = open_project(project)
    if not (project / "hls" / "dtl_params.h").exists():
        raise DesignError(f"'{project}' is not a dtlgen project with HLS engines (no hls/dtl_params.h); generate one "
                          "with 'dtlgen generate MODEL --design D --out PRJ'")
    rl = load_rl_project(data) if data.has_rl else None
    check_sources(data, rl, ("hls",))  # g++ compiles only what dtlgen itself writes for this design
    if (train is not None or replay or regrow) and (rl is None or steps == 0):
        raise DesignError(f"a re-training set (--data), --replay and --regrow need re-training steps on an RL engine; "
                          f"'{project}' " + ("has no RL engine" if rl is None else "runs --steps 0"))
    if replay and teacher is not None:
        raise DesignError("replay mixes the project's cached samples into the set, and the teacher's logits cover "
                          "--data only: give --replay or --teacher, not both")
    # (the testbenches keep the project's set; the re-training steps run on this one)
    retrain_on, replayed = rl.strategies(train, replay, regrow) if rl is not None else (None, 0)
    distill = None
    if teacher is not None:
        if rl is None or steps == 0:
            raise DesignError(f"a teacher (--teacher) is for re-training steps on an RL engine; '{project}' "
                              + ("has no RL engine" if rl is None else "runs --steps 0"))
        distill = (retrain_on.teacher_logits(teacher[0]), teacher[1])
    check_writable(project / "hls", "the project's hls folder")
    check_owned(project, [project / "hls" / REPORT])
    report = run_csim(data, rl, steps, progress, retrain_on, distill)
    if "training" in report:
        report["training"].update(replayed_samples=replayed, regrow=bool(regrow))
    record_files(project, [project / "hls" / REPORT])
    return report


def run_csim(data: ProjectData, rl: RLProject | None, steps: int,
             progress: Callable[[str], None] = lambda message: None,
             retrain_on: RLProject | None = None, distill: tuple[np.ndarray, Any] | None = None) -> dict[str, Any]:
    """The three checks on a loaded project. `csim_project` calls it once the project's sources are
    known to be dtlgen's own; a test that plants a numerics change in them calls it directly. The
    testbenches run on the project's own vectors; the re-training on `retrain_on` (default `rl`)."""
    project, program = data.root, data.program
    progress(f"compiling the HLS engines with g++ (ap_types from {ap_types_dir()}; cached per source hash)")
    engines = CsimEngines(project)
    report: dict[str, Any] = {"model": program["model"], "board": program["board"], "source": SOURCE,
                              "build_s": engines.build_s, "testbenches": [], "bit_exact": True}
    with tempfile.TemporaryDirectory(prefix="dtlgen-tb-") as scratch:
        vectors = Path(scratch) / "tb_data"
        vectors.mkdir()
        render_test_vectors(data, rl, vectors)
        for engine, executable in engines.built.testbenches.items():
            progress(f"running the {engine.upper()} testbench (hls/tb_{engine}.cpp on hls/tb_data)")
            row = run_testbench(executable, vectors)
            report["testbenches"].append({"engine": engine, **row})
    progress("FE inference through the C-simulation library, every op against the golden model")
    report["fe"] = _fe_inference(engines, data)
    if engines.has_rl and rl is not None and steps > 0:
        progress(f"re-training {steps} steps through the host loop on the C-simulated RL engine")
        report["training"] = _retrain(engines, retrain_on or rl, steps, distill)
    report["bit_exact"] = (all(t["passed"] for t in report["testbenches"]) and report["fe"]["bit_exact"]
                           and report.get("training", {}).get("bit_exact", True))
    report["hls_check"] = hls_check(project / "hls", data.params.fe.bus_bytes)
    progress("estimating the HLS schedule: the engines again with loop counters, each loop's cost read from the C++")
    try:
        report["hls_estimate"] = {**hls_estimate(data, rl if engines.has_rl else None),
                                  "findings": report["hls_check"]["findings"]}  # what still costs cycles, by pattern
    except UnmodelledSchedule as reason:
        report["hls_estimate"] = {"source": ESTIMATE_SOURCE, "unavailable": str(reason)}
    write_json(project / "hls" / REPORT, report)
    return report


def hls_check(hls: Path, bus_bytes: int) -> dict[str, Any]:
    """The checker's findings on a project's HLS sources, its m_axi ports held against the FE's bus."""
    sources = [hls / name for name in HLS_SOURCES if (hls / name).exists()]
    findings = check_files(sources, bus_bytes=bus_bytes)
    return {"source": CHECK_SOURCE, "bus_bytes": bus_bytes,
            "findings": [{**f.to_dict(), "file": Path(f.file).name} for f in findings]}  # (names in hls/)


def run_testbench(executable: Path, data_dir: Path) -> dict[str, Any]:
    """Run a testbench; its PASS / FAIL lines become the row (exit status 0 only if all checks passed).

    Exit status 2 (the testbench refused its script, a data file or a descriptor) and death by a
    signal raise a one-line DesignError naming the testbench and, from its stderr, the problem."""
    start = time.perf_counter()
    try:
        done = subprocess.run([str(executable), str(data_dir)], capture_output=True, text=True, errors="replace")
    except OSError as error:
        raise DesignError(f"testbench {executable} could not start ({error.strerror or error}); delete "
                          f"{executable.parent} so that the next run rebuilds it") from None
    wall = time.perf_counter() - start
    lines = done.stdout.splitlines()
    checks = [line for line in lines if line.startswith(("PASS ", "FAIL "))]
    failed = [line[5:] for line in checks if line.startswith("FAIL ")]
    if done.returncode < 0:
        raise DesignError(f"testbench {executable.name} on {data_dir} was killed by {_signal_name(-done.returncode)}"
                          f"{_last_words(done.stderr)}; its data or the project's hls/ sources were changed: "
                          "regenerate the project with 'dtlgen generate'")
    if done.returncode not in (0, 1):
        reason = _last_line(done.stderr) or _last_line(done.stdout) or f"exit status {done.returncode}"
        raise DesignError(f"testbench {executable.name} on {data_dir} stopped: {reason.removeprefix('testbench: ')}")
    return {"passed": done.returncode == 0 and not failed, "checks": len(checks), "failed": failed, "run_s": wall}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def _last_words(stderr: str) -> str:
    line = _last_line(stderr)
    return f" ({line})" if line else ""


def _fe_inference(engines: CsimEngines, data: ProjectData) -> dict[str, Any]:
    program = data.program
    memory = np.array(data.memory, dtype=np.uint8).reshape(-1)
    origin = "the project's sim/expected.npz (its memory image) or sim/program.json (desc_addr, ops)"
    start = time.perf_counter()
    engines.run_fe(memory, program["desc_addr"], len(program["ops"]), origin=origin)
    wall = time.perf_counter() - start
    ops, fe_program = [], data.fe_program()
    for i, op in enumerate(program["ops"]):
        image = fe_program.ops[i]
        span = image.span
        if not 0 <= op["out_addr"] <= len(memory) - span:
            raise DesignError(f"sim/program.json: op {i} ('{op['name']}') has its {span}-byte output at "
                              f"{op['out_addr']}, outside the {len(memory)}-byte memory image; {origin} was changed: "
                              "regenerate it with 'dtlgen generate'")
        got = fe_program.read_images(memory, i).reshape(op["out_shape"])
        want = data.expected[i]
        ops.append({"name": op["name"], "macs": op["macs"], "bit_exact": bool(np.array_equal(got, want)),
                    "mismatches": int(np.sum(got != want))})
    return {"ops": ops, "bit_exact": all(op["bit_exact"] for op in ops), "run_s": wall,
            "macs": sum(op["macs"] for op in ops)}


def _retrain(engines: CsimEngines, rl: RLProject, steps: int, distill: tuple[np.ndarray, Any] | None = None
             ) -> dict[str, Any]:
    from dtlgen.host.rl_host import RLHost, sample_plan
    from dtlgen.sim.rl_sim import first_mismatch, golden_replay

    layout, qnet, state = rl.layout, rl.qnet, rl.state
    plan = sample_plan(rl.features, rl.labels, layout.batch, steps, qnet.precision.lr_shift, masks=rl.masks)
    if distill is not None:  # the teacher's cached logits and the weights
        plan = replace(plan, teacher=distill[0], kd=distill[1])
    host = RLHost(CsimDevice(engines, layout.memory_bytes), layout)
    start = time.perf_counter()
    with current_progress().task("training steps on the C-simulated RL engine", total=plan.steps) as bar:
        run = asyncio.run(host.train(plan, state, step_counter(bar)))
    wall = time.perf_counter() - start
    mismatch = first_mismatch(run.weights, golden_replay(qnet, plan, state))
    return {"steps": plan.steps, "batch": layout.batch, "tm": layout.engine.tm, "tn": layout.engine.tn,
            "bit_exact": mismatch is None, "first_mismatch": mismatch, "steps_checked": len(plan.check_steps),
            "run_s": wall, "source": {"weights": "C-simulation through the host loop (dtlgen.host.rl_host)",
                                      "bit_exact": "golden model replay"},
            **({"distillation": plan.kd.to_dict()} if plan.kd is not None else {})}
