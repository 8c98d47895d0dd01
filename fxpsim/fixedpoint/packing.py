"""INT4 packing: two signed 4-bit codes per byte.

Layout: codes are taken in C order (flattened); code ``2i`` goes to the LOW nibble of byte
``i`` and code ``2i+1`` to the HIGH nibble, each as its 4-bit two's complement pattern
(-8 -> 0x8, -1 -> 0xF, 7 -> 0x7). An odd count is padded with a 0 code in the last high
nibble. ``unpack_int4(pack_int4(c), c.size)`` returns ``c.ravel()`` as int8.
"""

from __future__ import annotations

import numpy as np


def pack_int4(codes: object) -> np.ndarray:
    """Pack signed 4-bit codes (values in [-8, 7], any int dtype) into a uint8 array."""
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"codes: expected an integer array, got dtype {arr.dtype}")
    flat = arr.ravel()
    if flat.size and (int(flat.min()) < -8 or int(flat.max()) > 7):
        raise ValueError(f"codes: INT4 codes must be in [-8, 7], got range "
                         f"[{int(flat.min())}, {int(flat.max())}]")
    nibbles = (flat.astype(np.int16) & 0xF).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.concatenate([nibbles, np.zeros(1, dtype=np.uint8)])
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: object, n: int) -> np.ndarray:
    """The first ``n`` signed 4-bit codes of ``packed`` (uint8, low nibble first) as int8."""
    arr = np.asarray(packed)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError(f"packed: expected a 1-D uint8 array, got {arr.dtype} {arr.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= 2 * arr.size:
        raise ValueError(f"n: expected an integer in [0, {2 * arr.size}], got {n!r}")
    out = np.empty(2 * arr.size, dtype=np.int16)
    out[0::2] = arr & 0xF
    out[1::2] = arr >> 4
    out = np.where(out > 7, out - 16, out)  # 4-bit two's complement sign extension
    return out[:n].astype(np.int8)
