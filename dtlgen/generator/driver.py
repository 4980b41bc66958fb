"""The project's PYNQ driver directory (`PRJ/driver/`): what runs the two engines on the board.

`write_driver(project)` runs once the project's `sim/` is written and puts beside each other:
  dtl_driver.py        the driver (hw_templates/board/driver, shipped as is)
  overlay.json         the bitstream's and the engines' names in the block design (dtlgen.generator.xilinx)
  dtlgen/              a byte-identical copy of the dtlgen modules the host loop imports
                       (the import closure of dtlgen.host.rl_host, computed here, not listed by hand:
                       the runtime half, dtlgen.host with dtlgen.isa and dtlgen.quant.fixed, never
                       the planner or the perf model), so the board re-trains with the simulator's
                       descriptor builder and host loop
  fe_image.bin         the FE engine's memory image (descriptors, weights, biases, one input sample)
  fe_program.json      where the FE engine's descriptors, input and outputs are, and the design clock
  fe_expected.npy      the golden model's last FE output for the image's sample (the driver's self-check)
  rl_layout.json, rl_train.npz, rl_train.json   with an RL engine: its layout, the re-training set's
                       cached FE features and initial weights, the learning-rate shift
  README.md            how to run it on the board
The bitstream (dtl_overlay.bit + .hwh) comes from the Vivado flow (`make bitstream` writes it into
driver/). Nothing here talks to a board.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np

from dtlgen.atomic import write_json
from dtlgen.errors import DtlgenError
from dtlgen.generator.xilinx import ENGINE_IPS, OVERLAY_NAME, instance_name

# The modules the driver imports from dtlgen: the host loop and the RTL engines' run sequence.
HOST_MODULES = ("dtlgen.host.rl_host", "dtlgen.host.axil_engine", "dtlgen.isa.port", "dtlgen.isa.seeded")
DRIVER = "dtl_driver.py"

# Run in a fresh interpreter: the generator's own process has imported far more (torch, the DSE)
# than the host loop needs. Prints {module: file} of dtlgen and the third-party top-level packages.
_CLOSURE_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
before = set(sys.modules)
for module in sys.argv[2:]:
    __import__(module)
new = [name for name in sys.modules if name not in before]
dtl = {name: sys.modules[name].__file__ for name in new if name.split(".")[0] == "dtlgen"}
third = sorted({name.split(".")[0] for name in new if getattr(sys.modules[name], "__file__", None)}
               - set(sys.stdlib_module_names) - {"dtlgen"})
print(json.dumps({"modules": dtl, "third_party": [t for t in third if not t.startswith("_")]}))
"""


def driver_template() -> Path:
    return Path(str(files("dtlgen.hw_templates").joinpath("board", "driver", DRIVER)))


def host_closure(modules: tuple[str, ...] = HOST_MODULES) -> tuple[dict[str, Path], list[str]]:
    """The dtlgen modules (name -> file) that importing `modules` loads, and the third-party packages."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _CLOSURE_SCRIPT, str(root), *modules],
                          capture_output=True, text=True, cwd=root)
    if done.returncode != 0:
        raise DtlgenError(f"importing {', '.join(modules)} to find the driver's modules failed:\n"
                          f"{done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: Path(path) for name, path in found["modules"].items()}, found["third_party"]


def write_driver(project: Path, engine_ip: str = "rtl", gang_bus_bytes: int = 0) -> list[Path]:
    """Write `project/driver/` from `project/sim/` for a bitstream whose engines are `engine_ip`
    ("rtl" or "hls", dtlgen.generator.xilinx.ENGINE_IPS); returns the files written. `gang_bus_bytes`:
    the engines' bus where they gang two ports (dtl_axi_gang.sv; the driver then lays their buffers out
    so), else 0."""
    if engine_ip not in ENGINE_IPS:
        raise ValueError(f"engine_ip must be one of {ENGINE_IPS}, got {engine_ip!r}")
    project = Path(project)
    sim = project / "sim"
    for needed in ("program.json", "expected.npz"):
        if not (sim / needed).exists():
            raise DtlgenError(f"project '{project}': sim/{needed} is missing; the driver is written after sim/")
    out = project / "driver"
    out.mkdir(exist_ok=True)
    written = [_copy(driver_template(), out / DRIVER)]
    modules, third_party = host_closure()
    package_root = Path(__file__).resolve().parents[1]
    for name, path in sorted(modules.items()):
        written.append(_copy(path, out / path.resolve().relative_to(package_root.parent)))
    written += _write_fe(sim, out)
    has_rl = (sim / "rl_layout.json").exists()
    if has_rl:
        written += _write_rl(sim, out)
    engines = ("fe", "rl") if has_rl else ("fe",)
    write_json(out / "overlay.json", {"bitstream": f"{OVERLAY_NAME}.bit", "engine_ip": engine_ip,
                                      "engines": {engine: instance_name(engine) for engine in engines},
                                      "gang_bus_bytes": gang_bus_bytes})
    written.append(out / "overlay.json")
    readme = out / "README.md"
    readme.write_text(_readme(json.loads((out / "fe_program.json").read_text()), has_rl, third_party, engine_ip))
    written.append(readme)
    return written


def _copy(source: Path, destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    return destination


def _write_fe(sim: Path, out: Path) -> list[Path]:
    program = json.loads((sim / "program.json").read_text())
    expected = np.load(sim / "expected.npz")
    memory = np.asarray(expected["memory"], dtype=np.uint8)
    ops = program["ops"]
    first = memory[program["desc_addr"]:program["desc_addr"] + 64].view("<u4")
    # The generator places the sample where the first descriptor reads it (word 6); older projects'
    # program.json does not say so itself. The first descriptor's N, H, W are the sample's shape.
    input_addr = int(program.get("input_addr", first[6]))
    input_shape = [int(v) for v in program.get("input_shape", (first[1] & 0xFFFF, first[2] & 0xFFFF, first[2] >> 16))]
    (out / "fe_image.bin").write_bytes(memory.tobytes())
    np.save(out / "fe_expected.npy", np.asarray(expected[f"op{len(ops) - 1}"], dtype=np.int64))
    write_json(out / "fe_program.json", {
        "model": program.get("model"), "board": program.get("board"), "clock_mhz": program["clock_mhz"],
        "desc_addr": program["desc_addr"], "desc_count": len(ops), "memory_bytes": len(memory),
        "input_addr": input_addr, "input_shape": input_shape,
        "ops": [{"name": op["name"], "layer": op["layer"], "out_addr": op["out_addr"], "out_shape": op["out_shape"],
                 **({"out_pitch": op["out_pitch"]} if "out_pitch" in op else {})} for op in ops]})
    return [out / "fe_image.bin", out / "fe_expected.npy", out / "fe_program.json"]


def _write_rl(sim: Path, out: Path) -> list[Path]:
    written = [_copy(sim / "rl_layout.json", out / "rl_layout.json"), _copy(sim / "rl_train.npz", out / "rl_train.npz")]
    precision = json.loads((sim / "rl_quant.json").read_text())["precision"]
    # retrainable layers that start from values drawn from a seed: the driver draws them (dtlgen.isa.seeded)
    initial = json.loads((sim / "rl_init.json").read_text()) if (sim / "rl_init.json").exists() else {}
    write_json(out / "rl_train.json", {"lr_shift": int(precision["lr_shift"]), **({"initial": initial} if initial else {})})
    return written + [out / "rl_train.json"]


def _readme(program: dict, has_rl: bool, third_party: list[str], engine_ip: str) -> str:
    pip_names = {"yaml": "pyyaml"}
    requires = ", ".join(pip_names.get(name, name) for name in third_party)
    rl = (f"then re-trains the\nretrainable layers on the RL engine (`{instance_name('rl')}`) from the cached FE "
          "features of the\nre-training set (rl_train.npz)" if has_rl else
          "has no RL engine to\nre-train (the network has no retrainable layers)")
    retrain = "\nrun = board.retrain(board.default_plan(20), board.initial_state())" if has_rl else ""
    if engine_ip == "rtl":
        built = ("(`make bitstream` in the project directory, with Vivado, writes both here): the SystemVerilog engines of\n"
                 "the project's `vivado/rtl/`. Their registers are dtlgen's (`dtlgen/isa/regs.py` here).")
        cycles = ("Engine cycle counts are the engines' own (their RUN_CYCLES register: start to the last write\n"
                  "answered), at the design clock.")
    else:
        built = ("(`make bitstream` in the project directory, with Vitis HLS and Vivado, writes both here): the Vitis\n"
                 "HLS IP of the C++ engines. The driver reads the engines' register offsets from the .hwh.")
        cycles = ("Engine cycle counts are the PS's wall time at the design clock (the HLS engines have no cycle\n"
                  "counter), so they include register writes and polling.")
    return f"""# PYNQ driver: {program.get('model')} on {program.get('board')} at {program['clock_mhz']:g} MHz

`dtl_driver.py` runs the FE engine (`{instance_name('fe')}`) of the overlay on the sample the project was
generated with and checks its output against the golden model bit for bit; it {rl}.
Re-training runs the same host loop as the simulators (`dtlgen/host/rl_host.py`, vendored here with the
modules it imports, byte-identical to the generator's).

## Prerequisites
- A Zynq-7000 or Zynq UltraScale+ board with the PYNQ image: Python 3 with pynq and {requires}
  (no torch, no dtlgen install: the modules it needs are in `dtlgen/` here).
- The overlay built from this project: `{OVERLAY_NAME}.bit` and `{OVERLAY_NAME}.hwh` in this directory
  {built}

## On the board
```
scp -r PRJ/driver xilinx@<board>:~/dtl_driver
ssh xilinx@<board>
sudo -i                                    # PYNQ maps the PL's registers and allocates DMA memory as root
source /etc/profile.d/pynq_venv.sh         # PYNQ >= 3.0 keeps pynq in this environment
source /etc/profile.d/xrt_setup.sh         # if the image has it (XRT-based images, e.g. Zynq UltraScale+)
cd /home/xilinx/dtl_driver && python3 dtl_driver.py --steps 20
```
It prints the FE run time and whether the output is bit-exact, then the re-training steps, their time and how
many weights changed, and exits 0 (1 on a mismatch or an overlay that does not fit this project).
`--teacher teacher.npz` (an array `logits`: a teacher's float logits of each sample of `rl_train.npz`, in its
order) distils from it, `--kd-alpha A` (default 0.5) and `--kd-temperature T` (a power of two, default 2)
weighting it, as `dtlgen sim --retrain --teacher` does in simulation.

From Python (or a Jupyter notebook):
```
from dtl_driver import DtlBoard
board = DtlBoard()                         # loads dtl_overlay.bit, copies the FE image into DMA memory
features = board.fe_infer(x_int)           # one int8 sample, shape {tuple(program['input_shape'])}
rows = board.extract_features(xs)          # a batch, one flattened row per sample{retrain}
```
{cycles}
"""
