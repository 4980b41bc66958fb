"""The PYNQ driver directory of a project (dtlgen.generator.driver, hw_templates/board/driver).

The driver runs on a board without torch or an installed dtlgen, so the vendored modules must import
and compute the same descriptors as the package with only the driver directory on sys.path and the
heavy packages blocked. On this machine there is no board: a fake `pynq` module stands in, with the
HLS register map of the engines (Vitis HLS splits the 64-bit `mem` offset into `mem_1`/`mem_2`),
ap_start/ap_done semantics (ap_done clears on read) and, end to end, the engines' C simulation
(dtlgen.csim) running on the driver's DMA buffers in place. The FE output must equal the golden
model's bit for bit and re-training must give the golden model's weights after every step.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import dtlgen
from dtlgen.cli import main as dtlgen_main
from dtlgen.generator.loader import load_rl_project
from dtlgen.generator.driver import DRIVER, host_closure, write_driver
from dtlgen.generator.xilinx import instance_name
from dtlgen.host.rl_host import TrainingPlan
from dtlgen.isa import regs
from dtlgen.isa.port import gang_indices

DESIGN = {"board": "pynq-z2", "clock_mhz": 100, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}
FE, RL = instance_name("fe"), instance_name("rl")  # the block design's instances: dtl_fe_engine_0, ...
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
HIGH_DDR = 0x8_0000_0000  # a Zynq UltraScale+ buffer above 4 GiB: the pointer's high word matters
LOW_DDR = 0x1000_0000  # where the RTL engines' buffers go (their MEM_BASE is 32 bits)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("driver")
    (root / "design.json").write_text(json.dumps(DESIGN))
    out = root / "prj"
    assert dtlgen_main(["generate", "digits_cnn", "--design", str(root / "design.json"), "--out", str(out)]) == 0
    write_driver(out, "rtl", 16)  # as generate wrote it: pynq-z2's engines gang two 8-byte HP ports
    return out


def driver_for(project: Path, tmp_path: Path, engine_ip: str) -> Path:
    """The project's driver directory for a bitstream of `engine_ip` engines (the project's own, the RTL
    engines', or a copy whose overlay.json names the HLS IP)."""
    names = json.loads((project / "driver" / "overlay.json").read_text())
    assert names["engine_ip"] == "rtl", "the generator's default is the RTL engines"
    if engine_ip == "rtl":
        return project / "driver"
    copy = tmp_path / "driver"
    shutil.copytree(project / "driver", copy)
    (copy / "overlay.json").write_text(json.dumps(names | {"engine_ip": engine_ip}))
    return copy


def load_driver(directory: Path, monkeypatch) -> types.ModuleType:
    """Import a driver directory's dtl_driver.py as a fresh module (it prepends its directory to sys.path)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location(f"dtl_driver_{abs(hash(str(directory)))}", directory / DRIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the directory ------------------------------------------------------------------------------
def test_driver_directory_holds_the_driver_data_and_readme(project):
    driver = project / "driver"
    assert json.loads((driver / "overlay.json").read_text()) == \
        {"bitstream": "dtl_overlay.bit", "engine_ip": "rtl", "engines": {"fe": "dtl_fe_engine_0", "rl": "dtl_rl_engine_0"},
         "gang_bus_bytes": 16}
    for name in (DRIVER, "fe_image.bin", "fe_program.json", "fe_expected.npy", "rl_layout.json", "rl_train.npz",
                 "rl_train.json", "README.md", "dtlgen/host/rl_host.py", "dtlgen/host/rl_program.py",
                 "dtlgen/host/axil_engine.py", "dtlgen/isa/regs.py"):
        assert (driver / name).is_file(), name
    assert not (driver / "dtlgen" / "boards").exists()
    program = json.loads((driver / "fe_program.json").read_text())
    sim_program = json.loads((project / "sim" / "program.json").read_text())
    expected = np.load(project / "sim" / "expected.npz")
    assert (driver / "fe_image.bin").read_bytes() == expected["memory"].tobytes()
    assert program["desc_count"] == len(sim_program["ops"]) and program["clock_mhz"] == 100
    assert program["input_addr"] == sim_program.get("input_addr", 256)  # digits_cnn: after 4 descriptors
    assert program["input_shape"] == [1, 8, 8]
    assert [op["out_addr"] for op in program["ops"]] == [op["out_addr"] for op in sim_program["ops"]]
    assert np.array_equal(np.load(driver / "fe_expected.npy"), expected[f"op{len(sim_program['ops']) - 1}"])
    assert (driver / "rl_train.npz").read_bytes() == (project / "sim" / "rl_train.npz").read_bytes()
    readme = (driver / "README.md").read_text()
    assert "dtl_driver.py --steps" in readme and "dtl_overlay.hwh" in readme and "with pynq and numpy\n" in readme


def test_vendored_modules_are_the_host_loops_import_closure_byte_for_byte(project):
    modules, third_party = host_closure()
    assert "dtlgen.host.rl_host" in modules and "dtlgen.host.rl_program" in modules
    assert set(third_party) <= {"numpy"}, f"the board needs only numpy: {third_party}"
    package = Path(dtlgen.__file__).resolve().parent
    vendored = sorted(p for p in (project / "driver" / "dtlgen").rglob("*.py"))
    assert {p.relative_to(project / "driver").as_posix() for p in vendored} == \
        {path.resolve().relative_to(package.parent).as_posix() for path in modules.values()}
    for path in vendored:
        original = package.parent / path.relative_to(project / "driver")
        assert path.read_bytes() == original.read_bytes(), f"{path} differs from {original}"


# The planning half of the RL program and everything it reads: the driver must not vendor any of it.
NOT_RUNTIME = ("dtlgen.generator", "dtlgen.perf", "dtlgen.model", "dtlgen.boards", "dtlgen.quant.quantize")


def planning_modules(modules) -> list[str]:
    return sorted(name for name in modules if any(name == p or name.startswith(p + ".") for p in NOT_RUNTIME))


def test_the_host_loop_imports_only_the_runtime_half(tmp_path, monkeypatch):
    """The host loop's closure (fresh interpreter, as the driver's vendoring computes it) holds the
    layout record, descriptor lists and images, not the planner, the perf model, the quantiser, the
    network model or the board files. The check fails on a host module that imports one of them."""
    modules, _ = host_closure()
    assert planning_modules(modules) == [], "the host loop imports the planning half"
    assert {"dtlgen.host.rl_program", "dtlgen.host.rl_plan", "dtlgen.isa.rl", "dtlgen.quant.fixed"} <= set(modules)
    (tmp_path / "planted_host.py").write_text("import dtlgen.host.rl_host\nfrom dtlgen.perf import rl\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    planted, _ = host_closure(("planted_host",))
    assert {"dtlgen.perf.rl", "dtlgen.model.ir", "dtlgen.boards"} <= set(planning_modules(planted))


# The same host-loop run, in the test process (package modules) and on the board's side (vendored
# modules): every write, descriptor list and read goes into one digest.
SCENARIO = r'''
import asyncio, hashlib, json
import numpy as np
from dtlgen.host.rl_host import RLHost, TrainingPlan
from dtlgen.host.rl_program import RLLayout

class RecordingDevice:
    def __init__(self, size):
        self.memory = bytearray(size)
        self.digest = hashlib.sha256()

    async def write(self, addr, data):
        self.memory[addr:addr + len(data)] = data
        self.digest.update(b"w%d:" % addr + bytes(data))

    async def read(self, addr, size):
        self.digest.update(b"r%d,%d" % (addr, size))
        return bytes(self.memory[addr:addr + size])

    async def run(self, desc_addr, count, perf_base):
        self.digest.update(b"run%d,%d,%d" % (desc_addr, count, perf_base))
        return 1

def scenario(driver_dir):
    layout = RLLayout.from_dict(json.loads((driver_dir / "rl_layout.json").read_text()))
    data = np.load(driver_dir / "rl_train.npz")
    state = {p.name: (data["w_" + p.name], data["b_" + p.name]) for p in layout.layers}
    n = len(data["labels"])
    plan = TrainingPlan(data["features"], data["labels"], np.arange(2 * layout.batch) % n, [layout.batch] * 2,
                        [7, 6], 5, [1])
    device = RecordingDevice(layout.memory_bytes)
    run = asyncio.run(RLHost(device, layout).train(plan, state))
    weights = int(sum(np.abs(w).sum() for w, _ in run.weights[1].values()))
    return {"digest": device.digest.hexdigest(), "weights": weights}
'''

BOARD_SIDE = r'''
import json, sys
from pathlib import Path
DRIVER_DIR, REPO = sys.argv[1], sys.argv[2]
BLOCKED = {"torch", "pymoo", "cocotb", "jinja2"}

class Blocker:
    """What the board lacks: importing it fails as it would there."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on the board")
        return None

sys.meta_path = [Blocker()] + [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
# Drop the repository itself (an editable install may put it on sys.path), not a venv that lives inside it.
sys.path = [DRIVER_DIR] + [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != Path(REPO)]
import dtl_driver
exec(sys.stdin.read())
result = scenario(Path(DRIVER_DIR))
result["files"] = sorted({m.__file__ for n, m in sys.modules.items() if n.split(".")[0] == "dtlgen"})
result["blocked_loaded"] = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
print(json.dumps(result))
'''


def test_vendored_copy_runs_the_host_loop_without_torch_or_the_repo(project):
    driver = project / "driver"
    repo = str(Path(dtlgen.__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-c", BOARD_SIDE, str(driver), repo], input=SCENARIO, capture_output=True,
                          text=True, cwd=driver)
    assert done.returncode == 0, done.stderr[-3000:]
    board_side = json.loads(done.stdout.strip().splitlines()[-1])
    assert board_side["files"] and all(f.startswith(str(driver)) for f in board_side["files"]), board_side["files"]
    assert board_side["blocked_loaded"] == []
    namespace: dict = {}
    exec(SCENARIO, namespace)
    here = namespace["scenario"](driver)
    assert board_side["digest"] == here["digest"] and board_side["weights"] == here["weights"]


# --- a fake pynq --------------------------------------------------------------------------------
def vitis_registers(pointer: str = "split", out: bool = False) -> dict:
    """An HLS engine's register map as PYNQ parses it from the .hwh (ip_dict[name]["registers"]); `out`:
    the FE engine's second pointer, the port its outputs are written through."""
    def reg(offset, size=32, access="read-write"):
        return {"address_offset": offset, "size": size, "access": access, "description": "", "fields": {}}

    regs = {"CTRL": reg(0x00), "GIER": reg(0x04), "IP_IER": reg(0x08), "IP_ISR": reg(0x0C)}
    if pointer == "split":  # Vitis HLS, 64-bit m_axi offset
        regs.update(mem_1=reg(0x10), mem_2=reg(0x14))
        if out:
            regs.update(out_1=reg(0x1C), out_2=reg(0x20))
    elif pointer == "wide":
        regs.update(mem=reg(0x10, 64))
        if out:
            regs.update(out=reg(0x1C, 64))
    else:  # 32-bit addresses
        regs.update(mem=reg(0x10, 32))
        if out:
            regs.update(out=reg(0x18, 32))
    regs.update(desc_addr=reg(0x28), desc_count=reg(0x30, 16))
    return regs


class FakeBuffer(np.ndarray):
    """A pynq.allocate buffer: a numpy array with a physical address and cache maintenance."""

    def flush(self):
        self.flushes += 1

    def invalidate(self):
        self.invalidates += 1


class FakeIP:
    """An HLS engine behind its s_axilite registers; `engine(memory, desc_addr, desc_count)` runs on
    ap_start, on the buffer the `mem` register points at (None: the engine never finishes)."""

    def __init__(self, registers: dict, buffers: dict, engine):
        self.offsets = {name: r["address_offset"] for name, r in registers.items()}
        self.sizes = {name: r["size"] for name, r in registers.items()}
        self.values: dict[int, int] = {}
        self.buffers = buffers
        self.engine = engine
        self.status = AP_IDLE
        self.starts = 0

    def value(self, name: str) -> int:
        return self.values.get(self.offsets[name], 0)

    def pointer(self, arg: str = "mem") -> int:
        if f"{arg}_1" in self.offsets:
            low = self.value(f"{arg}_1")
            return low | self.value(f"{arg}_2") << 32 if f"{arg}_2" in self.offsets else low
        low = self.value(arg)
        return low | self.values.get(self.offsets[arg] + 4, 0) << 32 if self.sizes[arg] > 32 else low

    def write(self, offset: int, value: int) -> None:
        assert isinstance(value, int) and 0 <= value < 1 << 32 and offset % 4 == 0, (offset, value)
        if offset == self.offsets["CTRL"]:
            if value & AP_START:
                self.starts += 1
                self.status = 0
                if self.engine is not None:
                    buffer = self.buffers[self.pointer()]
                    if "out_1" in self.offsets or "out" in self.offsets:  # the FE writes through `out`
                        assert self.pointer("out") == self.pointer(), "out must point at the engine's buffer"
                    self.engine(buffer.view(np.ndarray), self.value("desc_addr"), self.value("desc_count"))
                    self.status = AP_DONE | AP_IDLE
            return
        self.values[offset] = value

    def read(self, offset: int) -> int:
        if offset == self.offsets["CTRL"]:
            status = self.status
            self.status &= ~AP_DONE  # ap_done clears on read
            return status
        return self.values.get(offset, 0)


class FakeRtlIP:
    """An RTL engine behind its AXI4-Lite registers (dtl_axil_regs.sv, dtlgen.isa.regs): a start runs
    `engine(memory, desc_addr, desc_count)` on the buffer MEM_BASE points at and leaves `finished`
    (None: the engine stays busy); settings are ignored while it is busy. With `gang` (its bus in bytes)
    the engine sees the buffer through two ganged ports (dtl_axi_gang.sv: dtlgen.isa.port.gang_offset)."""

    def __init__(self, buffers: dict, engine, gang: int = 0):
        self.values: dict[int, int] = {}
        self.buffers = buffers
        self.engine = engine
        self.gang = gang
        self.busy = False
        self.starts = 0

    def write(self, offset: int, value: int) -> None:
        assert isinstance(value, int) and 0 <= value < 1 << 32 and offset % 4 == 0, (offset, value)
        if offset == regs.CONTROL:
            if value & regs.START and not self.busy:
                self.starts += 1
                self.busy = self.engine is None
                if self.engine is not None:
                    count = self.values.get(regs.DESC_COUNT, 0)
                    buffer = self.buffers[self.values.get(regs.MEM_BASE, 0)].view(np.ndarray)
                    if self.gang:  # the engine's view through its ports, and back
                        where = gang_indices(0, len(buffer), self.gang)
                        memory = buffer[where]
                        self.engine(memory, self.values.get(regs.DESC_ADDR, 0), count)
                        buffer[where] = memory
                    else:
                        self.engine(buffer, self.values.get(regs.DESC_ADDR, 0), count)
                    self.values[regs.RUN_CYCLES] = 1000 + count
        elif offset in (regs.DESC_ADDR, regs.DESC_COUNT, regs.PERF_BASE, regs.MEM_BASE) and not self.busy:
            self.values[offset] = value & ~0xFFF if offset == regs.MEM_BASE else value

    def read(self, offset: int) -> int:
        if offset == regs.CONTROL:
            return regs.BUSY if self.busy else regs.FINISHED
        return self.values.get(offset, 0)


GANG = {"rtl": 16, "hls": 0}  # the project's (pynq-z2's) RTL engines gang two ports; its HLS IP has one


def fake_pynq(engines: dict, pointer: str = "split", registers: dict | None = None,
              engine_ip: str = "hls", gang: int = 0) -> types.ModuleType:
    """PYNQ with `engines` (instance -> engine function) as HLS IP (registers from the .hwh) or as the
    RTL engines (a module reference: no register map in the .hwh; buffers in the low 4 GB; `gang`: on
    two ganged ports of a bus that wide, as pynq-z2's)."""
    pynq = types.ModuleType("pynq")
    buffers: dict[int, FakeBuffer] = {}

    def allocate(shape, dtype=np.uint8, **kwargs):
        buffer = np.zeros(shape, dtype=dtype).view(FakeBuffer)
        if engine_ip == "rtl":
            buffer.physical_address = LOW_DDR + 0x100_0000 * len(buffers)
        else:
            buffer.physical_address = HIGH_DDR + 0x100_0000 * len(buffers) if pointer != "narrow" else LOW_DDR
        buffer.flushes = buffer.invalidates = 0
        buffers[buffer.physical_address] = buffer
        return buffer

    class Overlay:
        def __init__(self, bitfile):
            self.bitfile = bitfile
            self.ip_dict = {name: {"registers": {} if engine_ip == "rtl" else
                                   (registers or {}).get(name, vitis_registers(pointer)),
                                   "phys_addr": 0x4000_0000 + 0x1_0000 * i}
                            for i, name in enumerate(engines)}
            for name, engine in engines.items():
                setattr(self, name, FakeRtlIP(buffers, engine, gang) if engine_ip == "rtl"
                        else FakeIP(self.ip_dict[name]["registers"], buffers, engine))

    pynq.allocate, pynq.Overlay, pynq.buffers = allocate, Overlay, buffers
    return pynq


# --- PynqDevice on the fake ---------------------------------------------------------------------
@pytest.mark.parametrize("pointer", ["split", "wide"])
@pytest.mark.parametrize("out", [False, True])
def test_device_writes_the_engine_registers_and_runs_on_its_buffer(project, monkeypatch, pointer, out):
    driver = load_driver(project / "driver", monkeypatch)
    seen = []

    def engine(memory, desc_addr, desc_count):
        seen.append((bytes(memory[desc_addr:desc_addr + 4]), desc_count))
        memory[100:104] = [1, 2, 3, 4]

    pynq = fake_pynq({FE: engine}, pointer, registers={FE: vitis_registers(pointer, out)})
    overlay = pynq.Overlay("x.bit")
    buffer = pynq.allocate(shape=(4096,), dtype=np.uint8)
    device = driver.PynqDevice(getattr(overlay, FE), buffer, 100e6, overlay.ip_dict[FE]["registers"], FE)
    driver.run_coroutine(device.write(64, b"\xaa\xbb\xcc\xdd"))
    assert buffer.flushes == 1
    cycles = driver.run_coroutine(device.run(64, 3, 0))
    assert seen == [(b"\xaa\xbb\xcc\xdd", 3)] and cycles >= 1
    assert getattr(overlay, FE).pointer() == buffer.physical_address > 1 << 32
    if out:  # the FE engine's output port points at the same buffer
        assert getattr(overlay, FE).pointer("out") == buffer.physical_address
    assert driver.run_coroutine(device.read(100, 4)) == b"\x01\x02\x03\x04" and buffer.invalidates == 1


def test_the_host_loop_also_runs_under_a_running_event_loop(project, monkeypatch):
    """Jupyter, PYNQ's usual front end, runs an event loop in the thread that calls the driver."""
    driver = load_driver(project / "driver", monkeypatch)

    async def answer():
        return 42

    async def notebook_cell():
        return driver.run_coroutine(answer())

    assert asyncio.run(notebook_cell()) == 42


def test_a_32_bit_pointer_register_takes_a_low_buffer_and_refuses_a_high_one(project, monkeypatch):
    driver = load_driver(project / "driver", monkeypatch)
    pynq = fake_pynq({FE: lambda memory, addr, count: None}, "narrow")
    overlay = pynq.Overlay("x.bit")
    buffer = pynq.allocate(shape=(256,), dtype=np.uint8)
    device = driver.PynqDevice(getattr(overlay, FE), buffer, 100e6, overlay.ip_dict[FE]["registers"], FE)
    driver.run_coroutine(device.run(0, 1, 0))
    assert getattr(overlay, FE).pointer() == 0x1000_0000
    buffer.physical_address = HIGH_DDR
    with pytest.raises(driver.DriverError, match="32-bit 'mem' register"):
        driver.run_coroutine(device.run(0, 1, 0))


def test_an_engine_that_never_finishes_times_out_naming_the_engine(project, monkeypatch):
    driver = load_driver(project / "driver", monkeypatch)
    pynq = fake_pynq({RL: None})
    overlay = pynq.Overlay("x.bit")
    buffer = pynq.allocate(shape=(256,), dtype=np.uint8)
    device = driver.PynqDevice(getattr(overlay, RL), buffer, 100e6, overlay.ip_dict[RL]["registers"], RL,
                               timeout_s=0.05)
    with pytest.raises(driver.EngineTimeout, match=f"engine {RL} did not finish 7 descriptors"):
        driver.run_coroutine(device.run(0, 7, 0))
    with pytest.raises(driver.DriverError, match="busy"):  # still running: no second start on top of it
        driver.run_coroutine(device.run(0, 7, 0))
    assert getattr(overlay, RL).starts == 1


def test_a_missing_register_is_a_clear_error(project, tmp_path, monkeypatch):
    driver_dir = driver_for(project, tmp_path, "hls")
    driver = load_driver(driver_dir, monkeypatch)
    registers = vitis_registers()
    del registers["desc_count"]
    with pytest.raises(driver.DriverError, match=f"engine {FE}: .* no 'desc_count' register .*desc_addr"):
        driver.PynqDevice(object(), None, 100e6, registers, FE)
    registers = {name: r for name, r in vitis_registers().items() if not name.startswith("mem")}
    with pytest.raises(driver.DriverError, match="no memory pointer register \\('mem_1'/'mem_2' or 'mem'"):
        driver.PynqDevice(object(), None, 100e6, registers, FE)
    monkeypatch.setitem(sys.modules, "pynq", fake_pynq({FE: None, RL: None},
                                                       registers={RL: {"CTRL": vitis_registers()["CTRL"]}}))
    with pytest.raises(driver.DriverError, match=f"engine {RL}: .*no memory pointer"):
        driver.DtlBoard(driver_dir, overlay=sys.modules["pynq"].Overlay("x.bit"))
    with pytest.raises(driver.DriverError, match=f"no IP '{RL}'"):
        driver.DtlBoard(driver_dir, overlay=fake_pynq({FE: None}).Overlay("x.bit"))
    with pytest.raises(driver.DriverError, match="dtl_overlay.hwh beside it .*make bitstream"):
        driver.DtlBoard(driver_dir)


@pytest.mark.parametrize("engine_ip", ["rtl", "hls"])
def test_board_wiring_with_stub_engines(project, tmp_path, monkeypatch, capsys, engine_ip):
    """Without the engines' arithmetic: the FE stub stores the golden output only if it finds the
    sample where the program says; the RL stub does nothing, so weights come back as loaded."""
    driver_dir = driver_for(project, tmp_path, engine_ip)
    driver = load_driver(driver_dir, monkeypatch)
    program = json.loads((driver_dir / "fe_program.json").read_text())
    golden = np.load(driver_dir / "fe_expected.npy")
    last = program["ops"][-1]
    sample = np.load(project / "sim" / "expected.npz")["memory"][program["input_addr"]:][:64].copy()

    def fe_stub(memory, desc_addr, desc_count):
        assert (desc_addr, desc_count) == (program["desc_addr"], program["desc_count"])
        found = memory[program["input_addr"]:program["input_addr"] + 64]
        out = golden.reshape(-1) if np.array_equal(found, sample) else np.full(golden.size, 7)
        memory[last["out_addr"]:last["out_addr"] + golden.size] = out.astype(np.int8).view(np.uint8)

    pynq = fake_pynq({FE: fe_stub, RL: lambda memory, addr, count: None}, engine_ip=engine_ip, gang=GANG[engine_ip])
    monkeypatch.setitem(sys.modules, "pynq", pynq)
    board = driver.DtlBoard(driver_dir, overlay=pynq.Overlay("x.bit"))
    assert type(board.fe).__name__ == {"rtl": "RtlDevice", "hls": "PynqDevice"}[engine_ip]
    x = board.generation_sample()
    assert np.all(board.fe_infer(np.zeros_like(x)) == 7)
    assert np.array_equal(board.fe_infer(x), golden) and board.last_fe_cycles >= 1
    assert board.extract_features(np.stack([x, x])).shape == (2, golden.size)
    with pytest.raises(driver.DriverError, match="one signed byte"):
        board.fe_infer(x + 300)
    state = board.initial_state()
    run = board.retrain(board.default_plan(2), state)
    assert run.cycles.shape == (2, 2) and set(run.weights) == {1}
    for name, (w, b) in state.items():
        assert np.array_equal(run.weights[1][name][0], w) and np.array_equal(run.weights[1][name][1], b)
    if engine_ip == "rtl":  # the engine's own count, not the PS's wall time
        assert board.last_fe_cycles == 1000 + program["desc_count"]
    assert driver.main(["--steps", "2", "--bitfile", str(fake_bitfile(project))]) == 0
    out = capsys.readouterr().out
    assert "bit-exact vs golden model: yes" in out and "2 steps of batch 16" in out
    assert "0 of 8554 weights and biases changed" in out  # fc1 32x256+32, fc2 10x32+10; the stub trains nothing
    assert {"rtl": "the engine's own count", "hls": "PS wall time"}[engine_ip] in out


def test_a_project_without_retrainable_layers_runs_the_fe_engine_only(project, tmp_path, monkeypatch, capsys):
    driver_dir = tmp_path / "driver"
    shutil.copytree(project / "driver", driver_dir)
    for name in ("rl_layout.json", "rl_train.npz", "rl_train.json"):
        (driver_dir / name).unlink()
    (driver_dir / "overlay.json").write_text(json.dumps({"bitstream": "dtl_overlay.bit", "engines": {"fe": FE}}))
    driver = load_driver(driver_dir, monkeypatch)
    program = json.loads((driver_dir / "fe_program.json").read_text())
    golden = np.load(driver_dir / "fe_expected.npy")

    def fe_stub(memory, desc_addr, desc_count):
        out = program["ops"][-1]["out_addr"]
        memory[out:out + golden.size] = golden.reshape(-1).astype(np.int8).view(np.uint8)

    pynq = fake_pynq({FE: fe_stub})
    monkeypatch.setitem(sys.modules, "pynq", pynq)
    board = driver.DtlBoard(driver_dir, overlay=pynq.Overlay("x.bit"))
    with pytest.raises(driver.DriverError, match="no RL engine"):
        board.retrain(None, {})
    assert driver.main(["--bitfile", str(fake_bitfile(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "bit-exact vs golden model: yes" in out and "nothing to re-train" in out


def fake_bitfile(project: Path) -> Path:
    """main() loads the overlay itself: an (empty) .bit with its .hwh beside it, for the fake Overlay."""
    bitfile = project / "bit" / "dtl_overlay.bit"
    bitfile.parent.mkdir(exist_ok=True)
    bitfile.write_bytes(b"")
    bitfile.with_suffix(".hwh").write_text("")
    return bitfile


# --- end to end: the engines' C simulation behind the fake --------------------------------------
@pytest.fixture(scope="module")
def csim_engines(project):
    try:
        from dtlgen.csim import CsimEngines
    except ImportError as err:
        pytest.fail(f"dtlgen.csim (the engines' C simulation) is needed for the end-to-end driver test: {err}")
    return CsimEngines(project)


@pytest.mark.parametrize("engine_ip", ["rtl", "hls"])
def test_driver_end_to_end_on_the_c_simulated_engines(project, tmp_path, csim_engines, monkeypatch, capsys,
                                                      engine_ip):
    from dtlgen.sim.rl_sim import first_mismatch, golden_replay

    driver_dir = driver_for(project, tmp_path, engine_ip)
    driver = load_driver(driver_dir, monkeypatch)
    pynq = fake_pynq({FE: csim_engines.run_fe, RL: csim_engines.run_rl}, engine_ip=engine_ip, gang=GANG[engine_ip])
    monkeypatch.setitem(sys.modules, "pynq", pynq)
    board = driver.DtlBoard(driver_dir, overlay=pynq.Overlay("x.bit"))
    expected = np.load(project / "sim" / "expected.npz")
    golden = expected[f"op{board.program['desc_count'] - 1}"]
    x = board.generation_sample()
    other = np.random.default_rng(3).integers(-128, 128, size=x.shape)
    assert not np.array_equal(board.fe_infer(other), golden)  # the sample written really is the one run
    assert np.array_equal(board.fe_infer(x), golden)

    data = np.load(driver_dir / "rl_train.npz")
    qnet = load_rl_project(project).qnet
    state = board.initial_state()
    n, batch = len(data["labels"]), board.layout.batch
    order = np.random.default_rng(5).permutation(np.arange(3 * batch) % n)
    plan = TrainingPlan(data["features"], data["labels"], order, [batch] * 3, [qnet.precision.lr_shift] * 3, 0,
                        [0, 1, 2])
    run = board.retrain(plan, state)
    assert first_mismatch(run.weights, golden_replay(qnet, plan, state)) is None

    assert driver.main(["--steps", "2", "--bitfile", str(fake_bitfile(project))]) == 0
    out = capsys.readouterr().out
    assert "bit-exact vs golden model: yes" in out and "2 steps of batch 16" in out
    assert "0 of" not in out, "re-training on the engine changes some weights"

    # distilled from a teacher's logits of the cached set: the golden model replays the same plan
    teacher = np.eye(board.layout.layers[-1].m)[data["labels"]] * 3.0
    plan = board.default_plan(3, teacher=teacher, kd=driver.Distillation.from_values(0.75, 4))
    run = board.retrain(plan, state)
    assert plan.kd is not None and first_mismatch(run.weights, golden_replay(qnet, plan, state)) is None
    np.savez(tmp_path / "teacher.npz", logits=teacher)
    assert driver.main(["--steps", "2", "--bitfile", str(fake_bitfile(project)), "--teacher",
                        str(tmp_path / "teacher.npz")]) == 0
    assert "re-training (distilled from --teacher): 2 steps" in capsys.readouterr().out
    np.savez(tmp_path / "short.npz", logits=teacher[:3])
    assert driver.main(["--steps", "1", "--bitfile", str(fake_bitfile(project)), "--teacher",
                        str(tmp_path / "short.npz")]) == 1
    assert "one row per cached re-training sample" in capsys.readouterr().err
    np.save(tmp_path / "plain.npy", teacher)  # np.save, not savez: one line, not a traceback
    assert driver.main(["--steps", "1", "--bitfile", str(fake_bitfile(project)), "--teacher",
                        str(tmp_path / "plain.npy")]) == 1
    assert "is not an NPZ file with an array logits" in capsys.readouterr().err


# --- RtlDevice on the fake ----------------------------------------------------------------------
def test_a_ganged_rtl_device_lays_its_buffer_out_for_the_two_ports(project, monkeypatch):
    """pynq-z2's engines gang two 8-byte HP ports: what the host writes at an engine address sits where
    dtl_axi_gang's ports read it (a 16-byte beat's low half in its 2 KB page's first 1 KB, its high half
    in the last), the engine sees exactly the bytes written, and the host reads back what the engine
    wrote."""
    driver = load_driver(project / "driver", monkeypatch)
    data = bytes(range(40))

    def engine(memory, desc_addr, desc_count):
        assert bytes(memory[2048 + 8:2048 + 48]) == data
        memory[2048 + 100] = 0x5A

    pynq = fake_pynq({FE: engine}, engine_ip="rtl", gang=16)
    buffer = pynq.allocate(shape=(8192,), dtype=np.uint8)
    device = driver.RtlDevice(getattr(pynq.Overlay("x.bit"), FE), buffer, FE, gang=16)
    driver.run_coroutine(device.write(2048 + 8, data))  # beats 0 (its high half) to 3 of page 1
    raw = np.asarray(buffer)
    assert bytes(raw[2048 + 1024:2048 + 1032]) == data[:8]  # beat 0's high half
    assert bytes(raw[2048 + 8:2048 + 16]) == data[8:16]  # beat 1's low half
    assert bytes(raw[2048 + 1024 + 8:2048 + 1024 + 16]) == data[16:24]  # and its high half
    driver.run_coroutine(device.run(0, 1, 0))
    assert driver.run_coroutine(device.read(2048 + 100, 1)) == b"\x5a"
    assert raw[2048 + 6 * 8 + 4] == 0x5A  # beat 6, byte 4: its low half


def test_rtl_device_points_the_engine_at_its_buffer_and_reports_its_cycles(project, monkeypatch):
    driver = load_driver(project / "driver", monkeypatch)
    seen = []

    def engine(memory, desc_addr, desc_count):
        seen.append((bytes(memory[desc_addr:desc_addr + 4]), desc_count))

    pynq = fake_pynq({FE: engine}, engine_ip="rtl")
    overlay = pynq.Overlay("x.bit")
    pynq.allocate(shape=(4096,), dtype=np.uint8)  # another buffer first: the engine's is not at LOW_DDR
    buffer = pynq.allocate(shape=(4096,), dtype=np.uint8)
    device = driver.RtlDevice(getattr(overlay, FE), buffer, FE)
    driver.run_coroutine(device.write(64, b"\xaa\xbb\xcc\xdd"))
    assert driver.run_coroutine(device.run(64, 3, 0)) == 1003
    assert seen == [(b"\xaa\xbb\xcc\xdd", 3)]
    assert getattr(overlay, FE).values[regs.MEM_BASE] == buffer.physical_address == LOW_DDR + 0x100_0000


def test_rtl_device_refuses_a_buffer_it_cannot_address(project, monkeypatch):
    driver = load_driver(project / "driver", monkeypatch)
    pynq = fake_pynq({FE: lambda memory, addr, count: None}, engine_ip="rtl")
    buffer = pynq.allocate(shape=(256,), dtype=np.uint8)
    for address, why in ((HIGH_DDR, "below 4 GB"), (LOW_DDR + 0x800, "4096-byte aligned")):
        buffer.physical_address = address
        device = driver.RtlDevice(getattr(pynq.Overlay("x.bit"), FE), buffer, FE)
        with pytest.raises(driver.DriverError, match=f"engine {FE}: its memory at bus address .*{why}"):
            driver.run_coroutine(device.run(0, 1, 0))


def test_an_rtl_engine_that_never_finishes_times_out_naming_the_engine(project, monkeypatch):
    driver = load_driver(project / "driver", monkeypatch)
    pynq = fake_pynq({RL: None}, engine_ip="rtl")
    overlay = pynq.Overlay("x.bit")
    device = driver.RtlDevice(getattr(overlay, RL), pynq.allocate(shape=(256,), dtype=np.uint8), RL, timeout_s=0.05)
    with pytest.raises(driver.EngineTimeout, match=f"engine {RL} did not finish within 0.05 s"):
        driver.run_coroutine(device.run(0, 7, 0))
    with pytest.raises(driver.DriverError, match="busy before a start"):  # no second start on top of it
        driver.run_coroutine(device.run(0, 7, 0))
    assert getattr(overlay, RL).starts == 1


def test_an_unknown_engine_kind_in_overlay_json_is_a_clear_error(project, tmp_path, monkeypatch):
    driver_dir = driver_for(project, tmp_path, "fpga")
    driver = load_driver(driver_dir, monkeypatch)
    pynq = fake_pynq({FE: None, RL: None}, engine_ip="rtl")
    monkeypatch.setitem(sys.modules, "pynq", pynq)
    with pytest.raises(driver.DriverError, match="overlay.json: engine_ip is 'fpga'; expected 'rtl' or 'hls'"):
        driver.DtlBoard(driver_dir, overlay=pynq.Overlay("x.bit"))


@pytest.mark.parametrize("gang", [12, "16", True, -16])
def test_a_wrong_ganged_bus_in_overlay_json_is_a_clear_error(project, tmp_path, monkeypatch, gang):
    driver_dir = tmp_path / "driver"  # a copy: the project's own driver stays as generated
    shutil.copytree(project / "driver", driver_dir)
    names = json.loads((driver_dir / "overlay.json").read_text())
    (driver_dir / "overlay.json").write_text(json.dumps(names | {"gang_bus_bytes": gang}))
    driver = load_driver(driver_dir, monkeypatch)
    pynq = fake_pynq({FE: None, RL: None}, engine_ip="rtl", gang=16)
    monkeypatch.setitem(sys.modules, "pynq", pynq)
    with pytest.raises(driver.DriverError, match="overlay.json: gang_bus_bytes is .*; expected 0 .* a power of two"):
        driver.DtlBoard(driver_dir, overlay=pynq.Overlay("x.bit"))


def test_generate_with_the_hls_ip_writes_the_hls_block_design_and_driver(project, tmp_path):
    out = tmp_path / "hls_prj"
    assert dtlgen_main(["generate", "digits_cnn", "--design", str(project.parent / "design.json"), "--out", str(out),
                        "--engine-ip", "hls"]) == 0
    assert json.loads((out / "driver" / "overlay.json").read_text())["engine_ip"] == "hls"
    assert not (out / "vivado" / "rtl").exists()
    assert "create_bd_cell -type ip -vlnv xilinx.com:hls:dtl_fe_engine:1.0" in (out / "vivado" / "build_bd.tcl").read_text()
    rtl = project / "vivado" / "rtl"
    assert sorted(p.name for p in rtl.iterdir()) == sorted(
        ["dtl_ram.sv", "fe_engine.sv", "dtl_axi_master.sv", "dtl_axil_regs.sv", "dtl_fe_axi.sv", "dtl_fe_ip.v",
         "rl_engine.sv", "dtl_rl_axi.sv", "dtl_rl_ip.v", "dtl_axi_gang.sv"])
    assert "create_bd_cell -type module -reference dtl_rl_ip" in (project / "vivado" / "build_bd.tcl").read_text()


def test_a_head_started_from_a_seed_is_drawn_by_the_driver(tmp_path, monkeypatch):
    """A head whose initial values come from a seed (`seed_head`, issue 18) is sent as the seed: the
    project's driver draws them (`dtlgen.isa.seeded`, vendored), equal to what the golden model and the
    simulators start from; a design that quantises them at another frac is refused at generate."""
    from dtlgen.boards import load_board
    from dtlgen.model import load_model
    from dtlgen.model.calibration import calibration_inputs
    from dtlgen.model.seeded import seed_head
    from dtlgen.errors import DesignError
    from dtlgen.generator.project import generate_project
    from dtlgen.perf import Design
    from dtlgen.quant.quantize import PrecisionConfig, quantize

    network = load_model("digits_cnn")
    x = calibration_inputs(network, 0, 32)
    trained = quantize(network, x, PrecisionConfig())
    fracs = {name: trained.layers[name].w_fmt.frac for name in ("fc1", "fc2")}
    started = seed_head(network, fracs, 5)
    y = np.arange(len(x)) % 10
    board = load_board("pynq-z2")
    with pytest.raises(DesignError, match="'fc1' starts from values drawn from seed 5.*w_frac"):
        generate_project(started, Design.from_dict(DESIGN), board, x, x[0], tmp_path / "refused", train=(x, y))
    design = Design.from_dict(DESIGN | {"overrides": {name: {"w_frac": f} for name, f in fracs.items()}})
    out = generate_project(started, design, board, x, x[0], tmp_path / "prj", train=(x, y))
    assert json.loads((out / "driver" / "rl_train.json").read_text())["initial"]["fc2"]["seed"] == 5
    driver = load_driver(out / "driver", monkeypatch)
    board_driver = driver.DtlBoard.__new__(driver.DtlBoard)  # no overlay: the host side alone
    board_driver.directory = out / "driver"
    board_driver.layout = load_rl_project(out).layout
    drawn = board_driver.initial_state()
    cached = np.load(out / "sim" / "rl_train.npz")
    for name in ("fc1", "fc2"):
        assert np.array_equal(drawn[name][0], cached[f"w_{name}"]) and not drawn[name][1].any()


@pytest.mark.parametrize("cut, match", [("labels", "re-training labels must be 31 integer"),
                                        ("shape", r"re-training inputs have shape \(32, \d+\); the network takes images of \(1, 8, 8\)")])
def test_generate_refuses_a_retraining_set_that_does_not_fit(tmp_path, cut, match):
    """generate_project itself (not only the API and the CLI, which check their files) refuses labels of
    another count and inputs of another shape, before it writes anything."""
    from dtlgen.boards import load_board
    from dtlgen.errors import DesignError
    from dtlgen.generator.project import generate_project
    from dtlgen.model import load_model
    from dtlgen.model.calibration import calibration_inputs
    from dtlgen.perf import Design

    network = load_model("digits_cnn")
    x = calibration_inputs(network, 0, 32)
    y = np.arange(len(x)) % 10
    train = (x[:31], y[:30]) if cut == "labels" else (x.reshape(32, -1), y)
    with pytest.raises(DesignError, match=match):
        generate_project(network, Design.from_dict(DESIGN), load_board("pynq-z2"), x, x[0], tmp_path / "prj",
                         train=train)
    assert not (tmp_path / "prj").exists()
