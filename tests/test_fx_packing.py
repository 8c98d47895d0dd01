"""INT4 packing: two's-complement nibbles, low nibble first; exhaustive over bytes and pairs."""

from __future__ import annotations

import numpy as np
import pytest

from fxpsim.fixedpoint.packing import pack_int4, unpack_int4


def _nibble_value(n: int) -> int:
    return n - 16 if n >= 8 else n


def test_every_byte_unpacks_and_repacks():
    packed = np.arange(256, dtype=np.uint8)
    codes = unpack_int4(packed, 512)
    assert codes.dtype == np.int8
    for byte in range(256):
        assert codes[2 * byte] == _nibble_value(byte & 0xF)
        assert codes[2 * byte + 1] == _nibble_value(byte >> 4)
    assert np.array_equal(pack_int4(codes), packed)


def test_every_code_pair_round_trips():
    v = np.arange(-8, 8)
    pairs = np.array([(lo, hi) for lo in v for hi in v])
    packed = pack_int4(pairs)  # C order: (lo, hi) of each pair share one byte
    assert packed.dtype == np.uint8 and packed.size == 256
    for (lo, hi), byte in zip(pairs, packed, strict=True):
        assert int(byte) == ((int(lo) & 0xF) | ((int(hi) & 0xF) << 4))
    assert np.array_equal(unpack_int4(packed, 512), pairs.ravel())


def test_odd_length_padding_and_hand_values():
    assert pack_int4(np.array([-8, 7, -1])).tolist() == [0x78, 0x0F]
    assert unpack_int4(np.array([0x78, 0x0F], np.uint8), 3).tolist() == [-8, 7, -1]
    assert pack_int4(np.array([], np.int8)).size == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="^codes: INT4 codes must be in"):
        pack_int4(np.array([8]))
    with pytest.raises(ValueError, match="^codes: INT4 codes must be in"):
        pack_int4(np.array([-9]))
    with pytest.raises(ValueError, match="^codes: expected an integer"):
        pack_int4(np.array([0.5]))
    with pytest.raises(ValueError, match="^packed"):
        unpack_int4(np.array([1, 2], np.int8), 2)
    with pytest.raises(ValueError, match="^n:"):
        unpack_int4(np.array([1], np.uint8), 3)
