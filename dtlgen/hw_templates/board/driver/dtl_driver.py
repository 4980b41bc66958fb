"""PYNQ driver of a dtlgen project: runs the FE engine (feature extraction) and the RL engine
(on-device re-training) of `dtl_overlay.bit` from the board's processor.

This file is shipped as is into `PRJ/driver/`, next to a vendored copy of the `dtlgen` modules the
host loop imports (numpy is all they need; the board has no torch). Re-training runs the
very host loop the simulators run (`dtlgen.host.rl_host.RLHost`), here on a `PynqDevice`: the
descriptor lists, the softmax cross-entropy gradient and the parameter images are the simulator's.
It must not re-implement any of that, nor hold a register offset in code: the RTL engines' offsets
and run sequence are dtlgen's own (`dtlgen.isa.regs`, `dtlgen.host.axil_engine`, vendored here, the
ones the RTL simulation drives the engines with); the HLS engines' come from the overlay's register
map (the .hwh beside the .bit). overlay.json says which engines the bitstream holds.

On the board, as root in PYNQ's Python environment, in the directory holding this file and the
overlay (dtl_overlay.bit with dtl_overlay.hwh beside it; README.md says how to get there):
    python3 dtl_driver.py [--steps N]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # the vendored dtlgen beside this file; the board has no installed one

from dtlgen.host.axil_engine import AxiLiteEngine, EngineError  # noqa: E402
from dtlgen.host.rl_host import RLHost, TrainingPlan, TrainingRun  # noqa: E402
from dtlgen.host.rl_plan import check_steps  # noqa: E402
from dtlgen.host.rl_program import RLLayout  # noqa: E402
from dtlgen.isa.port import gang_buffer_bytes, gang_indices  # noqa: E402
from dtlgen.isa import seeded  # noqa: E402
from dtlgen.isa.regs import FINISHED  # noqa: E402
from dtlgen.quant.fixed import Distillation, teacher_logits  # noqa: E402

# HLS block-level control (ap_ctrl_hs) at offset 0x00 of the s_axilite map. ap_done clears on read.
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
CTRL_OFFSET = 0x00


class DriverError(RuntimeError):
    """The overlay, its register map or a driver input does not match this project."""


class EngineTimeout(DriverError):
    """An engine did not finish in time."""


class BufferDevice:
    """What both kinds of engine share: the engine's memory is a pynq.allocate buffer, kept coherent
    with the engine by cache maintenance; every address the host loop uses is an offset into it. An
    engine that gangs two HP ports (`gang` > 0: its bus in bytes, dtl_axi_gang.sv) sees the buffer
    through a permutation inside each 2 KB page (dtlgen.isa.port.gang_offset), which `write`, `read`
    and `place` apply."""

    name: str
    buffer: object
    gang: int = 0

    async def write(self, addr: int, data: bytes) -> None:
        self._check_range(addr, len(data))
        self._view(addr, len(data), np.frombuffer(bytes(data), dtype=np.uint8))
        self.buffer.flush()  # the engine reads DRAM, not the PS's caches

    async def read(self, addr: int, size: int) -> bytes:
        self._check_range(addr, size)
        self.buffer.invalidate()  # drop cached lines so the engine's writes are seen
        return np.asarray(self._view(addr, size), dtype=np.uint8).tobytes()

    def _view(self, addr: int, size: int, data: np.ndarray | None = None) -> np.ndarray | None:
        where = _span(addr, size, self.gang)
        if data is None:
            return self.buffer[where]
        self.buffer[where] = data
        return None

    def _check_range(self, addr: int, size: int) -> None:
        if addr < 0 or addr + size > len(self.buffer):
            raise DriverError(f"engine {self.name}: access [{addr:#x}, {addr + size:#x}) is outside its "
                              f"{len(self.buffer)}-byte buffer")


def _span(addr: int, size: int, gang: int) -> np.ndarray | slice:
    """Where an engine's bytes [addr, addr + size) sit in its buffer: behind two ganged ports of a `gang`-byte
    bus, the permutation of dtlgen.isa.port.gang_offset; else the same offsets."""
    return gang_indices(addr, size, gang) if gang else slice(addr, addr + size)


class RtlDevice(BufferDevice):
    """The host loop's `Device` on one RTL engine of the overlay (the project's vivado/rtl/: the
    SystemVerilog engine behind its AXI4 master and AXI4-Lite registers).

    `ip` reads and writes 32-bit words of its registers (a PYNQ DefaultIP). The run sequence is
    dtlgen.host.axil_engine's, the one the RTL simulation uses; the cycles it returns are the
    engine's own count (RUN_CYCLES: start to the last write answered), not the PS's wall time.
    """

    cycles_source = "the engine's own count"

    def __init__(self, ip, buffer, name: str = "engine", timeout_s: float = 10.0, gang: int = 0):
        self.ip, self.buffer, self.name, self.timeout_s, self.gang = ip, buffer, name, timeout_s, gang
        self.engine = AxiLiteEngine(self._read32, self._write32, name, self._poll)
        self.based = False

    async def _read32(self, offset: int) -> int:
        return int(self.ip.read(offset))

    async def _write32(self, offset: int, value: int) -> None:
        self.ip.write(offset, int(value))

    async def _poll(self, timeout_cycles: int) -> None:
        start = time.perf_counter()
        while not await self.engine.status() & FINISHED:
            if time.perf_counter() - start > self.timeout_s:
                raise EngineTimeout(f"engine {self.name} did not finish within {self.timeout_s:g} s; check the "
                                    "bitstream matches this project and reload the overlay")

    async def run(self, desc_addr: int, count: int, perf_base: int) -> int:
        """Run `count` descriptors from `desc_addr`; returns the engine's cycles (RUN_CYCLES)."""
        try:
            if not self.based:  # the buffer stays where it is for the device's life
                await self.engine.set_memory_base(int(self.buffer.physical_address))
                self.based = True
            return await self.engine.run(desc_addr, count, perf_base, 0)
        except EngineError as err:
            raise DriverError(str(err)) from None


class PynqDevice(BufferDevice):
    """The host loop's `Device` (dtlgen.host.rl_host) on one HLS engine of the overlay.

    `ip` writes/reads 32-bit words of the engine's control registers (a PYNQ DefaultIP), `buffer`
    is the engine's memory (a uint8 `pynq.allocate` buffer; every address the host loop uses is an
    offset into it), `registers` is the engine's entry `overlay.ip_dict[name]["registers"]`.

    The engine's arguments are the memory pointer `mem` (the FE engine also has `out`, the port its
    outputs are written through: both point at the buffer), `desc_addr` and `desc_count`. Vitis HLS
    splits a 64-bit m_axi offset into two 32-bit registers `mem_1` (low word) and `mem_2` (high
    word); a register map with one `mem` register of 64 bits (low word first) or of 32 bits (an
    engine built with 32-bit addresses) works too.
    """

    cycles_source = "PS wall time at the design clock, polling included"

    def __init__(self, ip, buffer, clock_hz: float, registers: dict, name: str = "engine",
                 timeout_s: float = 10.0):
        self.ip = ip
        self.buffer = buffer
        self.clock_hz = float(clock_hz)
        self.name = name
        self.timeout_s = timeout_s
        self.ctrl = registers["CTRL"]["address_offset"] if "CTRL" in registers else CTRL_OFFSET
        self.pointer_words = _pointer_words(registers, name)
        self.desc_addr_offset = _offset(registers, "desc_addr", name)
        self.desc_count_offset = _offset(registers, "desc_count", name)

    async def run(self, desc_addr: int, count: int, perf_base: int) -> int:
        """Run `count` descriptors from `desc_addr`; returns the elapsed cycles at `clock_hz`.

        The HLS engines have no cycle counter (`perf_base` is the RTL engine's counter index and is
        ignored here): the count is the PS's wall time from ap_start to seeing ap_done, converted at
        the design clock, so it includes the register writes' and the polling loop's latency.
        """
        status = self.ip.read(self.ctrl)
        if not status & AP_IDLE:
            raise DriverError(f"engine {self.name} is busy before a start (control register {status:#x}); a "
                              "previous run did not finish: reload the overlay")
        address = int(self.buffer.physical_address)
        if address >> (32 * len(self.pointer_words)):
            raise DriverError(f"engine {self.name}: buffer at {address:#x} is beyond the engine's 32-bit 'mem' "
                              "register; rebuild the HLS IP with 64-bit m_axi addresses")
        for offset, shift in self.pointer_words:
            self.ip.write(offset, (address >> shift) & 0xFFFFFFFF)
        self.ip.write(self.desc_addr_offset, int(desc_addr))
        self.ip.write(self.desc_count_offset, int(count))
        start = time.perf_counter()
        self.ip.write(self.ctrl, AP_START)
        while not self.ip.read(self.ctrl) & AP_DONE:
            if time.perf_counter() - start > self.timeout_s:
                raise EngineTimeout(f"engine {self.name} did not finish {count} descriptors from {desc_addr:#x} "
                                    f"within {self.timeout_s:g} s (no ap_done); check the bitstream matches "
                                    "this project and reload the overlay")
        elapsed_s = time.perf_counter() - start
        return max(1, round(elapsed_s * self.clock_hz))


def _offset(registers: dict, reg: str, engine: str) -> int:
    if reg not in registers:
        raise DriverError(f"engine {engine}: the overlay's register map has no '{reg}' register (it has "
                          f"{', '.join(sorted(registers)) or 'none'}); the .hwh beside the .bit must come from "
                          "this project's HLS engines")
    return int(registers[reg]["address_offset"])


def _pointer_words(registers: dict, engine: str) -> list[tuple[int, int]]:
    """(offset, shift) of each 32-bit word of the memory pointer registers, low word first: `mem`, and
    the FE engine's `out` (its writes' port: the same buffer) where the map has one."""
    words = _pointer(registers, engine, "mem")
    if "out_1" in registers or "out" in registers:
        words += _pointer(registers, engine, "out")
    return words


def _pointer(registers: dict, engine: str, arg: str) -> list[tuple[int, int]]:
    if f"{arg}_1" in registers:
        words = [(_offset(registers, f"{arg}_1", engine), 0)]
        if f"{arg}_2" in registers:
            words.append((_offset(registers, f"{arg}_2", engine), 32))
        return words
    if arg in registers:
        offset = int(registers[arg]["address_offset"])
        if int(registers[arg].get("size", 32)) > 32:
            return [(offset, 0), (offset + 4, 32)]
        return [(offset, 0)]
    raise DriverError(f"engine {engine}: the overlay's register map has no memory pointer register "
                      f"('mem_1'/'mem_2' or 'mem'; it has {', '.join(sorted(registers)) or 'none'}); the .hwh "
                      "beside the .bit must come from this project's HLS engines")


def run_coroutine(coroutine):
    """Run a host-loop coroutine to completion, also from Jupyter (PYNQ's usual front end), whose
    running event loop makes asyncio.run refuse in its own thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class DtlBoard:
    """The project's two engines on the board: FE inference and re-training of the RL layers.

    `directory` holds this driver's data (overlay.json: the bitstream's and the engines' names in the
    block design and whether they are the RTL or the HLS engines; fe_image.bin, fe_program.json; with an RL engine rl_layout.json, rl_train.npz,
    rl_train.json) and by default the bitstream. `overlay` may be an already loaded `pynq.Overlay`.
    """

    def __init__(self, directory: Path | str = HERE, bitfile: Path | str | None = None, overlay=None,
                 timeout_s: float = 10.0):
        try:
            import pynq
        except ImportError as err:
            raise DriverError(f"the pynq package is missing ({err}); run the driver on a board with the PYNQ image, "
                              "in PYNQ's Python environment") from err

        self.directory = Path(directory)
        self.names = json.loads((self.directory / "overlay.json").read_text())
        self.program = json.loads((self.directory / "fe_program.json").read_text())
        self.clock_hz = float(self.program["clock_mhz"]) * 1e6
        if overlay is None:
            bitfile = Path(bitfile) if bitfile else self.directory / self.names["bitstream"]
            if not bitfile.exists() or not bitfile.with_suffix(".hwh").exists():
                raise DriverError(f"{bitfile} and {bitfile.with_suffix('.hwh').name} beside it are needed; "
                                  "`make bitstream` in the project directory writes both into driver/")
            overlay = pynq.Overlay(str(bitfile))
        self.overlay = overlay
        kind = self.names.get("engine_ip", "hls")  # (projects before the RTL engines name none)
        self.gang = self.names.get("gang_bus_bytes", 0) if kind == "rtl" else 0
        if isinstance(self.gang, bool) or self.gang not in (0, 2, 4, 8, 16, 32, 64, 128, 256):
            raise DriverError(f"overlay.json: gang_bus_bytes is {self.gang!r}; expected 0 (one port) or the ganged "
                              "ports' bus in bytes, a power of two (regenerate the project)")
        image = np.fromfile(self.directory / "fe_image.bin", dtype=np.uint8)
        self.fe_buffer = pynq.allocate(shape=(self._buffer_bytes(len(image)),), dtype=np.uint8)
        self.fe_buffer[:] = 0
        self.fe_buffer[_span(0, len(image), self.gang)] = image
        self.fe_buffer.flush()
        self.fe = self._device(self.names["engines"]["fe"], self.fe_buffer, timeout_s)
        self.layout: RLLayout | None = None
        self.rl: RtlDevice | PynqDevice | None = None
        if (self.directory / "rl_layout.json").exists():
            self.layout = RLLayout.from_dict(json.loads((self.directory / "rl_layout.json").read_text()))
            self.rl_buffer = pynq.allocate(shape=(self._buffer_bytes(self.layout.memory_bytes),), dtype=np.uint8)
            self.rl_buffer[:] = 0
            self.rl_buffer.flush()
            self.rl = self._device(self.names["engines"]["rl"], self.rl_buffer, timeout_s)
        self.last_fe_cycles = 0

    def _buffer_bytes(self, size: int) -> int:
        return gang_buffer_bytes(size) if self.gang else size

    def _device(self, name: str, buffer, timeout_s: float) -> RtlDevice | PynqDevice:
        if name not in self.overlay.ip_dict:
            raise DriverError(f"the overlay has no IP '{name}' (it has {', '.join(sorted(self.overlay.ip_dict))}); "
                              "load the bitstream built from this project")
        kind = self.names.get("engine_ip", "hls")  # (projects before the RTL engines name none)
        if kind == "rtl":
            return RtlDevice(getattr(self.overlay, name), buffer, name, timeout_s, self.gang)
        if kind != "hls":
            raise DriverError(f"overlay.json: engine_ip is {kind!r}; expected 'rtl' or 'hls' (regenerate the project)")
        registers = self.overlay.ip_dict[name].get("registers") or {}
        return PynqDevice(getattr(self.overlay, name), buffer, self.clock_hz, registers, name, timeout_s)

    # --- FE engine --------------------------------------------------------------------------------
    def generation_sample(self) -> np.ndarray:
        """The input sample the project was generated with (it sits in the FE image at input_addr);
        with the default re-training set it is that set's first sample."""
        size = int(np.prod(self.program["input_shape"]))
        image = np.fromfile(self.directory / "fe_image.bin", dtype=np.uint8, count=self.program["input_addr"] + size)
        raw = image[self.program["input_addr"]:]
        return raw.view(np.int8).astype(np.int64).reshape(self.program["input_shape"])

    def fe_infer(self, x_int: np.ndarray) -> np.ndarray:
        """Run every FE descriptor on one input sample (integers in the input format, int8 range);
        returns the last FE op's output (the RL engine's input), shaped as in the IR."""
        return run_coroutine(self._fe_infer(np.asarray(x_int)))

    async def _fe_infer(self, x_int: np.ndarray) -> np.ndarray:
        size = int(np.prod(self.program["input_shape"]))
        if x_int.size != size:
            raise DriverError(f"fe_infer: a sample has {size} values (shape {tuple(self.program['input_shape'])}); "
                              f"got {x_int.size}")
        if x_int.min(initial=0) < -128 or x_int.max(initial=0) > 127:
            raise DriverError("fe_infer: the FE engine's input is one signed byte per value; quantise the sample "
                              "to the network's input format first")
        await self.fe.write(self.program["input_addr"], x_int.astype(np.int8).reshape(-1).tobytes())
        self.last_fe_cycles = await self.fe.run(self.program["desc_addr"], self.program["desc_count"], 0)
        last = self.program["ops"][-1]
        shape = last["out_shape"]  # led by the image count when the program runs a batch
        images = shape[0] if len(shape) in (2, 4) else 1
        sample = int(np.prod(shape)) // images
        pitch = int(last.get("out_pitch", sample))  # a batch's outputs lie `pitch` bytes apart
        raw = b"".join([await self.fe.read(last["out_addr"] + i * pitch, sample) for i in range(images)])
        return np.frombuffer(raw, dtype=np.int8).astype(np.int64).reshape(shape)

    def extract_features(self, xs: np.ndarray) -> np.ndarray:
        """FE outputs of a batch of samples, one flattened row each (as rl_train.npz caches them)."""
        return np.stack([self.fe_infer(x).reshape(-1) for x in xs])

    # --- RL engine --------------------------------------------------------------------------------
    def _require_rl(self) -> RLLayout:
        if self.layout is None:
            raise DriverError("this project has no RL engine (the network has no retrainable layers); generate it "
                              "with a split (--split or --retrain-last) to re-train on the device")
        return self.layout

    def initial_state(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The RL layers' quantised weights and biases before any re-training: rl_train.npz's, or for a
        layer that starts from values drawn from a seed (rl_train.json "initial": seed, index, frac,
        bound_log2), drawn here from the seed (`dtlgen.isa.seeded.initial_weights`) with a zero bias."""
        layout = self._require_rl()
        data = np.load(self.directory / "rl_train.npz")
        initial = json.loads((self.directory / "rl_train.json").read_text()).get("initial", {})
        state = {}
        for p in layout.param_layers:
            w, b = data[f"w_{p.name}"], data[f"b_{p.name}"]
            if p.name in initial:
                w, b = self._drawn(p.name, initial[p.name], w.shape), np.zeros_like(b)
            state[p.name] = (w, b)
        return state

    @staticmethod
    def _drawn(name: str, spec, shape) -> np.ndarray:
        """A layer's initial weights drawn from its seed spec (a file from the generator: checked first)."""
        fields = ("seed", "index", "frac", "bound_log2")
        if not isinstance(spec, dict) or any(isinstance(spec.get(k), bool) or not isinstance(spec.get(k), int)
                                             for k in fields):
            raise DriverError(f"rl_train.json: initial.{name} must hold the integers {', '.join(fields)}; "
                              "regenerate the project")
        try:
            values = seeded.initial_weights(spec["seed"], spec["index"], int(np.prod(shape)), spec["frac"],
                                            spec["bound_log2"])
        except ValueError as err:
            raise DriverError(f"rl_train.json: initial.{name}: {err}; regenerate the project") from None
        return values.reshape(shape)

    def default_plan(self, steps: int, seed: int = 1, teacher: np.ndarray | None = None,
                     kd: Distillation | None = None) -> TrainingPlan:
        """`steps` mini-batches drawn from the cached re-training features, the project's lr shift;
        the weights are read back after the last step. With `teacher` (float logits, one row per cached
        sample) and `kd`, the host distils. A pruned network's masks (rl_train.npz's m_<layer>) go with it:
        the engine keeps the pruned weights at 0."""
        layout = self._require_rl()
        data = np.load(self.directory / "rl_train.npz")
        lr_shift = json.loads((self.directory / "rl_train.json").read_text())["lr_shift"]
        n = len(data["labels"])
        rng = np.random.default_rng(seed)
        order = np.concatenate([rng.choice(n, layout.batch, replace=n < layout.batch) for _ in range(steps)]) \
            if steps else np.zeros(0, dtype=np.int64)
        cached = None
        if teacher is not None:
            outputs = layout.layers[-1].m * layout.layers[-1].positions
            try:
                logits = np.asarray(teacher)
            except ValueError as err:  # a ragged list
                raise DriverError(f"the teacher's logits are not an array: {err}") from None
            if not isinstance(kd, Distillation):
                raise DriverError("a teacher needs the distillation weights: kd=Distillation.from_values(alpha, temperature)")
            if logits.dtype.kind not in "fiu" or logits.shape != (n, outputs) or not np.all(np.isfinite(logits)):
                raise DriverError(f"the teacher's logits must be finite numbers of shape ({n}, {outputs}), one row per "
                                  f"cached re-training sample; got {logits.dtype} {logits.shape}")
            cached = teacher_logits(logits, layout.logit_frac)
        masks = {p.name: data[f"m_{p.name}"] for p in layout.layers if f"m_{p.name}" in data} or None
        return TrainingPlan(data["features"], data["labels"], order, [layout.batch] * steps, [lr_shift] * steps, 0,
                            [steps - 1] if steps else [], cached, kd if teacher is not None else None, masks=masks)

    def retrain(self, plan: TrainingPlan, state: dict[str, tuple[np.ndarray, np.ndarray]],
                after_step=None) -> TrainingRun:
        """Load `state` into the RL engine and run every step of `plan` (dtlgen.host.rl_host.RLHost.train)."""
        layout = self._require_rl()
        return run_coroutine(RLHost(self.rl, layout).train(plan, state, after_step))


def read_teacher(path: str) -> np.ndarray:
    """--teacher's array `logits`, read without pickle from a file of bounded size; DriverError otherwise."""
    import zipfile

    fix = "write it with numpy.savez(PATH, logits=...), one row of float logits per cached re-training sample"
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
        if declared > MAX_TEACHER_BYTES:
            raise DriverError(f"--teacher {path} unpacks to {declared:,} bytes, more than {MAX_TEACHER_BYTES:,}; {fix}")
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["logits"])
    except DriverError:
        raise
    except Exception as err:  # a missing, broken or odd file, of any kind: one line
        raise DriverError(f"--teacher {path} is not an NPZ file with an array logits ({type(err).__name__}: "
                          f"{str(err)[:100]}); {fix}") from None


MAX_TEACHER_BYTES = 1 << 28  # a teacher file on a small board's memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the project's FE engine on its sample and re-train the RL "
                                                 "layers on the cached features, on the board.")
    parser.add_argument("--steps", type=int, default=10, help="re-training steps (default 10)")
    parser.add_argument("--bitfile", help="the overlay's .bit, with its .hwh beside it (default: the one in "
                                          "overlay.json, beside this file)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds an engine may take per run")
    parser.add_argument("--teacher", help="distil: an NPZ file with an array logits, a teacher's float logits of "
                                          "each cached re-training sample (rl_train.npz's order)")
    parser.add_argument("--kd-alpha", type=float, default=None,
                        help="with --teacher: the soft targets' weight, 0..1 (default 0.5)")
    parser.add_argument("--kd-temperature", type=int, default=None, help="with --teacher: a power of two, 1..16 "
                                                                        "(default 2)")
    args = parser.parse_args(argv)
    try:
        check_steps(args.steps, 0, "--steps")
    except ValueError as err:
        parser.error(str(err))
    if args.teacher is None and (args.kd_alpha is not None or args.kd_temperature is not None):
        parser.error("--kd-alpha / --kd-temperature weight a teacher's soft targets: add --teacher TEACHER.npz")
    if args.teacher is not None and args.steps == 0:
        parser.error("--teacher distils re-training steps, and --steps 0 runs none")
    try:
        kd = Distillation.from_values(0.5 if args.kd_alpha is None else args.kd_alpha,
                                      2 if args.kd_temperature is None else args.kd_temperature)
    except ValueError as err:
        parser.error(str(err))
    try:
        board = DtlBoard(HERE, args.bitfile, timeout_s=args.timeout)
        x = board.generation_sample()
        start = time.perf_counter()
        features = board.fe_infer(x)
        fe_s = time.perf_counter() - start
        golden = np.load(HERE / "fe_expected.npy")
        fe_ok = bool(np.array_equal(features.reshape(golden.shape), golden))
        print(f"FE inference: {board.program['desc_count']} descriptors in {fe_s * 1e3:.2f} ms "
              f"({board.last_fe_cycles:,} cycles at {board.clock_hz / 1e6:g} MHz, {board.fe.cycles_source}); "
              f"output {tuple(features.shape)} bit-exact vs golden model: {'yes' if fe_ok else 'NO'}")
        if board.layout is None:
            print("no RL engine in this project: nothing to re-train")
            return 0 if fe_ok else 1
        state = board.initial_state()
        teacher = None
        if args.teacher:
            teacher = read_teacher(args.teacher)
        plan = board.default_plan(args.steps, teacher=teacher, kd=kd)
        start = time.perf_counter()
        run = board.retrain(plan, state)
        train_s = time.perf_counter() - start
        after = run.weights.get(args.steps - 1, state)
        changed = sum(int(np.sum(np.asarray(after[k][i]).reshape(np.shape(v[i])) != v[i]))
                      for k, v in state.items() for i in (0, 1))
        total = sum(int(np.size(w) + np.size(b)) for w, b in state.values())
        print(f"re-training{' (distilled from --teacher)' if plan.kd else ''}: {plan.steps} steps of batch "
              f"{board.layout.batch} in {train_s:.3f} s "
              f"({train_s / max(plan.steps, 1) * 1e3:.2f} ms per step, host loop included); "
              f"{changed} of {total} weights and biases changed")
    except DriverError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0 if fe_ok else 1


if __name__ == "__main__":
    sys.exit(main())
