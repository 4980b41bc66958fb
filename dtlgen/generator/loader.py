"""Open a project folder as what it is: data from a stranger, checked before anything reaches C or RTL.

`open_project` reads the files `dtlgen generate` wrote (design.json with its board, sim/params.json,
sim/program.json, sim/expected.npz) and checks each against a schema and against the others: the
simulation parameters are the design's and the board's, every descriptor's fields are within what
the engine's buffers hold and every address range lies inside the memory image
(`fe_program.check_descriptors`), every expected output has its op's shape and type. `load_rl_project`
does the same for the RL engine's files and re-derives the RL layout from the checked formats: a
layout that is not the one dtlgen would plan is refused. `check_sources` holds every source file
dtlgen would compile, simulate or synthesise (HLS C++, SystemVerilog, the cocotb tests, the board
top) against what dtlgen itself writes for this design, and refuses extra source files, so that a
project never runs code dtlgen did not write. NPZ files load with allow_pickle=False; no pickle
anywhere. Every problem is one DesignError naming the file, the field and the fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dtlgen.boards import Board
from dtlgen.errors import DesignError, DtlgenError
from dtlgen.generator.fe_program import FEProgram, OpImage, check_descriptors
from dtlgen.generator.rl_program import plan_rl
from dtlgen.generator.rtl import rtl_dir
from dtlgen.host.rl_program import RLLayout
from dtlgen.isa import fe as isa_fe
from dtlgen.isa.params import FE_BUFFER_SIZING, FE_SIZING_FLAGS, CoreParams, FESimBuild, SimDram
from dtlgen.model.data import NpzWording, read_arrays
from dtlgen.perf import Design, load_design
from dtlgen.perf.fe import FEOp, engine_params, fe_buffer_sizing, op_cycles
from dtlgen.quant import fixed, golden
from dtlgen.quant.quantize import QuantizedNetwork
from dtlgen.quant.record import rl_view_from_dict

FIX = "regenerate the project with 'dtlgen generate'"
MAX_JSON_BYTES = 64 << 20
MAX_MEMORY_BYTES = 1 << 28  # the simulated DRAM images; vgg16_cifar's is 16 MiB
MAX_NPZ_BYTES = 4 * MAX_MEMORY_BYTES  # what a project's NPZ file may unpack to
NPZ_WORDING = NpzWording(
    missing="{path} is missing ({what}); {fix}", not_file="{path} is not a file ({what}); {fix}",
    too_big="{path} unpacks to {declared:,} bytes, more than any project holds; {fix}",
    broken="{path} is not a valid NPZ file of {what} ({first}); {fix}",
    no_memory="{path} declares arrays larger than memory; it is not a project's {what}: {fix}")
NAME = re.compile(r"[A-Za-z0-9_.:+-]{1,128}")  # model and board names reach C comments and SV
OP_KINDS = ("conv", "pool", "add")
CODE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".inc", ".ipp", ".tcc", ".so", ".o", ".a",
                 ".sv", ".svh", ".v", ".vh", ".py", ".pyc")


@dataclass(frozen=True)
class ProjectData:
    """A project's FE engine data, checked: what `csim` and `sim` run."""

    root: Path
    design: Design
    board: Board
    params: FESimBuild
    program: dict[str, Any]  # sim/program.json: desc_addr, input_addr, clock_mhz, model, board, ops
    memory: np.ndarray  # the DRAM image (uint8)
    expected: list[np.ndarray]  # the golden model's output of every op
    fe_ops: list[FEOp]  # the operations the descriptors describe

    def fe_program(self) -> FEProgram:
        """The FE program as the generator built it (memory image, descriptor address, ops)."""
        ops, image0 = [], 0  # a layer's descriptors run its images in turn, as build_fe_program lays them out
        for op, entry in zip(self.fe_ops, self.program["ops"]):
            ops.append(OpImage(op, entry["layer"], entry["out_addr"],
                               tuple(entry["out_shape"][1 if op.total_images > 1 else 0:]), image0, entry.get("out_pitch", 0)))
            image0 = (image0 + op.total_images) % self.design.fe.batch
        return FEProgram(self.memory, self.program["desc_addr"], ops, self.program["input_addr"])

    @property
    def has_rl(self) -> bool:
        return (self.root / "sim" / "rl_layout.json").exists()


@dataclass(frozen=True)
class RLProject:
    """What a project holds for re-training: the RL layout, the golden model's view of the quantised
    network, the re-training set's cached FE features and labels, and the initial weights."""

    layout: RLLayout
    qnet: QuantizedNetwork
    features: np.ndarray
    labels: np.ndarray
    state: golden.RLState
    seeded_labels: bool = False  # the cached set's labels are seeded (generate without a train set)
    regrow: bool = False  # re-train without the pruning masks: pruned weights may grow back (`strategies`)

    @property
    def masks(self) -> dict[str, np.ndarray] | None:
        """The retrainable layers' pruning masks (rl_train.npz's m_<layer>), or None: not pruned, or
        re-trained with `regrow`."""
        return None if self.regrow else golden.rl_masks(self.qnet)

    def replay_samples(self, count: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """round(share × count) of the cached re-training samples (features, labels), drawn with `seed`, to mix
        into a set of `count` new ones against forgetting (replay); refused when the cached labels are seeded."""
        if self.seeded_labels:
            raise DesignError("replay mixes in the project's cached re-training samples, and this project's are the "
                              "calibration inputs with seeded labels: generate it with train=(x_source, y_source) "
                              "(--data on generate) to replay real data")
        pick = np.random.default_rng(seed).choice(len(self.labels), min(len(self.labels), int(round(share * count))),
                                                  replace=False)
        return self.features[pick], self.labels[pick]

    def strategies(self, train: tuple[np.ndarray, np.ndarray] | None, replay: float = 0.0, regrow: bool = False,
                   seed: int = 0) -> tuple["RLProject", int]:
        """This project re-training on `train` (FE features and labels; None: its own set) with `replay`
        (cached samples mixed in per new one; needs `train`) and `regrow` (the pruning masks left out; needs
        masks), and how many samples it replayed."""
        if regrow and self.masks is None:
            raise DesignError("regrow lets pruned weights grow back, and this project's retrainable layers are not "
                              "pruned (generate it from a model pruned with --prune rl=S)")
        rl = replace(self, regrow=bool(regrow))
        if not replay:
            return (rl.with_training_set(*train) if train is not None else rl), 0
        if train is None:
            raise DesignError("replay mixes the project's cached samples into a new re-training set: give the set "
                              "(--data)")
        extra = self.replay_samples(len(train[1]), replay, seed)
        return rl.with_training_set(np.concatenate([train[0], extra[0]]), np.concatenate([train[1], extra[1]])), \
            len(extra[1])

    def with_training_set(self, features: np.ndarray, labels: np.ndarray) -> "RLProject":
        """The same project re-training on another set: its FE features (N, width) as the FE engine
        outputs them (e.g. `dtlgen.api.Project.features`) and N class labels, checked."""
        from dtlgen.model.data import check_labels

        width = int(np.prod(self.layout.feature_shape))
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != width or features.dtype.kind not in "iu" or not len(features):
            raise DesignError(f"the re-training set's features have shape {features.shape} ({features.dtype}); the RL "
                              f"engine takes integers (N, {width})")
        labels = check_labels(labels, len(features), self.layout.layers[-1].m, "the re-training set's y")
        return replace(self, features=features.astype(np.int64), labels=labels)

    def teacher_logits(self, logits: Any) -> np.ndarray:
        """A teacher's float logits of the re-training set, checked (one row per sample, the network's
        outputs, finite) and cached for the host (`fixed.teacher_logits`: the last layer's output
        fraction bits)."""
        from dtlgen.model.data import check_batch

        last = self.layout.layers[-1]
        if np.asarray(logits).dtype.kind == "b":  # (the board driver takes numbers only: the same rule here)
            raise DesignError("teacher logits: a boolean array; give the teacher's float logits of each sample")
        array = check_batch(logits, (last.m * last.positions,), "teacher logits")
        if len(array) != len(self.labels):
            raise DesignError(f"teacher logits: {len(array)} rows for a re-training set of {len(self.labels)} samples; "
                              "give the teacher's logits of each sample, in the set's order")
        return fixed.teacher_logits(array, self.qnet.layers[self.qnet.rl_layers[-1].name].out_fmt.frac)


def read_json(path: Path, what: str) -> Any:
    """A JSON file of a project: one DesignError (not a traceback) for missing, huge or broken files."""
    if not path.is_file():
        raise DesignError(f"{path} is missing ({what}); {FIX}")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise DesignError(f"{path} is larger than {MAX_JSON_BYTES >> 20} MB; it is not {what}: {FIX}")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise DesignError(f"{path} is not valid JSON ({_first_line(exc)}); {FIX}") from None


def read_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an NPZ file of a project, loaded without pickle (`dtlgen.model.data.read_arrays`,
    bounded by what a project holds); one DesignError for anything else."""
    return read_arrays(path, what, FIX, max_bytes=MAX_NPZ_BYTES, wording=NPZ_WORDING)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DesignError(f"{where} is {value!r}: expected an integer from {lo} to {hi}; {FIX}")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise DesignError(f"{where} is {value!r}: expected a name of letters, digits and _.:+- ; {FIX}")
    return value


def open_project(path: Path) -> ProjectData:
    """Load and check a project's design, board, FE program, memory image and expected outputs."""
    root = Path(path).absolute()
    if not root.is_dir():
        raise DesignError(f"'{root}' is not a project folder; generate one with 'dtlgen generate MODEL --design D "
                          "--out PRJ'")
    design_path = root / "design.json"
    if not design_path.is_file():
        raise DesignError(f"'{root}' is not a dtlgen project (no design.json); generate one with 'dtlgen generate'")
    source = f"project design '{design_path}'"
    design = load_design(design_path)
    board = design.board_record(None, source)
    sim = root / "sim"
    params = _check_params(read_json(sim / "params.json", "the FE simulation parameters"), design, board,
                           sim / "params.json")
    program = _check_program(read_json(sim / "program.json", "the FE program"), design, sim / "program.json")
    arrays = read_npz(sim / "expected.npz", "the memory image and the golden model's outputs")
    where = sim / "expected.npz"
    memory = arrays.get("memory")
    if memory is None or memory.dtype != np.uint8 or memory.ndim != 1 or len(memory) != params.dram.memory_bytes:
        raise DesignError(f"{where}: 'memory' must be a uint8 image of params.json's {params.dram.memory_bytes} bytes; "
                          f"{FIX}")
    if program["input_addr"] >= len(memory):
        raise DesignError(f"{sim / 'program.json'}: input_addr {program['input_addr']} lies outside the "
                          f"{len(memory)}-byte image; {FIX}")
    fe = params.fe
    if max(fe.w_bits, fe.a_bits) > isa_fe.ELEMENT_BITS:  # what generate refuses: the engines take bytes at most
        raise DesignError(f"{sim / 'params.json'}: w_bits {fe.w_bits}, a_bits {fe.a_bits}: the FE engines take "
                          f"elements of up to {isa_fe.ELEMENT_BITS} bits; {FIX}")
    fe_ops = check_descriptors(memory, program["desc_addr"], program["ops"], fe.m_max, (fe.tm, fe.tn, fe.tr, fe.tc),
                               fe.bus_bytes, str(sim / "program.json"), fe.w_bits,
                               board.dram_ddr.row_bytes if board.dram_ddr is not None else 0, fe.pf_beats > 0)
    for op, fe_op in zip(program["ops"], fe_ops):
        # The simulation's time-out and the reports' predictions come from these: they must be the model's.
        cycles = op_cycles(fe_op, design.fe, fe.bus_bytes, params.dram.latency).cycles
        if op["predicted_cycles"] != cycles:
            raise DesignError(f"{sim / 'program.json'}: op '{op['name']}' predicts {op['predicted_cycles']} cycles, "
                              f"the analytical model {cycles}; {FIX}")
    expected = []
    for i, op in enumerate(program["ops"]):
        array = arrays.get(f"op{i}")
        if array is None or array.dtype.kind not in "iu" or list(array.shape) != op["out_shape"] \
                or (array.size and (array.min() < -128 or array.max() > 127)):
            raise DesignError(f"{where}: 'op{i}' must be the int8 values of shape {op['out_shape']} that op "
                              f"'{op['name']}' stores; {FIX}")
        expected.append(array.astype(np.int64))
    return ProjectData(root, design, board, params, program, memory, expected, fe_ops)


def _check_params(data: Any, design: Design, board: Board, where: Path) -> FESimBuild:
    try:
        params = FESimBuild.from_dict(data, str(where), MAX_MEMORY_BYTES)
    except ValueError as exc:
        raise DesignError(f"{exc}; {FIX}") from None
    # the design's engine and its board's memory; the image size and the bias table's depth are the file's
    want = FESimBuild(engine_params(design.fe, board, int(board.dram_bytes_per_cycle), params.fe.m_max),
                      SimDram(board.dram_latency_cycles, params.dram.memory_bytes))
    _check_same(params.to_dict(), want.to_dict(), f"{where}: field '{{}}'", "the design and its board give")
    for key, value in (("memory_bytes", params.dram.memory_bytes), ("m_max", params.fe.m_max)):
        if value < 1 or value & (value - 1):
            raise DesignError(f"{where}: field '{key}' is {value}: expected a power of two; {FIX}")
    return params


def _check_same(got: dict[str, int], want: dict[str, int], field: str, source: str) -> None:
    """One DesignError naming the first field (`field` formats its name) where `got` is not what `source` gives."""
    for key, value in want.items():
        if got[key] != value:
            raise DesignError(f"{field.format(key)} is {got[key]}, but {source} {value}; {FIX}")


def _check_program(data: Any, design: Design, where: Path) -> dict[str, Any]:
    keys = ("desc_addr", "input_addr", "clock_mhz", "model", "board", "ops")
    if not isinstance(data, dict) or any(key not in data for key in keys):
        raise DesignError(f"{where} must be an object with {', '.join(keys)}; {FIX}")
    _int(data["desc_addr"], f"{where}: field 'desc_addr'", 0, MAX_MEMORY_BYTES)
    _int(data["input_addr"], f"{where}: field 'input_addr'", 0, MAX_MEMORY_BYTES)
    if data["clock_mhz"] != design.clock_mhz:
        raise DesignError(f"{where}: clock_mhz {data['clock_mhz']!r} is not the design's {design.clock_mhz:g}; {FIX}")
    if _name(data["board"], f"{where}: field 'board'") != design.board:
        raise DesignError(f"{where}: board '{data['board']}' is not the design's '{design.board}'; {FIX}")
    _name(data["model"], f"{where}: field 'model'")
    if design.model is not None and data["model"] != design.model:
        raise DesignError(f"{where}: model '{data['model']}' is not the design's '{design.model}'; {FIX}")
    if "input_format" in data:  # the input's fixed-point format (what Project.predict quantises to)
        fmt = data["input_format"]
        if not isinstance(fmt, dict) or set(fmt) != {"bits", "frac"}:
            raise DesignError(f"{where}: field 'input_format' must be {{\"bits\": B, \"frac\": F}}; {FIX}")
        _int(fmt["bits"], f"{where}: input_format.bits", 2, 16)
        _int(fmt["frac"], f"{where}: input_format.frac", -64, 64)
    ops = data["ops"]
    if not isinstance(ops, list) or not 1 <= len(ops) <= 4096:
        raise DesignError(f"{where}: field 'ops' must be a list of 1 to 4096 operations; {FIX}")
    for i, op in enumerate(ops):
        at = f"{where}: ops[{i}]"
        if not isinstance(op, dict):
            raise DesignError(f"{at} must be an object; {FIX}")
        for key in ("name", "layer"):
            if not isinstance(op.get(key), str) or not 0 < len(op[key]) <= 256:
                raise DesignError(f"{at}.{key} must be a layer name; {FIX}")
        if op.get("kind") not in OP_KINDS:
            raise DesignError(f"{at}.kind is {op.get('kind')!r}: one of {', '.join(OP_KINDS)}; {FIX}")
        _int(op.get("macs"), f"{at}.macs", 0, 1 << 48)
        _int(op.get("out_addr"), f"{at}.out_addr", 0, MAX_MEMORY_BYTES)
        _int(op.get("predicted_cycles"), f"{at}.predicted_cycles", 1, 1 << 48)
        shape = op.get("out_shape")
        if not isinstance(shape, list) or len(shape) not in (1, 2, 3, 4):
            raise DesignError(f"{at}.out_shape must be [C] or [C, H, W], led by the image count for a batch; {FIX}")
        for value in shape:
            _int(value, f"{at}.out_shape", 1, 1 << 16)
        if "out_pitch" in op:  # bytes between a batch's outputs (check_descriptors: the descriptor's stride)
            _int(op["out_pitch"], f"{at}.out_pitch", 1, MAX_MEMORY_BYTES)
    return data


def load_rl_project(project: Path | ProjectData) -> RLProject:
    """Load and check a project's RL engine files; the layout must be the one dtlgen plans for them."""
    data = project if isinstance(project, ProjectData) else open_project(Path(project))
    sim = data.root / "sim"
    if not (sim / "rl_layout.json").exists():
        raise DesignError(f"project '{data.root}' has no RL engine (the network has no retrainable layers); generate "
                          "it with a split (--split or --retrain-last) to re-train on the device")
    stored = read_json(sim / "rl_layout.json", "the RL engine's layout")
    arrays = read_npz(sim / "rl_train.npz", "the re-training set's features, labels and initial weights")
    where = sim / "rl_train.npz"
    view_data = read_json(sim / "rl_quant.json", "the RL layers' formats")
    entries = view_data.get("layers") if isinstance(view_data, dict) else None
    names = [entry.get("name") for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []
    weights = {name: (arrays[f"w_{name}"], arrays[f"b_{name}"]) for name in names
               if isinstance(name, str) and f"w_{name}" in arrays and f"b_{name}" in arrays}
    masks = {name: arrays[f"m_{name}"] for name in names if isinstance(name, str) and f"m_{name}" in arrays}
    qnet = rl_view_from_dict(view_data, weights, str(sim / "rl_quant.json"), masks)
    try:
        layout = plan_rl(qnet, data.design.rl, int(data.board.dram_bytes_per_cycle))
    except DtlgenError as exc:
        raise DesignError(f"{sim / 'rl_quant.json'}: the RL engine cannot run these layers ({exc}); {FIX}") from None
    if json.loads(json.dumps(layout.to_dict())) != stored:
        raise DesignError(f"{sim / 'rl_layout.json'} is not the layout dtlgen plans for this design and these "
                          f"layers; {FIX}")
    features, labels = arrays.get("features"), arrays.get("labels")
    width = int(np.prod(layout.feature_shape))
    value_max = 1 << 15  # the host writes features as 16-bit values (FE outputs, at most a_bits wide)
    if features is None or features.dtype.kind not in "iu" or features.ndim != 2 or features.shape[1] != width \
            or len(features) < 1 or (features.size and (features.min() < -value_max or features.max() >= value_max)):
        raise DesignError(f"{where}: 'features' must be 16-bit integer rows of {width} values; {FIX}")
    classes = layout.layers[-1].m
    if labels is None or labels.dtype.kind not in "iu" or labels.shape != (len(features),) \
            or (labels.size and (labels.min() < 0 or labels.max() >= classes)):
        raise DesignError(f"{where}: 'labels' must be {len(features)} class indices from 0 to {classes - 1}; {FIX}")
    state = {p.name: (np.asarray(qnet.layers[p.name].weight), np.asarray(qnet.layers[p.name].bias))
             for p in layout.param_layers}
    seeded = arrays.get("seeded_labels")
    if seeded is not None and (seeded.shape != () or seeded.dtype.kind not in "biu" or int(seeded) not in (0, 1)):
        raise DesignError(f"{where}: 'seeded_labels' must be 0 or 1; {FIX}")
    return RLProject(layout, qnet, features.astype(np.int64), labels.astype(np.int64), state,
                     seeded is not None and bool(seeded))


# --- sources ----------------------------------------------------------------------------------------
def check_sources(data: ProjectData, rl: RLProject | None, parts: tuple[str, ...] = ("rtl", "sim", "hls")) -> None:
    """Refuse a project whose sources differ from what dtlgen writes for its design, or that holds source
    files dtlgen did not write, in the folders `parts` (the ones the calling command compiles or runs)."""
    from dtlgen.generator.hls import FE_SOURCES, RL_SOURCES as HLS_RL_SOURCES, hls_template_dir, params_header
    from dtlgen.generator.project import COCOTB_TEST, RL_COCOTB_TEST, RL_SOURCES, params_svh
    from dtlgen.generator.rtl import RTL_SOURCES

    layout = rl.layout if rl is not None else None
    expected: dict[str, dict[str, bytes]] = {"rtl": {}, "sim": {}, "hls": {}}
    for name in RTL_SOURCES + (RL_SOURCES if rl else ()):
        expected["rtl"][name] = (rtl_dir() / name).read_bytes()
    expected["rtl"]["dtl_params.svh"] = params_svh(data.params, data.design, layout).encode()
    expected["sim"][COCOTB_TEST] = (rtl_dir() / "fe_cocotb_test.py").read_bytes()
    if rl:
        expected["sim"][RL_COCOTB_TEST] = (rtl_dir() / "rl_cocotb_test.py").read_bytes()
    hls = data.root / "hls"
    if (hls / "dtl_params.h").exists() or "hls" in parts:
        for name in FE_SOURCES + (HLS_RL_SOURCES if rl else ()):
            expected["hls"][name] = (hls_template_dir() / name).read_bytes()
        expected["hls"]["dtl_params.h"] = params_header(data.design, data.program["model"], data.board.name,
                                                        data.params, layout).encode()
    # What else dtlgen writes there (data and reports, never compiled): a strict list for hls/ and rtl/,
    # whose folders are compiler include paths.
    others = {"hls": {"tb_data", "csim_report.json", "run_hls.tcl"}, "rtl": {"dram_init.hex"}, "sim": None}
    for part in parts:
        folder = data.root / part
        for name, content in expected[part].items():
            path = folder / name
            if path.is_symlink() or not path.is_file():
                raise DesignError(f"{path} is missing; {FIX}")
            if path.read_bytes() != content:
                raise DesignError(f"{path} differs from what this dtlgen writes for this design (it was edited, or "
                                  f"written by another dtlgen version); dtlgen compiles and simulates only its own "
                                  f"sources: {FIX} (keep your edits elsewhere)")
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            allowed = others[part]
            foreign = (path.name not in expected[part] and (path.name not in allowed if allowed is not None
                                                            else path.suffix in CODE_SUFFIXES
                                                            or path.name.startswith("__")))
            if foreign or path.is_symlink() or (path.name == "tb_data" and not path.is_dir()):
                raise DesignError(f"{path} is not a file dtlgen writes there; dtlgen never compiles or imports "
                                  f"anything it did not write: move it out of the project's {part}/ folder")


def check_ecp5(data: ProjectData, rl: RLProject | None) -> dict[str, Any]:
    """The ECP5 board design of a project, checked: build.json's core parameters are the design's (or
    within the engine's bounds, where they follow from the program), and every file in ecp5/ that the
    open flow reads is what dtlgen renders for them. Returns build.json."""
    import tempfile

    from dtlgen.generator.ecp5 import write_ecp5_project

    ecp5 = data.root / "ecp5"
    build = read_json(ecp5 / "build.json", "the open flow's build settings")
    where = ecp5 / "build.json"
    try:
        core = CoreParams.from_dict(build.get("core") if isinstance(build, dict) else None, f"{where}: core",
                                    MAX_MEMORY_BYTES)
    except ValueError as exc:
        raise DesignError(f"{exc}; {FIX}") from None
    # the simulation's FE engine with the core's buffer sizing; the RL engine the layout plans
    sized = replace(data.params.fe, **{key: getattr(core.fe, key) for key in FE_BUFFER_SIZING})
    want = CoreParams(sized, rl.layout.engine if rl is not None else None, core.mem_bytes, core.rl_base,
                      core.clks_per_bit)
    _check_same(core.to_dict(), want.to_dict(), f"{where}: core.{{}}", "the design gives")
    if not 0 <= core.fe.dw_k <= 7:
        raise DesignError(f"{where}: core.dw_k is {core.fe.dw_k}: expected 0 to 7 (the largest depthwise kernel the FE "
                          f"engine's delay line serves); {FIX}")
    if not (1 <= core.fe.k_max <= 7 and 1 <= core.fe.s_max <= 4 and all(getattr(core.fe, key) in (0, 1) for key in FE_SIZING_FLAGS)
            and core.clks_per_bit >= 1 and core.mem_bytes & (core.mem_bytes - 1) == 0
            and 0 < core.rl_base <= core.mem_bytes):
        raise DesignError(f"{where}: the core's buffer and memory parameters are outside what the board design "
                          f"builds; {FIX}")
    # an engine built without a part its descriptors use would misread them (sparse weights as dense tiles)
    needed = fe_buffer_sizing(data.fe_ops, data.design.fe.tn)
    missing = [key for key in FE_SIZING_FLAGS if needed[key] and not getattr(core.fe, key)]
    if missing:
        raise DesignError(f"{where}: core.{missing[0]} is 0, but the program's descriptors use that part of the FE "
                          f"engine; {FIX}")
    if needed["dw_k"] > core.fe.dw_k:  # (a smaller delay line would run the kernel with the model's count wrong)
        raise DesignError(f"{where}: core.dw_k is {core.fe.dw_k}, but the program has a depthwise conv of kernel "
                          f"{needed['dw_k']}; {FIX}")
    with tempfile.TemporaryDirectory(prefix="dtlgen-ecp5-") as scratch:
        written = write_ecp5_project(Path(scratch), data.board, data.design, core)
        for path in written[:2] + sorted((Path(scratch) / "ecp5").glob("*.sv")):
            mine = ecp5 / path.name
            if mine.is_symlink() or not mine.is_file() or mine.read_bytes() != path.read_bytes():
                raise DesignError(f"{mine} differs from what dtlgen writes for this design and board (or is "
                                  f"missing); dtlgen synthesises only its own sources: {FIX}")
        if json.loads((Path(scratch) / "ecp5" / "build.json").read_text()) != build:
            raise DesignError(f"{where} differs from what dtlgen writes for this design and board; {FIX}")
    return build


def render_test_vectors(data: ProjectData, rl: RLProject | None, dest: Path) -> None:
    """Write the C-simulation testbenches' vectors for a checked project into `dest` and require the
    project's hls/tb_data to hold exactly the same files: the testbenches then run on data dtlgen
    rendered itself, and a forged script cannot make a check pass or ask for gigabytes."""
    from dtlgen.generator.hls import write_test_vectors

    write_test_vectors(dest, data.fe_program(), data.expected,
                       (rl.qnet, rl.layout, rl.features, rl.labels, rl.state) if rl is not None else None)
    mine = data.root / "hls" / "tb_data"
    if mine.is_symlink() or not mine.is_dir():
        raise DesignError(f"{mine} is missing; {FIX}")
    names = sorted(p.name for p in dest.iterdir())
    if sorted(p.name for p in mine.iterdir()) != names:
        raise DesignError(f"{mine} does not hold the files dtlgen writes for this project; {FIX}")
    for name in names:
        path = mine / name
        if path.is_symlink() or not path.is_file() or path.read_bytes() != (dest / name).read_bytes():
            raise DesignError(f"{path} differs from what dtlgen writes for this project; {FIX}")

