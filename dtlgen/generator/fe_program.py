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
from dtlgen.isa import seeded
from dtlgen.model.ir import joined_activation
from dtlgen.model.ops import op_of
from dtlgen.perf.board import ALIGN
from dtlgen.perf.fe import (FEConfig, FEOp, WeightMask, batched_ops, concat_slices, fe_ops, keep_words,
                            keeps_inputs, sparse_beats)
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
    op: FEOp  # its images of a batch: image0 .. image0 + op.total_images - 1
    layer: str  # the IR layer whose output this op stores (the pool's for a fused conv + pool)
    out_addr: int  # of image0's output; the next image's follows it `image_pitch` bytes later
    out_shape: tuple[int, ...]  # per-sample shape of the stored output, as in the IR
    image0: int = 0
    pitch: int = 0  # bytes from one image's output to the next (isa.fe.image_pitch); 0: the sample's size

    @property
    def image_pitch(self) -> int:
        return self.pitch or int(np.prod(self.out_shape))

    @property
    def span(self) -> int:
        """Bytes from out_addr to the end of its last image's output."""
        return (self.op.total_images - 1) * self.image_pitch + int(np.prod(self.out_shape))

    @property
    def stored_shape(self) -> tuple[int, ...]:
        """What the descriptor stores at out_addr: out_shape, led by the image count for a batch."""
        return self.out_shape if self.op.total_images == 1 else (self.op.total_images, *self.out_shape)


@dataclass
class FEProgram:
    memory: np.ndarray  # uint8 image
    desc_addr: int
    ops: list[OpImage] = field(default_factory=list)
    input_addr: int = 0
    images: int = 1  # the batch: every layer's input and output hold this many samples, image_pitch apart
    input_pitch: int = 0  # bytes from one input sample to the next (isa.fe.image_pitch); 0: the sample's size

    @property
    def extent(self) -> int:
        """Bytes from address 0 that the program uses: descriptors, parameters, input and every output
        (the image beyond is zero padding up to the simulated DRAM's size)."""
        used = int(np.flatnonzero(self.memory)[-1]) + 1 if self.memory.any() else 1
        return max([used] + [image.out_addr + image.span for image in self.ops])

    def output_of(self, index: int) -> np.ndarray:
        """The int8 values an op stored, shaped (C, H, W), read from a memory image of the same layout."""
        return self.read(self.memory, index)

    def read(self, memory: np.ndarray, index: int) -> np.ndarray:
        """Op `index`'s output of its first image (C, H, W), read from `memory`."""
        return self.read_images(memory, index)[0]

    def read_images(self, memory: np.ndarray, index: int) -> np.ndarray:
        """Op `index`'s outputs of each of its images, shaped (images, C, H, W)."""
        image = self.ops[index]
        return read_batch(memory, image.out_addr, image.out_shape, image.op.total_images, image.image_pitch)


def read_batch(memory: np.ndarray, addr: int, shape: tuple[int, ...], images: int, pitch: int) -> np.ndarray:
    """`images` int8 tensors of `shape` from `memory`, the first at `addr`, each `pitch` bytes after the
    one before (an activation buffer of a batch: isa.fe.image_pitch), as int64 (images, *shape)."""
    size = int(np.prod(shape))
    rows = [np.asarray(memory[addr + i * pitch:addr + i * pitch + size]) for i in range(images)]
    return np.stack(rows).astype(np.uint8).view(np.int8).astype(np.int64).reshape((images, *shape))


def check_supported(op: FEOp, cfg: FEConfig) -> None:
    """What the RTL engine runs (`dtlgen.perf.validate`); anything else is refused before a build starts."""
    problem = fe_op_problem(op, cfg)
    if problem:
        raise DesignError(problem)


def build_fe_program(qnet: QuantizedNetwork, cfg: FEConfig, x_int: np.ndarray,
                     memory_bytes: int | None = None, m_max: int | None = None, *, bus_bytes: int,
                     dram_row_bytes: int = 0, latency: int | None = None) -> FEProgram:
    """Lay out the input `x_int` (one sample (C, H, W) of ints in the input format, or a batch (B, C, H, W))
    and every FE op: a batch runs layer after layer, each op as the descriptors `batched_ops` gives.

    `memory_bytes` None sizes the image to the next power of two (at least 1 MiB); `m_max` is the
    engine's bias-table depth, which every layer's output channels must fit; `bus_bytes` is the
    engine's memory port width, to which every tap row of a weight tile is padded. With a batch, each
    activation buffer holds its images `isa.fe.image_pitch(sample, dram_row_bytes)` bytes apart (the
    board's DRAM row size; 0: one after another). With the memory's `latency` (cycles), on an engine that
    prefetches there (`isa.fe.prefetch_beats`), the ops it makes faster prefetch their requests.
    """
    network = qnet.network
    in_shape = tuple(network.frozen_layers[0].in_shape)
    x_int = np.asarray(x_int)
    if x_int.shape == in_shape:
        x_int = x_int[None]
    if x_int.shape[1:] != in_shape or len(x_int) < 1:
        raise DesignError(f"the FE input has shape {x_int.shape}; the network takes {in_shape} or a batch of them")
    batch = len(x_int)
    single_ops = fe_ops(network, cfg, bus_bytes)
    ops = batched_ops(single_ops, cfg, batch, bus_bytes, keep_words(cfg, bus_bytes, single_ops), latency)
    for op in single_ops:
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

    def pitch(sample: int) -> int:
        return isa.image_pitch(sample, dram_row_bytes) if batch > 1 else sample

    def batch_bytes(values: np.ndarray, sample: int) -> np.ndarray:  # `batch` samples, `pitch(sample)` apart
        out = np.zeros((batch, pitch(sample)), dtype=np.uint8)
        out[:, :sample] = values.reshape(batch, sample)
        return out.reshape(-1)

    in_sample = int(np.prod(in_shape))
    input_addr = place(batch_bytes(_bytes(x_int.reshape(-1)), in_sample))
    first_input = network.frozen_layers[0].inputs[0]
    region, pitches = {first_input: input_addr}, {first_input: pitch(in_sample)}
    program = FEProgram(np.zeros(0, dtype=np.uint8), 0, [], input_addr, batch, pitch(in_sample))
    descriptors = []
    weights: dict[str, tuple[int, int, int]] = {}  # a conv's bias and weight addresses, a sparse one's first tile
    outputs: dict[str, tuple[int, int]] = {}  # a layer's output buffer and its images' pitch
    slices = concat_slices(network)  # a concatenation's input -> (the concatenation, its offset in a sample)
    concats: dict[str, tuple[int, int]] = {}  # a concatenation's buffer and pitch

    def concat_buffer(name: str) -> tuple[int, int]:  # an inner concatenation lies in the outer one's buffer
        if name not in concats:
            if name in slices:
                outer, offset = slices[name]
                base, stride = concat_buffer(outer)
                concats[name] = (base + offset, stride)
            else:
                stride = pitch(int(np.prod(network.layer(name).out_shape)))
                concats[name] = (place(np.zeros(batch * stride, dtype=np.uint8)), stride)
        return concats[name]

    for layer in network.frozen_layers:
        if layer.op == "concat":
            region[layer.name], pitches[layer.name] = concat_buffer(layer.name)
    image0 = 0  # the first image of the op's descriptor
    for op in ops:
        layer = network.layer(op.name)
        lq = qnet.layers[op.name]
        stored = op.pool_layer or op.name
        out_fmt = qnet.layers[stored].out_fmt
        if lq.acc_bits > RTL_ACC_BITS:
            raise DesignError(f"layer '{op.name}' needs {lq.acc_bits}-bit accumulators; the FE RTL has {RTL_ACC_BITS}")
        # an op without a descriptor of its own (a concat) has one only as the FE output's copy of itself
        producer = _producer(network, layer.inputs[0] if op_of(layer).fe_kind else layer.name, region)
        source = region[producer]
        second, bias_addr, shifts, w_first = 0, 0, 0, 0
        in_stride = pitches[producer]  # one sample of the op's input (and of an add's second input)
        kind = op_of(layer).descriptor_kind  # dtlgen.model.ops: the descriptor's kind code and output scale
        mult, shift = op_of(layer).descriptor_scale(layer, lq, fixed)
        if kind == KIND_CONV:
            if image0 == 0:  # a layer's later descriptors read the same weights and biases
                # a generated conv's weight field holds its layer key: the engine makes the weights
                engine = None if op.gen else op_of(layer).engine_weights(layer, lq.weight)
                if op.sparse is not None:
                    packed, w_first = _sparse_weights(engine, op, cfg, bus_bytes)
                else:
                    packed, w_first = None if op.gen else _tile_ordered_weights(engine, op, cfg, bus_bytes), 0
                weights[op.name] = (place(_bias_table(lq, op.m)),
                                    seeded.layer_key(layer.seed["seed"], layer.seed["index"]) if op.gen
                                    else place(packed), w_first)
            bias_addr, second, w_first = weights[op.name]
        elif kind == KIND_ADD:  # both operands shifted up to the finer frac, then requantised
            shifts = lq.align_shifts[0] | lq.align_shifts[1] << 8
            other = _producer(network, layer.inputs[1], region)
            if pitches[other] != in_stride:  # equal shapes, equal pitches: a guard, never expected to fire
                raise DesignError(f"layer '{op.name}': its two operands' buffers hold their images at different "
                                  "pitches")
            second = region[other] + image0 * in_stride
        if not isa.SHIFT_RANGE[0] <= shift <= isa.SHIFT_RANGE[1]:
            raise DesignError(f"layer '{op.name}': requantisation shift {shift} does not fit the descriptor "
                              f"({isa.SHIFT_RANGE[0]} .. {isa.SHIFT_RANGE[1]})")
        out_shape = tuple(network.layer(stored).out_shape)  # (M,) for a linear layer, else (M, R, C)
        if image0 == 0 and stored in slices:  # its slice of a concatenation, at the concatenation's pitch
            base, stride = concat_buffer(slices[stored][0])
            outputs[stored] = (base + slices[stored][1], stride)
        elif image0 == 0:  # the layer's output, every sample of the batch
            stride = pitch(int(np.prod(out_shape)))
            outputs[stored] = (place(np.zeros(batch * stride, dtype=np.uint8)), stride)
        region[stored], pitches[stored] = outputs[stored]
        out_stride = pitches[stored]
        out_addr = region[stored] + image0 * out_stride
        # a fused max pool's own activation (a ReLU after the pool) joins its conv's: the two commute
        activation = joined_activation(layer.activation, network.layer(stored).activation)
        six = int(fixed.to_fixed(6.0, out_fmt)) if activation == "relu6" else 0
        several = op.total_images > 1  # the image strides (0 for one image)
        descriptors.append(isa.encode(
            f"FE descriptor of '{op.name}'", kind=kind, act=ACTIVATION_CODES[activation], pool=int(bool(op.pool)),
            depthwise=int(op.depthwise), scaled=int(op.scaled), gen=int(op.gen), sparse=int(op.sparse is not None),
            prefetch=int(op.prefetch), w_first=w_first, n=op.n, m=op.m, h=op.h, w=op.w, r=op.r, c=op.c,
            k=op.k, s=op.s, p=op.p,
            shift=shift, six=six, mult=mult, in_addr=source + image0 * in_stride, second_addr=second,
            bias_addr=bias_addr, out_addr=out_addr, sa=shifts & 0xFF, sb=shifts >> 8, more_images=op.images - 1,
            plane=int(isa.loads_planes(op.k, op.s, op.p, op.h, op.w, op.r, op.c, cfg.tr, cfg.tc, op.keep)),
            keep=int(op.keep), more_groups=op.groups - 1,
            in_stride=in_stride if several else 0, out_stride=out_stride if several else 0,
            in_gstride=op.images * in_stride if op.groups > 1 else 0,
            out_gstride=op.images * out_stride if op.groups > 1 else 0))
        program.ops.append(OpImage(op, stored, out_addr, out_shape, image0, out_stride))
        image0 = (image0 + op.total_images) % batch
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


def _bias_table(lq, m: int) -> np.ndarray:
    """A conv's bias table in memory (`dtlgen.isa.fe.bias_table_words`): M 32-bit biases, and for a seeded
    conv its scales after them, from the next TABLE_ALIGN_WORDS boundary (uint8)."""
    words = np.zeros(isa.bias_table_words(m, lq.scale is not None), dtype=np.int64)
    words[:m] = lq.bias
    if lq.scale is not None:
        words[len(words) - m:] = lq.scale
    return words.astype("<i4").view(np.uint8)


def _producer(network, name: str, region: dict[str, int]) -> str:
    """The buffer that holds the tensor `name`; flatten layers are free (NCHW is already the flat order)."""
    while name not in region:
        name = network.layer(name).inputs[0]
    return name


def _tile_ordered_weights(weight: np.ndarray, op: FEOp, cfg: FEConfig, bus_bytes: int) -> np.ndarray:
    """Weight bytes in the engine's trip order (m tile outer, n tile inner; a depthwise conv: m tiles),
    each trip's tile as K·K tap rows of (m, n) weights packed in slots of `weight_slot_bits(w_bits)` and
    padded to whole beats (`dtlgen.isa.fe`)."""
    slot = isa.weight_slot_bits(cfg.w_bits)
    w = weight.reshape(op.m, 1 if op.depthwise else op.n, op.k, op.k)
    blocks = []
    for m0 in range(0, op.m, cfg.tm):
        for n0 in range(0, w.shape[1], cfg.tn):
            tile = w[m0:m0 + cfg.tm, n0:n0 + cfg.tn]
            rows = tile.transpose(2, 3, 0, 1).reshape(op.k * op.k, -1)  # tap-major, (m, n) within a tap
            row_bytes = isa.weight_row_bytes(tile.shape[0], tile.shape[1], bus_bytes, slot)
            padded = np.zeros((op.k * op.k, row_bytes * 8 // slot), dtype=np.int64)
            padded[:, :rows.shape[1]] = rows
            blocks.append(isa.pack_weights(padded.reshape(-1), slot))
    return np.concatenate(blocks)


def _sparse_weights(weight: np.ndarray, op: FEOp, cfg: FEConfig, bus_bytes: int) -> tuple[np.ndarray, int]:
    """A pruned conv's weights in the sparse layout (`dtlgen.isa.fe`, Sparse weights) and its first tile's
    beats (the descriptor's w_first)."""
    slot = isa.weight_slot_bits(cfg.w_bits)
    w = weight.reshape(op.m, 1 if op.depthwise else op.n, op.k, op.k)
    mask = op.sparse.array()
    if np.any(w[mask == 0]):
        raise DesignError(f"layer '{op.name}': weights its pruning mask removes are not 0 after quantisation")
    try:
        data = isa.pack_sparse_weights(w, mask, cfg.tm, 1 if op.depthwise else cfg.tn, bus_bytes, slot, op.depthwise)
    except ValueError as e:
        raise DesignError(f"layer '{op.name}': {e}") from None
    return data, int(sparse_beats(op.sparse, op.depthwise, cfg.tm, cfg.tn, float(bus_bytes), slot)[0, 0])


def _overlapped(begin: int, count: int, regions: dict[tuple, tuple[WeightMask, int]]) -> tuple[int, int] | None:
    """The first sparse region (address, bytes) that bytes begin .. begin + count touch, or None."""
    return next(((start, length) for (start, *_), (_, length) in regions.items()
                 if start < begin + count and begin < start + length), None)


def _bytes(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype(np.int8).view(np.uint8)


def _aligned(addr: int) -> int:
    return -(-addr // ALIGN) * ALIGN


def check_descriptors(memory: np.ndarray, desc_addr: int, ops: list[dict], m_max: int,
                      array: tuple[int, int, int, int], bus_bytes: int, source: str, w_bits: int = 8,
                      dram_row_bytes: int = 0, prefetch: bool = False) -> list[FEOp]:
    """Check the FE descriptors of a memory image before an engine runs them (a project is data from a
    stranger): every field within what the engine's buffers hold, every address range inside the image,
    no output over the descriptors, each descriptor's output where `ops` (the project's program.json)
    says, a batch's images at the pitch `build_fe_program` lays out for `dram_row_bytes`, prefetched requests
    only on an engine with their FIFO (`prefetch`) and on dense convs with stored weights. Raises one
    DesignError; returns the operations the descriptors describe (the cycle model's input)."""
    table_end = desc_addr + DESCRIPTOR_BYTES * len(ops)
    tm, tn, *tiles = array  # tm, tn, tr, tc
    size = len(memory)
    if not 0 <= desc_addr <= size - DESCRIPTOR_BYTES * len(ops):
        raise DesignError(f"{source}: {len(ops)} descriptors at address {desc_addr} do not fit the {size}-byte "
                          "memory image; regenerate the project with 'dtlgen generate'")
    decoded = []
    sparse_regions: dict[tuple, tuple[WeightMask, int]] = {}  # (address, geometry) -> the mask, the region's bytes
    sparse_rows = 0
    outputs: list[tuple[int, int]] = []  # each descriptor's output: address, bytes
    for i, op in enumerate(ops):
        raw = memory[desc_addr + DESCRIPTOR_BYTES * i:desc_addr + DESCRIPTOR_BYTES * (i + 1)]
        d = isa.decode(raw)
        kind, act, pool, depthwise = d["kind"], d["act"], d["pool"], d["depthwise"]
        n, m, h, wd, r, c, k, s, p = (d[key] for key in ("n", "m", "h", "w", "r", "c", "k", "s", "p"))
        where = f"{source}: FE descriptor {i} ('{op['name']}')"

        def refuse(problem: str) -> None:
            raise DesignError(f"{where} {problem}; the project's memory image or program.json was changed: "
                              "regenerate it with 'dtlgen generate'")

        if kind not in isa.KINDS or act > 2 or isa.reserved_bits(raw) or (d["scaled"] and kind != KIND_CONV) \
                or (d["gen"] and (kind != KIND_CONV or depthwise or not d["scaled"])):
            refuse(f"has an unknown kind ({kind}) or activation ({act}), a scale on an op that is not a "
                   "convolution, generated weights on one that is not a scaled dense convolution, or bits set "
                   "outside its fields")
        if (d["sparse"] and (kind != KIND_CONV or d["gen"] or not d["w_first"])) or (d["w_first"] and not d["sparse"]):
            refuse(f"has sparse weights ({d['sparse']}, first tile {d['w_first']} beats) on an op that is not a "
                   "convolution with stored weights, or a first tile size without them (a sparse conv needs both)")
        if d["prefetch"] and (not prefetch or kind != KIND_CONV or depthwise or d["gen"] or d["sparse"]):
            refuse("prefetches its requests, but " + ("the engine has no read FIFO for them (sim/params.json's "
                   "pf_beats is 0)" if not prefetch else "only a dense convolution with its weights stored densely "
                   "prefetches"))
        window = isa.window_problem(kind, k, s, r, c, *tiles) if min(k, s, r, c) >= 1 else None
        if min(n, m, h, wd, r, c, k, s) < 1 or window or p >= k or m > m_max:
            refuse(f"has N={n} M={m} H={h} W={wd} R={r} C={c} K={k} S={s} P={p}, outside the engine's limits "
                   f"(convolutions K ≤ {K_MAX}, P < K, M ≤ {m_max}, the input window within the {tiles[0]}x{tiles[1]} "
                   f"tile's buffer{': ' + window if window else ''})")
        images = d["more_images"] + 1
        plane = isa.loads_planes(k, s, p, h, wd, r, c, *tiles, bool(d["keep"]))
        if d["plane"] != plane:
            how = {True: "whole channel planes", False: "row by row"}
            refuse(f"loads its input {how[bool(d['plane'])]}, where its geometry with the {tiles[0]}x{tiles[1]} "
                   f"tile loads {how[plane]} (dtlgen.isa.fe.loads_planes)")
        batch = isa.batch_problem(images, k, s, p, h, r, bool(pool), tiles[0]) if images > 1 else None
        if batch:
            refuse(f"runs a batch the engine cannot: {batch}")
        groups = d["more_groups"] + 1
        grouping = isa.groups_problem(groups, bool(d["keep"]), n, tn)
        if grouping:
            refuse(f"runs image groups the engine cannot: {grouping}")
        total = images * groups  # the descriptor's images, one group of `images` after another
        per_channel = depthwise or kind != KIND_CONV  # a lane an input channel: the engine reads M of them
        if r not in isa.out_sizes(kind, h, k, s, p) or c not in isa.out_sizes(kind, wd, k, s, p) \
                or (per_channel and n != m) \
                or (kind == KIND_ADD and (h, wd) != (r, c)) or (pool and kind != KIND_CONV):
            refuse(f"has shapes that do not agree (N={n} M={m} H={h} W={wd} R={r} C={c} K={k} S={s} P={p})")
        # program.json's out_shape: the bytes the descriptor stores, one sample's shape led by the image
        # count for a batch (whose images' outputs follow each other out_pitch bytes apart: the output
        # stride, the pitch the program builder lays out, as the input's stride is)
        out_shape = list(op["out_shape"])
        sample = out_shape[1:] if total > 1 else out_shape
        pitch = isa.image_pitch(int(np.prod(sample)), dram_row_bytes)
        # (an input of a concatenation stores its slice at the concatenation's pitch, program.json's out_pitch)
        if total > 1 and (out_shape[0] != total or len(sample) not in (1, 3)
                          or d["out_stride"] != op.get("out_pitch", pitch) or d["out_stride"] < pitch):
            refuse(f"runs {total} images, but program.json's out_shape {out_shape} and out_pitch "
                   f"{op.get('out_pitch')} (or the output stride {d['out_stride']}) do not describe {total} "
                   f"outputs {pitch} bytes apart")
        in_pitch = isa.image_pitch(n * h * wd, dram_row_bytes)
        if total > 1 and d["in_stride"] != in_pitch:
            refuse(f"reads {total} images {d['in_stride']} bytes apart, not the {in_pitch} its input buffer "
                   "holds them at")
        # a group's images follow the previous group's: its strides are `images` image strides (0 for one group)
        if (d["in_gstride"], d["out_gstride"]) != ((images * d["in_stride"], images * d["out_stride"]) if groups > 1
                                                   else (0, 0)):
            refuse(f"runs {groups} image group(s) of {images} with group strides {d['in_gstride']} and "
                   f"{d['out_gstride']}, not {images} image strides ({images} x {d['in_stride']} and {images} x "
                   f"{d['out_stride']}; 0 for one group)")
        rows, cols = (r >> 1, c >> 1) if pool else (r, c)  # what the engine writes an image: M channels of these
        if d["out_addr"] != op["out_addr"] or len(sample) not in (1, 3) or sample[0] != m \
                or int(np.prod(sample)) != m * rows * cols \
                or (len(sample) == 3 and not pool and tuple(sample[1:]) != (r, c)):
            refuse(f"stores {m} channels of {rows}x{cols} at {d['out_addr']}, not the {out_shape} at {op['out_addr']} "
                   "that program.json names")
        weights = isa.weight_bytes(m, n, k, bool(depthwise), tm, tn, bus_bytes, isa.weight_slot_bits(w_bits))
        if kind == KIND_CONV and (d["bias_addr"] % bus_bytes or (not d["gen"] and d["second_addr"] % bus_bytes)):
            refuse(f"has its biases at {d['bias_addr']} and weights at {d['second_addr']}: both must start on "
                   f"{bus_bytes}-byte beats of the memory port")
        sparse = None
        if d["sparse"]:  # (Sparse weights) read the region tile by tile: its layout, and the mask it stores
            if not 0 <= d["second_addr"] < size:
                refuse(f"reads sparse weights at {d['second_addr']}, outside the {size}-byte image")
            region = (d["second_addr"], d["w_first"], m, n, k, bool(depthwise))  # (a layer's descriptors share it)
            if region not in sparse_regions:  # (the generator gives each layer a region of its own)
                if _overlapped(d["second_addr"], 1, sparse_regions):
                    refuse(f"reads sparse weights at {d['second_addr']}, inside another layer's sparse weights")
                rows = isa.sparse_rows(m, n, k, bool(depthwise), tm, tn)
                if sparse_rows + rows > isa.SPARSE_ROWS_MAX:
                    refuse(f"brings the program's sparse tap rows to {sparse_rows + rows}, beyond the "
                           f"{isa.SPARSE_ROWS_MAX} a project may hold")
                sparse_rows += rows
                try:
                    _, mask, length = isa.unpack_sparse_weights(memory[d["second_addr"]:], *region[1:], tm, tn,
                                                                bus_bytes, isa.weight_slot_bits(w_bits), values=False)
                except ValueError as e:
                    refuse(f"stores sparse weights in the memory image that do not follow their layout "
                           f"(dtlgen.isa.fe, Sparse weights): {e}")
                if _overlapped(d["second_addr"], length, sparse_regions):
                    refuse(f"stores sparse weights ({length} bytes at {d['second_addr']}) over another layer's")
                sparse_regions[region] = (WeightMask.of(mask), length)
            sparse, weights = sparse_regions[region]
        # a batch's last image lies furthest: its input and output start a stride after the previous one's
        in_span = (total - 1) * d["in_stride"] + n * h * wd
        out_span = (total - 1) * d["out_stride"] + int(np.prod(sample))
        outputs.append((d["out_addr"], out_span))
        ranges = [("input", d["in_addr"], in_span), ("output", d["out_addr"], out_span)]
        if kind == KIND_CONV:  # (generated weights: the weight field is a key, not an address)
            ranges += [("biases", d["bias_addr"], 4 * isa.bias_table_words(m, bool(d["scaled"])))]
            ranges += [] if d["gen"] else [("weights", d["second_addr"], weights)]
        elif kind == KIND_ADD:
            ranges.append(("second input", d["second_addr"], in_span))
        for what, addr, count in ranges:
            if addr + count > size:
                refuse(f"reaches past the {size}-byte image with its {what} ({count} bytes at {addr})")
        if d["out_addr"] < table_end and desc_addr < d["out_addr"] + out_span:
            refuse(f"would write its output ({out_span} bytes at {d['out_addr']}) over the descriptors "
                   f"({desc_addr} to {table_end})")
        kind_name = {KIND_CONV: "conv", KIND_ADD: "add"}.get(kind, "pool")
        if op.get("kind") != kind_name:
            refuse(f"is a {kind_name}, but program.json calls it a {op.get('kind')}")
        decoded.append(FEOp(op["name"], kind_name, n, h, wd, m, r, c, k, s, p, bool(depthwise), 2 if pool else 0,
                            images=images, groups=groups, keep=bool(d["keep"]), scaled=bool(d["scaled"]),
                            gen=bool(d["gen"]), sparse=sparse, prefetch=bool(d["prefetch"])))
    # an output written over sparse weights would change what the engine parses, not only values: refused
    for i, (op, (out_addr, out_span)) in enumerate(zip(ops, outputs)):
        hit = _overlapped(out_addr, out_span, sparse_regions)
        if hit:
            raise DesignError(f"{source}: FE descriptor {i} ('{op['name']}') would write its output ({out_span} "
                              f"bytes at {out_addr}) over sparse weights ({hit[1]} bytes at {hit[0]}); the "
                              "project's memory image or program.json was changed: regenerate it with "
                              "'dtlgen generate'")
    # kept inputs must fit the input banks of the engine sized for these ops (what build_fe_program gives)
    engine = FEConfig(tm, tn, *tiles)
    words = keep_words(engine, bus_bytes, decoded)
    for i, (op, fe_op) in enumerate(zip(ops, decoded)):
        if fe_op.keep and not keeps_inputs(fe_op, engine, bus_bytes, words):
            raise DesignError(f"{source}: FE descriptor {i} ('{op['name']}') keeps its input on chip, which its "
                              f"geometry does not allow or the engine's {words}-word input banks do not hold "
                              "(dtlgen.isa.fe.keeps_inputs); the project's memory image or program.json was changed: "
                              "regenerate it with 'dtlgen generate'")
    return decoded
