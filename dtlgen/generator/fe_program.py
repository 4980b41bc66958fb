"""FE engine program: the memory image (descriptors, biases, tile-ordered weights, activations).

`build_fe_program` lays out everything the FE engine reads for a quantised network's frozen layers
under an `FEConfig`, in the byte format `hw_templates/rtl/fe_engine.sv` reads. The op list comes
from `dtlgen.perf.fe.fe_ops`, so the simulated engine runs exactly the operations the analytical
model predicts. Nothing here simulates; it only writes data.

The descriptor's fields are defined once, in `dtlgen.isa.fe`; this module encodes with that spec and
`check_descriptors` (the project loader's check of a stranger's memory image) decodes with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dtlgen.errors import DesignError
from dtlgen.isa import fe as isa
from dtlgen.perf.board import ALIGN
from dtlgen.perf.fe import FEConfig, FEOp, fe_ops
from dtlgen.perf.validate import FE_ACC_BITS, fe_op_problem
from dtlgen.quant import fixed
from dtlgen.quant.quantize import QuantizedNetwork

KIND_CONV, KIND_MAXPOOL, KIND_AVGPOOL, KIND_ADD = isa.KIND_CONV, isa.KIND_MAXPOOL, isa.KIND_AVGPOOL, isa.KIND_ADD
K_MAX = isa.K_MAX  # the largest convolution kernel (fe_engine.sv)
ACTIVATION_CODES = isa.ACTIVATION_CODES
DESCRIPTOR_BYTES = isa.DESCRIPTOR_BYTES
RTL_ACC_BITS = FE_ACC_BITS  # the engine's accumulators and bias words
MIN_MEMORY_BYTES = 1 << 20


@dataclass
class OpImage:
    op: FEOp
    layer: str  # the IR layer whose output this op stores (the pool's for a fused conv + pool)
    out_addr: int
    out_shape: tuple[int, ...]  # per-sample shape of the stored output, as in the IR


@dataclass
class FEProgram:
    memory: np.ndarray  # uint8 image
    desc_addr: int
    ops: list[OpImage] = field(default_factory=list)
    input_addr: int = 0

    @property
    def extent(self) -> int:
        """Bytes from address 0 that the program uses: descriptors, parameters, input and every output
        (the image beyond is zero padding up to the simulated DRAM's size)."""
        used = int(np.flatnonzero(self.memory)[-1]) + 1 if self.memory.any() else 1
        return max([used] + [image.out_addr + int(np.prod(image.out_shape)) for image in self.ops])

    def output_of(self, index: int) -> np.ndarray:
        """The int8 values an op stored, shaped (C, H, W), read from a memory image of the same layout."""
        return self.read(self.memory, index)

    def read(self, memory: np.ndarray, index: int) -> np.ndarray:
        image = self.ops[index]
        count = int(np.prod(image.out_shape))
        raw = memory[image.out_addr:image.out_addr + count]
        return raw.astype(np.uint8).view(np.int8).astype(np.int64).reshape(image.out_shape)


def check_supported(op: FEOp, cfg: FEConfig) -> None:
    """What the RTL engine runs (`dtlgen.perf.validate`); anything else is refused before a build starts."""
    problem = fe_op_problem(op, cfg)
    if problem:
        raise DesignError(problem)


def build_fe_program(qnet: QuantizedNetwork, cfg: FEConfig, x_int: np.ndarray,
                     memory_bytes: int | None = None, m_max: int | None = None, *, bus_bytes: int) -> FEProgram:
    """Lay out one input sample `x_int` (C, H, W ints in the input format) and every FE op.

    `memory_bytes` None sizes the image to the next power of two (at least 1 MiB); `m_max` is the
    engine's bias-table depth, which every layer's output channels must fit; `bus_bytes` is the
    engine's memory port width, to which every tap row of a weight tile is padded.
    """
    network = qnet.network
    ops = fe_ops(network, cfg)
    for op in ops:
        check_supported(op, cfg)
        if m_max is not None and op.m > m_max:
            raise DesignError(f"layer '{op.name}' has {op.m} output channels; the engine's bias table holds {m_max}")
    chunks: list[tuple[int, np.ndarray]] = []
    cursor = DESCRIPTOR_BYTES * len(ops)

    def place(data: np.ndarray) -> int:
        nonlocal cursor
        addr = cursor
        chunks.append((addr, data))
        cursor = _aligned(addr + len(data))
        return addr

    input_addr = place(_bytes(x_int.reshape(-1)))
    region = {network.frozen_layers[0].inputs[0]: input_addr}
    program = FEProgram(np.zeros(0, dtype=np.uint8), 0, [], input_addr)
    descriptors = []
    for op in ops:
        layer = network.layer(op.name)
        lq = qnet.layers[op.name]
        stored = op.pool_layer or op.name
        out_fmt = qnet.layers[stored].out_fmt
        if lq.acc_bits > RTL_ACC_BITS:
            raise DesignError(f"layer '{op.name}' needs {lq.acc_bits}-bit accumulators; the FE RTL has {RTL_ACC_BITS}")
        source = _producer_region(network, layer.inputs[0], region)
        second, bias_addr, mult, shifts = 0, 0, 1, 0
        if op.kind == "conv":
            kind = KIND_CONV
            shift = lq.out_shift
            bias_addr = place(np.asarray(lq.bias, dtype=np.int64).astype("<i4").view(np.uint8))
            second = place(_bytes(_tile_ordered_weights(lq.weight, op, cfg, bus_bytes)))
        elif op.kind == "pool":
            kind = KIND_MAXPOOL if layer.op == "maxpool" else KIND_AVGPOOL
            mult, shift = fixed.avg_pool_scale(op.k * op.k) if kind == KIND_AVGPOOL else (1, 0)
        else:  # add: both operands shifted up to the finer frac, then requantised
            kind = KIND_ADD
            shift = lq.out_shift
            shifts = lq.align_shifts[0] | lq.align_shifts[1] << 8
            second = _producer_region(network, layer.inputs[1], region)
        if not -127 <= shift <= 127:  # -128 would wrap where the engines negate it
            raise DesignError(f"layer '{op.name}': requantisation shift {shift} does not fit the descriptor "
                              "(-127 .. 127)")
        out_shape = tuple(network.layer(stored).out_shape)  # (M,) for a linear layer, else (M, R, C)
        out_addr = place(np.zeros(int(np.prod(out_shape)), dtype=np.uint8))
        region[stored] = out_addr
        six = int(fixed.to_fixed(6.0, out_fmt)) if layer.activation == "relu6" else 0
        descriptors.append(isa.encode(
            f"FE descriptor of '{op.name}'", kind=kind, act=ACTIVATION_CODES[layer.activation], pool=int(bool(op.pool)),
            depthwise=int(op.depthwise), n=op.n, m=op.m, h=op.h, w=op.w, r=op.r, c=op.c, k=op.k, s=op.s, p=op.p,
            shift=shift, six=six, mult=mult, in_addr=source, second_addr=second, bias_addr=bias_addr,
            out_addr=out_addr, sa=shifts & 0xFF, sb=shifts >> 8))
        program.ops.append(OpImage(op, stored, out_addr, out_shape))
    if memory_bytes is None:
        memory_bytes = max(MIN_MEMORY_BYTES, 1 << (cursor - 1).bit_length())
    if cursor > memory_bytes:
        raise DesignError(f"the FE program needs {cursor} bytes of DRAM; the simulated DRAM has {memory_bytes}")
    memory = np.zeros(memory_bytes, dtype=np.uint8)
    for i, desc in enumerate(descriptors):
        memory[i * DESCRIPTOR_BYTES:(i + 1) * DESCRIPTOR_BYTES] = desc
    for addr, data in chunks:
        memory[addr:addr + len(data)] = data
    program.memory = memory
    return program


def _producer_region(network, name: str, region: dict[str, int]) -> int:
    """Address of the tensor `name`; flatten layers are free (NCHW is already the flat order)."""
    while name not in region:
        name = network.layer(name).inputs[0]
    return region[name]


def _tile_ordered_weights(weight: np.ndarray, op: FEOp, cfg: FEConfig, bus_bytes: int) -> np.ndarray:
    """Weights in the engine's trip order (m tile outer, n tile inner; a depthwise conv: m tiles), each
    trip's tile as K·K tap rows of (m, n) weights padded to whole beats (`dtlgen.isa.fe`)."""
    w = weight.reshape(op.m, 1 if op.depthwise else op.n, op.k, op.k)
    blocks = []
    for m0 in range(0, op.m, cfg.tm):
        for n0 in range(0, w.shape[1], cfg.tn):
            tile = w[m0:m0 + cfg.tm, n0:n0 + cfg.tn]
            rows = tile.transpose(2, 3, 0, 1).reshape(op.k * op.k, -1)  # tap-major, (m, n) within a tap
            padded = np.zeros((op.k * op.k, isa.weight_row_bytes(tile.shape[0], tile.shape[1], bus_bytes)),
                              dtype=np.int64)
            padded[:, :rows.shape[1]] = rows
            blocks.append(padded.reshape(-1))
    return np.concatenate(blocks)


def _bytes(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype(np.int8).view(np.uint8)


def _aligned(addr: int) -> int:
    return -(-addr // ALIGN) * ALIGN


def check_descriptors(memory: np.ndarray, desc_addr: int, ops: list[dict], m_max: int,
                      array: tuple[int, int, int, int], bus_bytes: int, source: str) -> list[FEOp]:
    """Check the FE descriptors of a memory image before an engine runs them (a project is data from a
    stranger): every field within what the engine's buffers hold, every address range inside the image,
    each descriptor's output where `ops` (the project's program.json) says. Raises one DesignError;
    returns the operations the descriptors describe (the cycle model's input)."""
    tm, tn, *tiles = array  # tm, tn, tr, tc
    size = len(memory)
    if not 0 <= desc_addr <= size - DESCRIPTOR_BYTES * len(ops):
        raise DesignError(f"{source}: {len(ops)} descriptors at address {desc_addr} do not fit the {size}-byte "
                          "memory image; regenerate the project with 'dtlgen generate'")
    decoded = []
    for i, op in enumerate(ops):
        raw = memory[desc_addr + DESCRIPTOR_BYTES * i:desc_addr + DESCRIPTOR_BYTES * (i + 1)]
        d = isa.decode(raw)
        kind, act, pool, depthwise = d["kind"], d["act"], d["pool"], d["depthwise"]
        n, m, h, wd, r, c, k, s, p = (d[key] for key in ("n", "m", "h", "w", "r", "c", "k", "s", "p"))
        where = f"{source}: FE descriptor {i} ('{op['name']}')"

        def refuse(problem: str) -> None:
            raise DesignError(f"{where} {problem}; the project's memory image or program.json was changed: "
                              "regenerate it with 'dtlgen generate'")

        if kind not in isa.KINDS or act > 2 or isa.reserved_bits(raw):
            refuse(f"has an unknown kind ({kind}) or activation ({act}), or bits set outside its fields")
        window = isa.window_problem(kind, k, s, r, c, *tiles) if min(k, s, r, c) >= 1 else None
        if min(n, m, h, wd, r, c, k, s) < 1 or window or p >= k or m > m_max:
            refuse(f"has N={n} M={m} H={h} W={wd} R={r} C={c} K={k} S={s} P={p}, outside the engine's limits "
                   f"(convolutions K ≤ {K_MAX}, P < K, M ≤ {m_max}, the input window within the {tiles[0]}x{tiles[1]} "
                   f"tile's buffer{': ' + window if window else ''})")
        if r != (h + 2 * p - k) // s + 1 or c != (wd + 2 * p - k) // s + 1 or (depthwise and n != m) \
                or (kind == KIND_ADD and (n != m or (h, wd) != (r, c))) or (pool and kind != KIND_CONV):
            refuse(f"has shapes that do not agree (N={n} M={m} H={h} W={wd} R={r} C={c} K={k} S={s} P={p})")
        out_shape = op["out_shape"]
        if d["out_addr"] != op["out_addr"] or out_shape[0] != m or (len(out_shape) == 3 and not pool
                                                            and tuple(out_shape[1:]) != (r, c)):
            refuse(f"stores {m} channels at {d['out_addr']}, not the {out_shape} at {op['out_addr']} that program.json names")
        weights = isa.weight_bytes(m, n, k, bool(depthwise), tm, tn, bus_bytes)
        ranges = [("input", d["in_addr"], n * h * wd), ("output", d["out_addr"], int(np.prod(out_shape)))]
        if kind == KIND_CONV:
            ranges += [("weights", d["second_addr"], weights), ("biases", d["bias_addr"], 4 * m)]
        elif kind == KIND_ADD:
            ranges.append(("second input", d["second_addr"], n * h * wd))
        for what, addr, count in ranges:
            if addr + count > size:
                refuse(f"reaches past the {size}-byte image with its {what} ({count} bytes at {addr})")
        kind_name = {KIND_CONV: "conv", KIND_ADD: "add"}.get(kind, "pool")
        if op.get("kind") != kind_name:
            refuse(f"is a {kind_name}, but program.json calls it a {op.get('kind')}")
        decoded.append(FEOp(op["name"], kind_name, n, h, wd, m, r, c, k, s, p, bool(depthwise), 2 if pool else 0))
    return decoded
