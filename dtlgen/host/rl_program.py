"""The RL engine's program at run time: the layout record, the descriptor lists of a training step and
the DRAM images of matrices and parameters.

`RLLayout` (rl_layout.json) says where the retrainable layers live in the engine's banks and stashes
and where the DRAM buffers are; `dtlgen.generator.rl_program.plan_rl` makes one from a quantised
network. From a layout this module encodes the descriptor lists of a training step (`forward_list`,
`backward_list`) and the parameter transfers (`params_list`), and packs matrices and parameter
images, once, for the host loop (`dtlgen.host.rl_host`), the simulation, the test vectors and the
board driver alike.

The PYNQ driver vendors this module's import closure, so it imports only `dtlgen.isa`,
`dtlgen.quant.fixed`, `dtlgen.errors` and numpy: never the planner, the perf model, the quantiser
or the network model (tests/generator/test_driver.py holds the host loop's closure to that).

Descriptor (128 bytes, 32 little-endian words; rl_engine.sv decodes the same fields):
  w0 mode | act<<4 | background<<6 | six<<16 (background: a LOAD_A beside the next descriptor, an UPDATE)
  w1 M | N<<16                    w2 rows G | seed<<16
  w3 xa | ya<<16 (A stash words)  w4 gy | gx<<16 (G stash words)    w5 weight tile | bias row<<16
  w6 DRAM address                 w7 shifts s0 | s1<<8 | s2<<16 | s3<<24 (signed bytes)
  w8 Mt | Nt<<16                  w9 Nt' | pitch_n<<16  w10 pitch_m     w11 beats (LOAD / STORE)
  w0 bits 8..15: a windowed GEMM's K, stride, padding (K 0: a plain GEMM); w12 tap_nt | tap_step<<16,
  w13 hi | wi<<8 | ro<<16 | co<<24, w14 row_pitch | img_step<<16, w15 m_step (`_window`: a K×K conv)
  w16..23 A^(N+1), w24..31 A^(TM(N+1)): LFSR jump matrices, row r in half-word r
The packed fields are 16 bits; w6 and w11 are 32. The engine issues a LOAD of any length as a chain
of read requests of at most 65535 beats, so a transfer is bounded by the 32-bit DRAM map, not by
one burst; the planner (`dtlgen.generator.rl_program`) refuses a layout whose values do not fit
their fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from dtlgen.errors import DesignError
from dtlgen.isa import rl as isa_rl
from dtlgen.isa.params import RLParams
from dtlgen.isa.rl import VALUE_BYTES
from dtlgen.quant import fixed

MODES = isa_rl.MODES
ACTIVATIONS = isa_rl.ACTIVATION_CODES
PERF_BASE = {"forward": 0, "backward": 64, "params": 128}  # perf-counter index of each list's first descriptor


@dataclass(frozen=True)
class RLLayerPlan:
    name: str
    index: int  # position in the network (seeds the UPDATE's LFSR)
    m: int
    n: int
    positions: int
    mt: int
    nt: int
    nta: int  # n-tiles of [W | b]
    pitch_n: int  # stash words per row of an N-wide matrix
    pitch_m: int
    xa: int  # A stash: this layer's input
    ya: int  # A stash: this layer's output (the next layer's input)
    gy: int  # G stash: gradient w.r.t. this layer's output
    gx: int  # G stash: gradient w.r.t. this layer's input (the previous layer's gy); -1 for the first
    wbase: int
    bbase: int
    act: int
    six: int
    in_act: int  # the producer's activation (BWD_DATA masks dX with it)
    in_six: int
    out_shift: int
    bias_align: int
    dx_shift: int
    dw_shift: int
    db_shift: int
    w_step_frac: int  # dw_frac - w_frac: the UPDATE's SR shift is lr_shift + this
    b_step_frac: int
    # a K×K conv (issue 20) is a windowed GEMM (dtlgen.isa.rl): k 0 for a plain one. Its weight tiles are
    # tap-major, each tap's N columns tiled on their own (nt per tap, mt * taps * nt tiles); its rows are
    # the output positions (positions = ro * co), its input's the in_positions = hi * wi.
    k: int = 0
    stride: int = 1
    pad: int = 0
    hi: int = 1
    wi: int = 1
    ro: int = 1
    co: int = 1
    trained: bool = True  # False: FWD and BWD_DATA only (a frozen conv the gradient crosses), no UPDATE
    # a max-pool (kernel = stride = k, no padding, exact tiling): m = n channels, no weights (mt 0), never trained;
    # its descriptors are MAXPOOL and MAXPOOL_BWD (`_pool`)
    pool: bool = False

    @property
    def taps(self) -> int:
        return max(1, self.k) ** 2

    @property
    def in_positions(self) -> int:
        return self.hi * self.wi if self.k else self.positions

    @property
    def weight_tiles(self) -> int:
        return self.mt * self.taps * self.nt


@dataclass(frozen=True)
class RLLayout:
    """The RL engine's build (`engine`: array, widths, stash lanes, bank depths), the layers' places in
    its banks and stashes, and its DRAM map. rl_layout.json holds it as one flat object."""

    engine: RLParams
    batch: int
    layers: tuple[RLLayerPlan, ...]
    desc_addr: int
    feat_addr: int
    logit_addr: int
    dy_addr: int
    params_addr: int
    memory_bytes: int
    logit_frac: int
    grad_bits: int
    grad_frac: int
    feature_shape: tuple[int, ...]  # one sample's FE output (C, H, W) or (F,)
    extra: dict[str, Any] = field(default_factory=dict)
    feat_xa_alt: int = -1  # the second feature region (A stash word, DRAM address): steps alternate
    feat_addr_alt: int = -1
    mask_addr: int = -1  # the pruning-mask plane (LOAD_M) of an engine built with masks, else -1

    def feature_region(self, slot: int) -> tuple[int, int]:
        """(A stash word, DRAM address) of the features of a step with parity `slot`."""
        if slot == 0:
            return self.layers[0].xa, self.feat_addr
        if self.feat_xa_alt < 0 or self.feat_addr_alt < 0:
            raise DesignError("this RL layout has no second feature region (planned by an older dtlgen): "
                              "re-generate the project")
        return self.feat_xa_alt, self.feat_addr_alt

    @property
    def vals(self) -> int:
        return self.engine.bus_bytes // VALUE_BYTES

    @property
    def tile_beats(self) -> int:
        return -(-self.engine.tm * self.engine.tn // self.vals)

    @property
    def brow_beats(self) -> int:
        return -(-self.engine.tm // self.vals)

    @property
    def params_bytes(self) -> int:
        e = self.engine
        return params_image_bytes(e.tm, e.tn, e.bus_bytes, self.w_depth_used, self.b_depth_used)

    @property
    def mask_bytes(self) -> int:
        """Bytes of the pruning-mask plane (LOAD_M): every weight tile's bits, padded to whole beats."""
        e = self.engine
        return mask_plane_bytes(e.tm, e.tn, e.bus_bytes, self.w_depth_used)

    @property
    def param_layers(self) -> tuple[RLLayerPlan, ...]:
        """The layers with weights and biases (every one but the max-pools)."""
        return tuple(p for p in self.layers if not p.pool)

    @property
    def w_depth_used(self) -> int:
        return sum(l.weight_tiles for l in self.layers)

    @property
    def b_depth_used(self) -> int:
        return sum(l.mt for l in self.layers)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(d.pop("engine"))
        d["layers"] = [asdict(layer) for layer in self.layers]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RLLayout":
        d = dict(d)
        d["engine"] = RLParams(**{f.name: d.pop(f.name) for f in fields(RLParams)})
        d["layers"] = tuple(RLLayerPlan(**layer) for layer in d["layers"])
        d["feature_shape"] = tuple(d["feature_shape"])
        return cls(**d)


def params_image_bytes(tm: int, tn: int, bus_bytes: int, weight_tiles: int, bias_rows: int) -> int:
    """Bytes of the parameter image (LOAD_P / STORE_P): each tm·tn weight tile and each tm-value bias row
    padded to whole beats of the bus."""
    vals = bus_bytes // VALUE_BYTES
    return (weight_tiles * -(-tm * tn // vals) + bias_rows * -(-tm // vals)) * bus_bytes


def mask_plane_bytes(tm: int, tn: int, bus_bytes: int, weight_tiles: int) -> int:
    """Bytes of the pruning-mask plane (LOAD_M): each tile's tm·tn bits padded to whole beats."""
    return weight_tiles * isa_rl.mask_tile_beats(tm, tn, bus_bytes) * bus_bytes


def dram_map(layers: int, feature_bytes: int, output_bytes: int, params_bytes: int,
             mask_bytes: int = 0) -> dict[str, int]:
    """The RL engine's DRAM map for `layers` retrainable layers: the descriptor lists at 0, then two
    feature regions, the logits and dY (`output_bytes` each), the parameter image and, with `mask_bytes`,
    the pruning-mask plane, each on a 64-byte boundary; memory_bytes the power of two (at least 4 KB) that
    holds them. The planner and the board model's memory sizing both use it."""
    align = lambda addr: -(-addr // 64) * 64  # noqa: E731
    out = {"desc_addr": 0}
    end = isa_rl.DESCRIPTOR_BYTES * (3 * layers + 5)  # the longest list: the backward one, 2 per layer + 1, and more
    regions = [("feat_addr", feature_bytes), ("feat_addr_alt", feature_bytes), ("logit_addr", output_bytes),
               ("dy_addr", output_bytes), ("params_addr", params_bytes)]
    for name, size in regions + ([("mask_addr", mask_bytes)] if mask_bytes else []):
        out[name] = align(end)
        end = out[name] + size
    out["memory_bytes"] = 1 << max(0, (max(end, 1 << 12) - 1).bit_length())
    return out


# --- descriptors ----------------------------------------------------------------------------------
def encode(mode: str, **fields) -> bytes:
    """One descriptor (`dtlgen.isa.rl`, the spec of its fields)."""
    return isa_rl.encode(mode, **fields)


def _transfer_beats(layout: RLLayout, rows: int, cols: int) -> int:
    lanes = layout.engine.lanes
    return rows * -(-cols // lanes) * lanes * VALUE_BYTES // layout.engine.bus_bytes


def _load_features(layout: RLLayout, samples: int, slot: int, background: bool) -> bytes:
    first = layout.layers[0]
    xa, dram = layout.feature_region(slot)
    return encode("LOAD_A", background=int(background), n=first.n, rows=samples * first.in_positions, xa=xa, dram=dram,
                  beats=_transfer_beats(layout, samples * first.in_positions, first.n))


def _window(p: RLLayerPlan, mode: str) -> dict[str, int]:
    """A windowed GEMM's fields (`dtlgen.isa.rl`) for one mode; none for a plain GEMM. FWD and UPDATE walk the
    input grid; BWD_DATA walks dY's grid with the kernel flipped (stride 1: the transposed conv)."""
    if not p.k:
        return {}
    if mode == "BWD_DATA":
        return dict(k=p.k, stride=1, pad=p.k - 1 - p.pad, hi=p.ro, wi=p.co, ro=p.hi, co=p.wi, tap_nt=p.mt,
                    tap_step=-p.nt, m_step=p.taps * p.nt, row_pitch=p.co * p.pitch_m,
                    img_step=p.ro * p.co * p.pitch_m, mt=p.taps * p.mt, wbase=p.wbase + (p.taps - 1) * p.nt)
    out = dict(k=p.k, stride=p.stride, pad=p.pad, hi=p.hi, wi=p.wi, ro=p.ro, co=p.co, tap_nt=p.nt, tap_step=p.nt,
               m_step=p.taps * p.nt, row_pitch=p.wi * p.pitch_n, img_step=p.hi * p.wi * p.pitch_n)
    if mode == "FWD":
        out["nt"] = p.taps * p.nt
    else:  # UPDATE: every tap's n-tiles, then the last tap's run on into the bias column
        out["nta"] = isa_rl.update_tiles(p.taps, p.nt, p.nta)
    return out


def _pool(p: RLLayerPlan, mode: str) -> dict[str, int]:
    """A max-pool's fields (MAXPOOL, MAXPOOL_BWD): the window walk over its input grid, one tap an issue, TN channels a
    lane; `mt` the issues a window (MAXPOOL_BWD: two passes over the taps)."""
    return dict(k=p.k, stride=p.stride, pad=0, hi=p.hi, wi=p.wi, ro=p.ro, co=p.co, tap_nt=1, m=p.n, n=p.n,
                mt=(2 if mode == "MAXPOOL_BWD" else 1) * p.taps, nt=p.nt, pitch_n=p.pitch_n, pitch_m=p.pitch_n,
                row_pitch=p.wi * p.pitch_n, img_step=p.hi * p.wi * p.pitch_n)


def forward_list(layout: RLLayout, samples: int, slot: int = 0, load: bool = True) -> bytes:
    """LOAD the batch's features (unless the previous step's backward list loaded them), FWD every layer,
    STORE the logits; the features sit in region `slot` (steps alternate)."""
    first, last = layout.layers[0], layout.layers[-1]
    out = [_load_features(layout, samples, slot, False)] if load else []
    for p in layout.layers:
        xa = layout.feature_region(slot)[0] if p is first else p.xa
        if p.pool:  # (never the first: that one trains)
            out.append(encode("MAXPOOL", act=p.act, six=p.six, rows=samples * p.positions, xa=xa, ya=p.ya,
                              **_pool(p, "MAXPOOL")))
            continue
        out.append(encode("FWD", **{**dict(act=p.act, six=p.six, m=p.m, n=p.n, rows=samples * p.positions, xa=xa,
                                           ya=p.ya, wbase=p.wbase, bbase=p.bbase, shifts=(p.out_shift, p.bias_align, 0, 0),
                                           mt=p.mt, nt=p.nt, nta=p.nta, pitch_n=p.pitch_n, pitch_m=p.pitch_m),
                                        **_window(p, "FWD")}))
    out.append(encode("STORE_A", n=last.m, rows=samples * last.positions, ya=last.ya, dram=layout.logit_addr,
                      beats=_transfer_beats(layout, samples * last.positions, last.m)))
    return b"".join(out)


def backward_list(layout: RLLayout, samples: int, step: int, lr_shift: int, slot: int = 0,
                  prefetch: int = 0) -> bytes:
    """LOAD dY, then per layer from the last: BWD_DATA (not for the first), UPDATE (not for a layer that is not
    trained). With `prefetch` samples, the next step's features load into the other region in the background
    of the first layer's UPDATE."""
    last = layout.layers[-1]
    out = [encode("LOAD_G", n=last.m, rows=samples * last.positions, gy=last.gy, dram=layout.dy_addr,
                  beats=_transfer_beats(layout, samples * last.positions, last.m))]
    for k in range(len(layout.layers) - 1, -1, -1):
        p = layout.layers[k]
        rows = samples * p.positions
        if p.pool:
            out.append(encode("MAXPOOL_BWD", act=p.in_act, six=p.in_six, rows=rows, xa=p.xa, gy=p.gy, gx=p.gx,
                              **_pool(p, "MAXPOOL_BWD")))
            continue
        if k > 0:
            out.append(encode("BWD_DATA", **{**dict(act=p.in_act, six=p.in_six, m=p.m, n=p.n,
                                                    rows=samples * p.in_positions, xa=p.xa, gy=p.gy, gx=p.gx,
                                                    wbase=p.wbase, shifts=(p.dx_shift, 0, 0, 0), mt=p.mt, nt=p.nt,
                                                    nta=p.nta, pitch_n=p.pitch_n, pitch_m=p.pitch_m),
                                             **_window(p, "BWD_DATA")}))
        if not p.trained:
            continue
        w_sr, b_sr = lr_shift + p.w_step_frac, lr_shift + p.b_step_frac
        lo, hi = isa_rl.SHIFT_RANGE
        for what, value in (("weight", w_sr), ("bias", b_sr)):
            if not lo <= value <= hi:
                raise DesignError(f"layer '{p.name}': the {what} update shift {value} (lr_shift {lr_shift}) is "
                                  f"outside the RL engine's range {lo}..{hi}; choose another lr_shift")
        seed = fixed.lfsr_seed(step, p.index)
        if k == 0 and prefetch:
            out.append(_load_features(layout, prefetch, 1 - slot, True))
        xa = layout.feature_region(slot)[0] if k == 0 else p.xa
        columns = p.taps * p.n + 1  # a row of [W | b]
        out.append(encode("UPDATE", **{**dict(m=p.m, n=p.n, rows=rows, seed=seed, xa=xa, gy=p.gy, wbase=p.wbase,
                                              bbase=p.bbase, shifts=(p.dw_shift, p.db_shift, w_sr, b_sr), mt=p.mt,
                                              nt=p.nt, nta=p.nta, pitch_n=p.pitch_n, pitch_m=p.pitch_m,
                                              j_row=_jump_rows(columns), j_blk=_jump_rows(layout.engine.tm * columns)),
                                       **_window(p, "UPDATE")}))
    return b"".join(out)


_JUMPS: dict[int, tuple[int, ...]] = {}


def _jump_rows(steps: int) -> tuple[int, ...]:
    if steps not in _JUMPS:
        _JUMPS[steps] = fixed.lfsr_jump_matrix(steps)
    return _JUMPS[steps]


def params_list(layout: RLLayout, mode: str) -> bytes:
    """LOAD_P or STORE_P of every weight tile and bias row."""
    return encode(mode, m=layout.b_depth_used, n=layout.w_depth_used, dram=layout.params_addr,
                  beats=layout.params_bytes // layout.engine.bus_bytes)


def masks_list(layout: RLLayout) -> bytes:
    """LOAD_M of every weight tile's pruning mask (after a LOAD_P, which leaves every weight unmasked)."""
    if not layout.engine.has_mask or layout.mask_addr < 0:
        raise DesignError("this RL engine was built without pruning masks: generate the project from the pruned "
                          "model (dtlgen.load_model(..., prune=...)) so that its RL engine keeps them")
    return encode("LOAD_M", n=layout.w_depth_used, dram=layout.mask_addr,
                  beats=layout.mask_bytes // layout.engine.bus_bytes)


def step_schedule(batch_sizes: list[int], breaks: set[int] | frozenset[int] = frozenset()) -> list[tuple[bool, int]]:
    """(load, prefetch) of each step of a run of batches: the first step loads its features, every
    step but the last loads the next one's (prefetch samples) in the background of its last UPDATE;
    after a step in `breaks` (the host runs other lists there) the next step loads its own."""
    return [(k == 0 or k - 1 in breaks, batch_sizes[k + 1] if k + 1 < len(batch_sizes) and k not in breaks else 0)
            for k in range(len(batch_sizes))]


def step_descriptor_counts(layout: RLLayout, load: bool = True, prefetch: bool = False) -> tuple[int, int]:
    updates = sum(p.trained for p in layout.layers)
    return len(layout.layers) + 1 + int(load), len(layout.layers) + updates + int(prefetch)


# --- data images ----------------------------------------------------------------------------------
def matrix_bytes(layout: RLLayout, rows: np.ndarray) -> bytes:
    """A (G, F) integer matrix as the engine's DRAM rows: 16-bit values, row pitch of whole stash words."""
    g, f = rows.shape
    pitch = -(-f // layout.engine.lanes) * layout.engine.lanes
    padded = np.zeros((g, pitch), dtype="<i2")
    padded[:, :f] = rows
    return padded.tobytes()


def matrix_from_bytes(layout: RLLayout, data: bytes, rows: int, cols: int) -> np.ndarray:
    pitch = -(-cols // layout.engine.lanes) * layout.engine.lanes
    return np.frombuffer(data, dtype="<i2")[:rows * pitch].reshape(rows, pitch)[:, :cols].astype(np.int64)


def params_image(layout: RLLayout, state: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Weight tiles (i-major, padded to whole beats), then bias rows, for every layer in order. A conv's tiles
    are tap-major (`_padded_taps`): tile (t_m, tap, t_n)."""
    tm, tn, vals = layout.engine.tm, layout.engine.tn, layout.vals
    tiles, brows = [], []
    for p in layout.param_layers:
        w, b = state[p.name]
        wp = _padded_taps(p, np.asarray(w), tm, tn)
        for t_m in range(p.mt):
            for t_n in range(p.taps * p.nt):
                tile = np.zeros(layout.tile_beats * vals, dtype=np.int64)
                tile[:tm * tn] = wp[t_m * tm:(t_m + 1) * tm, t_n * tn:(t_n + 1) * tn].reshape(-1)
                tiles.append(tile)
        bp = np.zeros(p.mt * tm, dtype=np.int64)
        bp[:p.m] = b
        for t_m in range(p.mt):
            row = np.zeros(layout.brow_beats * vals, dtype=np.int64)
            row[:tm] = bp[t_m * tm:(t_m + 1) * tm]
            brows.append(row)
    return np.concatenate(tiles + brows).astype("<i2").tobytes()


def _padded_taps(p: RLLayerPlan, weight: np.ndarray, tm: int, tn: int, dtype=np.int64) -> np.ndarray:
    """A layer's weights as the (mt·tm, taps·nt·tn) matrix its tiles cut: (M, N) or (M, N, K, K), each tap's N
    columns (tap-major: `dtlgen.quant.ops.rl_weight_matrix`) padded to nt·tn."""
    taps = weight.reshape(p.m, p.n, p.taps).transpose(0, 2, 1) if p.k else weight.reshape(p.m, 1, p.n)
    out = np.zeros((p.mt * tm, p.taps, p.nt * tn), dtype=dtype)
    out[:p.m, :, :p.n] = taps
    return out.reshape(p.mt * tm, p.taps * p.nt * tn)


def _unpadded_taps(p: RLLayerPlan, padded: np.ndarray, tm: int, tn: int) -> np.ndarray:
    """Inverse of `_padded_taps`: (M, N) or (M, N, K, K)."""
    taps = padded.reshape(p.mt * tm, p.taps, p.nt * tn)[:p.m, :, :p.n]
    return taps.transpose(0, 2, 1).reshape(p.m, p.n, p.k, p.k) if p.k else taps.reshape(p.m, p.n)


def mask_image(layout: RLLayout, masks: dict[str, np.ndarray]) -> bytes:
    """The pruning-mask plane: for every weight tile (the parameter image's order) its tm·tn bits, bit e
    for PE e, least significant first, padded to whole beats. A layer without a mask keeps every weight;
    a mask must have its layer's weight shape (1 keeps a weight, 0 holds it at 0)."""
    tm, tn = layout.engine.tm, layout.engine.tn
    tile_bits = isa_rl.mask_tile_beats(tm, tn, layout.engine.bus_bytes) * layout.engine.bus_bytes * 8
    unknown = set(masks) - {p.name for p in layout.param_layers}
    if unknown:
        raise DesignError(f"pruning masks for {', '.join(sorted(unknown))}: not retrainable layers of this RL engine")
    tiles = []
    for p in layout.param_layers:
        keep = np.ones((p.m, p.n * p.taps), dtype=np.uint8)
        if p.name in masks:
            mask = np.asarray(masks[p.name])
            if mask.size != p.m * p.n * p.taps or mask.shape[0] != p.m:
                raise DesignError(f"the pruning mask of layer '{p.name}' has shape {mask.shape}; its weights are "
                                  f"{p.m} x {p.n}" + (f" x {p.k} x {p.k}" if p.k else ""))
            keep = (mask != 0).astype(np.uint8)
        keep = _padded_taps(p, keep, tm, tn, np.uint8)  # (the padding PEs' bits: 0, never read)
        for t_m in range(p.mt):
            for t_n in range(p.taps * p.nt):
                bits = np.zeros(tile_bits, dtype=np.uint8)
                bits[:tm * tn] = keep[t_m * tm:(t_m + 1) * tm, t_n * tn:(t_n + 1) * tn].reshape(-1)
                tiles.append(np.packbits(bits, bitorder="little"))
    return np.concatenate(tiles).tobytes() if tiles else b""


def params_from_image(layout: RLLayout, data: bytes,
                      shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Inverse of `params_image`; `shapes` gives each layer's weight shape."""
    tm, tn, vals = layout.engine.tm, layout.engine.tn, layout.vals
    values = np.frombuffer(data, dtype="<i2").astype(np.int64)
    tile_len, brow_len = layout.tile_beats * vals, layout.brow_beats * vals
    tiles = values[:layout.w_depth_used * tile_len].reshape(-1, tile_len)
    brows = values[layout.w_depth_used * tile_len:][:layout.b_depth_used * brow_len].reshape(-1, brow_len)
    out = {}
    for p in layout.param_layers:
        cols = p.taps * p.nt
        wp = np.zeros((p.mt * tm, cols * tn), dtype=np.int64)
        for t_m in range(p.mt):
            for t_n in range(cols):
                wp[t_m * tm:(t_m + 1) * tm, t_n * tn:(t_n + 1) * tn] = \
                    tiles[p.wbase + t_m * cols + t_n][:tm * tn].reshape(tm, tn)
        b = np.concatenate([brows[p.bbase + t_m][:tm] for t_m in range(p.mt)])[:p.m]
        out[p.name] = (_unpadded_taps(p, wp, tm, tn).reshape(shapes[p.name]), b)
    return out

