"""Tensor kernels shared by the float reference and the integer golden model (NCHW numpy arrays).

One implementation of each op's data movement (im2col, pooling windows); the caller chooses the
arithmetic: float64 for the reference, exact integers for the golden model. Nothing here rounds.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dtlgen.model.ir import conv_out_size

Matmul = Callable[[np.ndarray, np.ndarray], np.ndarray]


def pad_nchw(x: np.ndarray, padding: int, value) -> np.ndarray:
    if padding == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=value)


def windows(x: np.ndarray, kernel: int, stride: int, padding: int, pad_value=0,
            out: tuple[int, int] | None = None) -> np.ndarray:
    """Sliding windows: (B, N, H, W) → (B, N, R, C, K, K), a view after padding. `out` (R, C) beyond the
    floor-mode size (a ceil_mode pool) pads the bottom and right further with `pad_value`."""
    r = conv_out_size(x.shape[2], kernel, stride, padding)
    c = conv_out_size(x.shape[3], kernel, stride, padding)
    if out is not None and tuple(out) != (r, c):
        r, c = out
        extra = [max(0, (n - 1) * stride + kernel - size - 2 * padding) for n, size in ((r, x.shape[2]), (c, x.shape[3]))]
        x = np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])), constant_values=pad_value)
    xp = pad_nchw(x, padding, pad_value)
    view = np.lib.stride_tricks.sliding_window_view(xp, (kernel, kernel), axis=(2, 3))
    return view[:, :, : (r - 1) * stride + 1 : stride, : (c - 1) * stride + 1 : stride]


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int, padding: int, groups: int, matmul: Matmul) -> np.ndarray:
    """Convolution without bias: (B, N, H, W) · (M, N/groups, K, K) → (B, M, R, C).

    groups is 1, depthwise (groups = N = M), or g groups of N/g input and M/g output channels each.
    """
    k = weight.shape[2]
    win = windows(x, k, stride, padding)  # B N R C K K
    b, n, r, c = win.shape[:4]
    m = weight.shape[0]
    if groups == 1:
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(b * r * c, n * k * k)
        out = matmul(cols, weight.reshape(weight.shape[0], -1).T)  # (B·R·C, M)
        return out.reshape(b, r, c, -1).transpose(0, 3, 1, 2)
    if not groups == n == m:  # grouped: each group a dense conv of its own channels
        ng, mg = n // groups, m // groups
        return np.concatenate([conv2d(x[:, g * ng:(g + 1) * ng], weight[g * mg:(g + 1) * mg], stride, padding, 1,
                                      matmul) for g in range(groups)], axis=1)
    # depthwise: one K·K dot product per channel
    cols = win.reshape(b, n, r * c, k * k).transpose(1, 0, 2, 3).reshape(n, b * r * c, k * k)
    w = weight.reshape(n, k * k, 1)
    out = np.stack([matmul(cols[i], w[i])[:, 0] for i in range(n)])  # (N, B·R·C)
    return out.reshape(n, b, r, c).transpose(1, 0, 2, 3)


def linear(x: np.ndarray, weight: np.ndarray, matmul: Matmul) -> np.ndarray:
    """(B, N) · (M, N)ᵀ → (B, M), without bias."""
    return matmul(x, weight.T)


def max_pool(x: np.ndarray, kernel: int, stride: int, padding: int, pad_value,
             out: tuple[int, int] | None = None) -> np.ndarray:
    """Window maxima; `out` (R, C): the output size of a ceil_mode pool (`windows`)."""
    return windows(x, kernel, stride, padding, pad_value, out).max(axis=(4, 5))


def sum_pool(x: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """Window sums with zero padding (average pool before its division; count_include_pad)."""
    return windows(x, kernel, stride, padding, 0).sum(axis=(4, 5))


def float_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) @ b.astype(np.float64)


def gemm_rows(x: np.ndarray) -> np.ndarray:
    """A GEMM's rows: (B, N) stays; (B, N, H, W) → (B·H·W, N) (a 1×1 conv is a GEMM over positions)."""
    return x if x.ndim == 2 else x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def from_gemm_rows(rows: np.ndarray, like: tuple[int, ...]) -> np.ndarray:
    """Inverse of `gemm_rows` for an array of shape `like` (its channel count may differ)."""
    if len(like) == 2:
        return rows
    b, _, h, w = like
    return rows.reshape(b, h, w, -1).transpose(0, 3, 1, 2)


def weight_matrix(weight: np.ndarray) -> np.ndarray:
    """(M, N) stays; a 1×1 conv's (M, N, 1, 1) → (M, N)."""
    return weight.reshape(weight.shape[0], -1)


# --- the RL engine's convolutions: GEMMs over tap-major windows ---------------------------------
# A K×K conv on the RL engine is K·K 1×1 convs of the shifted input, summed: its GEMM's columns are
# tap-major, column (kr·K + kc)·N + n, for the rows (im2col_rows), the weight matrix (rl_weight_matrix)
# and so the LFSR's row-major order over [W | b] in an UPDATE. A 1×1 unpadded stride-1 conv's GEMM is
# `gemm_rows` / `weight_matrix` unchanged.
def im2col_rows(x: np.ndarray, kernel: int = 1, stride: int = 1, padding: int = 0) -> np.ndarray:
    """A conv's GEMM rows, one per output position: (B, N, H, W) → (B·R·C, K·K·N), tap-major columns
    (zero where a window reaches into the padding). (B, N) stays."""
    if x.ndim == 2 or (kernel == 1 and stride == 1 and padding == 0):
        return gemm_rows(x)
    win = windows(x, kernel, stride, padding)  # B N R C K K
    b, n, r, c = win.shape[:4]
    return win.transpose(0, 2, 3, 4, 5, 1).reshape(b * r * c, kernel * kernel * n)


def col2im_rows(cols: np.ndarray, in_shape: tuple[int, ...], kernel: int = 1, stride: int = 1,
                padding: int = 0) -> np.ndarray:
    """The adjoint of `im2col_rows`: each column's value summed onto the input element it was read from
    (values read from the padding dropped): (B·R·C, K·K·N) → `in_shape` (B, N, H, W)."""
    if len(in_shape) == 2 or (kernel == 1 and stride == 1 and padding == 0):
        return from_gemm_rows(cols, in_shape)
    b, n, h, w = in_shape
    r, c = conv_out_size(h, kernel, stride, padding), conv_out_size(w, kernel, stride, padding)
    taps = cols.reshape(b, r, c, kernel, kernel, n).transpose(0, 5, 1, 2, 3, 4)  # B N R C K K
    out = np.zeros((b, n, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for kr in range(kernel):
        for kc in range(kernel):
            out[:, :, kr:kr + (r - 1) * stride + 1:stride, kc:kc + (c - 1) * stride + 1:stride] += taps[..., kr, kc]
    return out[:, :, padding:padding + h, padding:padding + w]


def rl_weight_matrix(weight: np.ndarray) -> np.ndarray:
    """The RL engine's weight matrix: (M, N) stays; a conv's (M, N, K, K) → (M, K·K·N), tap-major."""
    return weight if weight.ndim == 2 else weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def from_rl_weight_matrix(matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `rl_weight_matrix` for a weight of `shape`."""
    if len(shape) == 2:
        return matrix.reshape(shape)
    m, n, k, _ = shape
    return matrix.reshape(m, k, k, n).transpose(0, 3, 1, 2)


def max_pool_backward(x: np.ndarray, grad: np.ndarray, kernel: int, stride: int, padding: int,
                      pad_value) -> np.ndarray:
    """A max-pool's gradient w.r.t. its input: each window's gradient goes to the window's first maximum
    in row-major order (as torch's), summed where windows overlap. Floor-mode output sizes."""
    b, n, h, w = x.shape
    win = windows(x, kernel, stride, padding, pad_value)  # B N R C K K
    r, c = win.shape[2:4]
    first = win.reshape(b, n, r, c, kernel * kernel).argmax(axis=4)
    rows = np.arange(r)[:, None] * stride + first // kernel
    cols = np.arange(c)[None, :] * stride + first % kernel
    out = np.zeros((b, n, h + 2 * padding, w + 2 * padding), dtype=grad.dtype)
    bi, ni = np.meshgrid(np.arange(b), np.arange(n), indexing="ij")
    np.add.at(out, (bi[:, :, None, None], ni[:, :, None, None], rows, cols), grad)
    return out[:, :, padding:padding + h, padding:padding + w]
