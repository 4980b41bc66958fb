"""FE engine program: the memory image (descriptors, biases, tile-ordered weights, activations).

`build_fe_program` lays out everything the FE engine reads for a quantised network's frozen layers
under an `FEConfig`, in the byte format `hw_templates/rtl/fe_engine.sv` reads. The op list comes
from `dtlgen.perf.fe.fe_ops`, so the simulated engine runs exactly the operations the analytical
model predicts. Nothing here simulates; it only writes data.

Descriptor (64 bytes, little-endian 32-bit words): w0 kind (1 conv, 2 max pool, 3 average pool,
4 add) | act << 4 | fused pool << 6 | depthwise << 7; w1 N | M << 16; w2 H | W << 16; w3 R | C << 16;
w4 K | S << 8 | P << 16 | shift << 24 (signed); w5 six (signed 16) | average-pool multiplier << 16;
w6 input address; w7 weight address (an add's second input); w8 bias address; w9 output address;
w10 the add's operand shifts sa | sb << 8.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dtlgen.errors import DesignError
from dtlgen.perf.board import ALIGN, DESCRIPTOR_BYTES, K_MAX_ENGINE, S_MAX_ENGINE
from dtlgen.perf.fe import FEConfig, FEOp, fe_ops
from dtlgen.quant import fixed
from dtlgen.quant.quantize import QuantizedNetwork

KIND_CONV, KIND_MAXPOOL, KIND_AVGPOOL, KIND_ADD = 1, 2, 3, 4
S_MAX, K_MAX = S_MAX_ENGINE, K_MAX_ENGINE  # the engine's full-size input window (fe_engine.sv)
ACTIVATION_CODES = {None: 0, "relu": 1, "relu6": 2}
RTL_ACC_BITS = 32  # the engine's accumulators and bias words
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
    """What the RTL engine runs; anything else is refused before a build starts."""
    if cfg.a_bits > 8 or cfg.w_bits > 8:
        raise DesignError(f"fe.a_bits={cfg.a_bits}, fe.w_bits={cfg.w_bits}: the FE RTL stores one byte per "
                          "element; use bit widths up to 8")
    if op.k > K_MAX:
        raise DesignError(f"layer '{op.name}': kernel {op.k} exceeds the FE engine's K ≤ {K_MAX}")
    # The input buffer holds a (tr-1)·S_MAX + K_MAX square window; a tile's real window must fit.
    rows = (min(cfg.tr, op.r) - 1) * op.s + op.k
    cols = (min(cfg.tc, op.c) - 1) * op.s + op.k
    if op.s > S_MAX and (rows > (cfg.tr - 1) * S_MAX + K_MAX or cols > (cfg.tc - 1) * S_MAX + K_MAX):
        raise DesignError(f"layer '{op.name}': stride {op.s} with tiles {cfg.tr}x{cfg.tc} needs a {rows}x{cols} "
                          "input window, larger than the engine's buffers; use stride ≤ 2 or smaller tiles")


def build_fe_program(qnet: QuantizedNetwork, cfg: FEConfig, x_int: np.ndarray,
                     memory_bytes: int | None = None, m_max: int | None = None) -> FEProgram:
    """Lay out one input sample `x_int` (C, H, W ints in the input format) and every FE op.

    `memory_bytes` None sizes the image to the next power of two (at least 1 MiB); `m_max` is the
    engine's bias-table depth, which every layer's output channels must fit.
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
            second = place(_bytes(_tile_ordered_weights(lq.weight, op, cfg)))
        elif op.kind == "pool":
            kind = KIND_MAXPOOL if layer.op == "maxpool" else KIND_AVGPOOL
            mult, shift = fixed.avg_pool_scale(op.k * op.k) if kind == KIND_AVGPOOL else (1, 0)
        else:  # add: both operands shifted up to the finer frac, then requantised
            kind = KIND_ADD
            shift = lq.out_shift
            shifts = lq.align_shifts[0] | lq.align_shifts[1] << 8
            second = _producer_region(network, layer.inputs[1], region)
        if not -128 <= shift <= 127:
            raise DesignError(f"layer '{op.name}': requantisation shift {shift} does not fit the descriptor")
        out_shape = tuple(network.layer(stored).out_shape)  # (M,) for a linear layer, else (M, R, C)
        out_addr = place(np.zeros(int(np.prod(out_shape)), dtype=np.uint8))
        region[stored] = out_addr
        six = int(fixed.to_fixed(6.0, out_fmt)) if layer.activation == "relu6" else 0
        words = [kind | ACTIVATION_CODES[layer.activation] << 4 | (1 if op.pool else 0) << 6 | int(op.depthwise) << 7,
                 op.n | op.m << 16, op.h | op.w << 16, op.r | op.c << 16,
                 op.k | op.s << 8 | op.p << 16 | (shift & 0xFF) << 24, (six & 0xFFFF) | mult << 16,
                 source, second, bias_addr, out_addr, shifts] + [0] * 5
        descriptors.append(np.array(words, dtype="<u4").view(np.uint8))
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


def _tile_ordered_weights(weight: np.ndarray, op: FEOp, cfg: FEConfig) -> np.ndarray:
    """Weights in the engine's trip order: (m tile, n tile) blocks, each in (m, n, kr, kc) order;
    a depthwise conv has one input channel per lane: (m tile) blocks in (m, kr, kc) order."""
    if op.depthwise:
        w = weight.reshape(op.m, op.k, op.k)
        return np.concatenate([w[m0:m0 + cfg.tm].reshape(-1) for m0 in range(0, op.m, cfg.tm)])
    w = weight.reshape(op.m, op.n, op.k, op.k)
    blocks = [w[m0:m0 + cfg.tm, n0:n0 + cfg.tn].reshape(-1)
              for m0 in range(0, op.m, cfg.tm) for n0 in range(0, op.n, cfg.tn)]
    return np.concatenate(blocks)


def _bytes(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype(np.int8).view(np.uint8)


def _aligned(addr: int) -> int:
    return -(-addr // ALIGN) * ALIGN
