"""Symmetric restricted-range quantizers (docs/algorithms.md §0) on top of the exact
:func:`fxpsim.fixedpoint.quantize`.

For ``b`` bits the codes are ``-(2**(b-1)-1) .. 2**(b-1)-1`` (the most negative code is never
produced) and a code ``q`` stands for ``q·Δ``. The clip value ``c`` is ``factor·max|x|``
(min-max; ``factor`` is 1, LBT's γ or Octo's PRC 0.95), per tensor or per output channel
(axis 0). Scale types:

* ``fp32``: Δ = the smallest fp32 >= ``c / (2**(b-1)-1)`` (the scale register is fp32);
* ``pow2``: ``Δ = 2**ceil(log2(c / (2**(b-1)-1)))``: rounded *up* to a power of two so
  ``|x| <= c`` never clips (the code range is used at least half).

The scaled value ``x/Δ`` is formed in float64 (exact for ``pow2``; one float64 rounding for
``fp32``) and rounded to an integer by :func:`~fxpsim.fixedpoint.quantize` with the tensor
kind's rounding mode (stochastic modes draw from the given hardware RNG, one draw per
element in C order) and overflow ``saturate_symmetric``; the overflow count is the number of
clipped (saturated) elements. A tensor (or channel) whose ``c`` is 0 gets ``Δ = 1`` and all
codes 0.

Unsigned codes (``TensorNumerics.signed`` False; activations whose producer is a ReLU, run
option ``a_codes=unsigned``): codes ``0 .. 2**b-1`` with ``Δ = c / (2**b-1)``, so a 4-bit
post-ReLU tensor uses 16 levels instead of the 8 non-negative ones of the signed grid. They
are computed as the signed grid of magnitude ``2**b-1`` (same rounding kernels) with negative
codes then clipped to 0 and counted.

Fixed clip (``clip=``): the learned forward scales (LBT's ``s_W``, ``u_A``) give ``c``
directly, no max reduction; elements beyond it saturate and are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from fxpsim.fixedpoint import QFormat, quantize
from fxpsim.fixedpoint.modes import R_STOCHASTIC, check_random_bits, rounding_id
from fxpsim.fixedpoint.quantize import _EMPTY_RAND, _NO_LFSR, SRC_ARRAY, SRC_LFSR, SRC_PHILOX
from fxpsim.fixedpoint.quantize import random_source as _random_source
from fxpsim.fixedpoint.rng import LFSR
from fxpsim.training.formats import TensorNumerics
from fxpsim.training.qkernels import (
    FIXED_ROUNDINGS,
    divide_f64,
    narrow_codes,
    quantize_fixed,
    quantize_nhwc,
    quantize_stochastic_div,
)


class NonFiniteError(ValueError):
    """A tensor to quantize holds NaN or inf (the training loop reports a divergence)."""


@dataclass(frozen=True)
class QTensor:
    """Codes of one quantized tensor.

    ``codes``: integer tensor shaped like the input (int8 for bits <= 8, else int16).
    ``scale``: float64 numpy Δ, shape ``()`` (per tensor) or ``(C,)`` (per channel, axis 0).
    ``n_clipped``: elements that saturated at ±(2**(bits-1)-1) (unsigned: at 0 or 2**bits-1).
    ``signed``: False for unsigned codes ``0 .. 2**bits-1``.
    """

    codes: torch.Tensor
    scale: np.ndarray
    bits: int
    n_clipped: int
    signed: bool = True

    @property
    def qmax(self) -> int:
        return qmax_of(self.bits, self.signed)

    def scale_column(self, ndim: int) -> np.ndarray:
        """Δ broadcastable against a tensor of ``ndim`` dims with channels on axis 0."""
        if self.scale.ndim == 0:
            return self.scale
        return self.scale.reshape((-1,) + (1,) * (ndim - 1))

    def dequantize(self) -> torch.Tensor:
        """``codes·Δ`` as float32 (the vector unit's copy of the quantized tensor)."""
        c = self.codes.numpy().astype(np.float64)
        return torch.from_numpy((c * self.scale_column(c.ndim)).astype(np.float32))


def qmax_of(bits: int, signed: bool = True) -> int:
    """Largest code magnitude of ``bits``-bit symmetric codes (1 bit: binary ±1), or of
    unsigned ``bits``-bit codes (``2**bits - 1``)."""
    if not signed:
        return (1 << bits) - 1
    return 1 if bits == 1 else (1 << (bits - 1)) - 1


def code_max(tn: TensorNumerics) -> int:
    """Largest code magnitude of a quantized tensor kind (see :func:`qmax_of`)."""
    assert tn.bits is not None
    return qmax_of(tn.bits, tn.signed)


def quantize_binary(x: torch.Tensor, per_channel: bool = False) -> QTensor:
    """1-bit weights: codes ``+1`` for x ≥ 0 else ``−1`` and Δ = mean|x| (per tensor or per
    channel, axis 0), the smallest fp32 ≥ the float64 mean (BinaryConnect/BWN's scale; for a
    tensor already of the form ±α, as LAQ's binary ŵ, Δ = α exactly). Nothing saturates."""
    xd = x.detach()
    if xd.numel() and not bool(torch.isfinite(xd).all()):
        raise NonFiniteError("x: non-finite value(s) (NaN or ±inf) cannot be quantized")
    a = xd.double().abs()
    if per_channel:
        mean = a.reshape(a.shape[0], -1).mean(dim=1).numpy() if a.numel() else \
            np.zeros(a.shape[0])
    else:
        mean = np.asarray(float(a.mean()) if a.numel() else 0.0)
    d32 = mean.astype(np.float32)
    d32 = np.where(d32.astype(np.float64) < mean, np.nextafter(d32, np.float32(np.inf)), d32)
    delta = np.where(mean > 0, d32.astype(np.float64), 1.0)
    codes = torch.where(xd >= 0, 1, -1).to(torch.int8)
    return QTensor(codes, delta, 1, 0)


def code_dtype(bits: int) -> np.dtype:
    """Smallest integer dtype holding ``bits``-bit symmetric codes."""
    return np.dtype(np.int8) if bits <= 8 else np.dtype(np.int16)


def scale_from_clip(c: np.ndarray, bits: int, scale_type: str, signed: bool = True
                    ) -> np.ndarray:
    """Δ (float64) for clip values ``c`` (zeros give Δ = 1), see the module docstring."""
    qmax = qmax_of(bits, signed) if bits > 1 else 1
    c = np.asarray(c, dtype=np.float64)
    delta = c / qmax
    if scale_type == "pow2":
        m, e = np.frexp(delta)  # delta = m * 2**e, m in [0.5, 1)
        delta = np.where(m == 0.5, delta, np.ldexp(1.0, e))
    else:  # the smallest fp32 >= c/qmax, so |x| <= c does not clip through Δ's rounding
        d32 = delta.astype(np.float32)
        d32 = np.where(d32.astype(np.float64) < delta, np.nextafter(d32, np.float32(np.inf)), d32)
        delta = d32.astype(np.float64)
    return np.where(c > 0, delta, 1.0)


def absmax(x: torch.Tensor, per_channel: bool) -> np.ndarray:
    """max|x| (float64; exact) over the tensor or per channel (axis 0)."""
    xd = x.detach()
    if not xd.numel():
        return np.zeros(xd.shape[0] if per_channel else ())
    if per_channel:
        lo, hi = torch.aminmax(xd.reshape(xd.shape[0], -1), dim=1)
        return torch.maximum(-lo, hi).double().numpy()
    lo, hi = torch.aminmax(xd)  # one pass, much faster than abs().max() on CPU
    return np.asarray(max(-float(lo), float(hi)))


def quantize_symmetric(
    x: torch.Tensor,
    tn: TensorNumerics,
    *,
    rng: object = None,
    random_bits: int = 16,
    per_channel: bool = False,
    clip_factor: float = 1.0,
    clip: float | None = None,
) -> QTensor:
    """Quantize a float tensor to ``tn.bits`` codes (see the module docstring), symmetric
    signed or (``tn.signed`` False) unsigned.

    ``per_channel``: one scale per index of axis 0 (weights' output channels, or the rows the
    caller put on axis 0).
    ``clip_factor``: c = clip_factor·max|x| (elements beyond c saturate and are counted).
    ``clip``: c given directly (a learned scale; per tensor only); no max reduction.
    """
    if tn.bits is None:
        raise ValueError("tn.bits: a float (None) tensor kind cannot be quantized")
    bits = tn.bits
    if bits == 1:  # binary weights: sign codes, mean-magnitude scale (no rounding choice)
        return quantize_binary(x, per_channel)
    if not tn.signed:
        return _unsigned(quantize_symmetric(x, replace(tn, bits=bits + 1, signed=True), rng=rng,
                                            random_bits=random_bits, per_channel=per_channel,
                                            clip_factor=clip_factor, clip=clip), bits)
    if clip is not None:
        if per_channel:
            raise ValueError("clip: a fixed clip value is per tensor")
        amax = np.asarray(float(clip))
    else:
        amax = absmax(x, per_channel) * clip_factor
    delta = scale_from_clip(amax, bits, tn.scale)
    xn = x.detach().contiguous().numpy()
    qmax = (1 << (bits - 1)) - 1
    codes = torch.empty(x.shape, dtype=torch.int8 if bits <= 8 else torch.int16)
    if per_channel:
        d = delta.reshape((-1,) + (1,) * (xn.ndim - 1))
        res = quantize(np.divide(xn, d, dtype=np.float64), QFormat(bits, 0), tn.rounding,
                       "saturate_symmetric", rng, random_bits=random_bits, return_stats=True)
        codes.copy_(torch.from_numpy(res.codes))
        return QTensor(codes, delta, bits, int(res.n_overflow))
    flat = xn.reshape(-1)
    rmode = FIXED_ROUNDINGS.get(tn.rounding)
    if rmode is not None:  # one fused pass: fp32 in, codes out
        n_bad, n_clip = quantize_fixed(flat, float(delta), rmode, qmax, codes.numpy().reshape(-1))
        if n_bad:
            raise NonFiniteError(f"x: {n_bad} non-finite value(s) (NaN or ±inf) cannot be quantized")
        return QTensor(codes, delta, bits, int(n_clip))
    if rounding_id(tn.rounding) == R_STOCHASTIC:  # fused: fp32 in, codes out
        n_bad, n_clip = _stochastic_div(flat, float(delta), qmax, rng, random_bits,
                                        codes.numpy().reshape(-1))
        if n_bad:
            raise NonFiniteError(f"x: {n_bad} non-finite value(s) (NaN or ±inf) cannot be quantized")
        return QTensor(codes, delta, bits, int(n_clip))
    scaled = np.empty(flat.size, dtype=np.float64)
    divide_f64(flat, float(delta), scaled)
    res = quantize(scaled, QFormat(bits, 0), tn.rounding, "saturate_symmetric", rng,
                   random_bits=random_bits, return_stats=True)
    narrow_codes(res.codes, codes.numpy().reshape(-1))
    return QTensor(codes, delta, bits, int(res.n_overflow))


def _unsigned(q: QTensor, bits: int) -> QTensor:
    """Unsigned ``bits``-bit codes from codes on the signed grid of magnitude 2**bits-1
    (Δ = c/(2**bits-1), the same): negative codes clip to 0 and are counted."""
    neg = q.codes < 0
    n_neg = int(neg.sum())
    codes = q.codes.masked_fill(neg, 0) if n_neg else q.codes
    if bits <= 7 and codes.dtype != torch.int8:
        codes = codes.to(torch.int8)
    return QTensor(codes, q.scale, bits, q.n_clipped + n_neg, signed=False)


def _stochastic_div(flat: np.ndarray, delta: float, qmax: int, rng: object, random_bits: int,
                    out: np.ndarray) -> tuple[int, int]:
    """:func:`~fxpsim.training.qkernels.quantize_stochastic_div` with the random source that
    :func:`fxpsim.fixedpoint.quantize` picks for ``rng`` (same checks, same generator
    advance), so the codes equal ``quantize(fl64(flat / delta), ...)``'s."""
    n = flat.size
    plan = None
    if isinstance(rng, LFSR):
        r = rng.check_bits(check_random_bits(random_bits))
        plan = rng.plan(n)  # None: wide LFSR with few draws per lane (nothing advanced)
    if plan is None:
        rand, philox, k0, k1, ctr, r = _random_source(rng, R_STOCHASTIC, n, random_bits)
        src = SRC_PHILOX if philox else SRC_ARRAY
        lfsr_args = _NO_LFSR
    else:
        rand, k0, k1, ctr, src = _EMPTY_RAND, 0, 0, 0, SRC_LFSR
        lfsr_args = plan.fill_args()
    return quantize_stochastic_div(flat, delta, qmax, r, src, rand, k0, k1, ctr, *lfsr_args,
                                   out)


def quantize_padded_nhwc(
    x: torch.Tensor, tn: TensorNumerics, pad: tuple[int, int],
    buf: torch.Tensor | None = None, clip: float | None = None,
) -> tuple[QTensor, torch.Tensor] | None:
    """Per-tensor :func:`quantize_symmetric` of a (B, C, H, W) tensor with codes written into
    a zero int8 NHWC buffer (B, H+2·ph, W+2·pw, C) at offset ``pad``: returns (QTensor whose
    ``codes`` is the NCHW view of the buffer's interior, buffer), or None when this fused
    path does not apply (stochastic or other rounding modes, more than 8 bits). ``buf``:
    reuse a buffer an earlier call returned for the same shapes (only the interior is
    written, so its border is still zero); one of another shape is ignored. Unsigned codes
    take this path up to 7 bits (0..127); ``clip``: a fixed clip value (learned scale)."""
    rmode = FIXED_ROUNDINGS.get(tn.rounding)
    if rmode is None or tn.bits is None or not 2 <= tn.bits <= (8 if tn.signed else 7) \
            or x.dim() != 4:
        return None
    bits = tn.bits
    qmax = code_max(tn)
    cv = absmax(x, False) if clip is None else np.asarray(float(clip))
    delta = scale_from_clip(cv, bits, tn.scale, tn.signed)
    nb, c, h, w = x.shape
    (ph, pw) = pad
    shape = (nb, h + 2 * ph, w + 2 * pw, c)
    if buf is None or tuple(buf.shape) != shape or buf.dtype != torch.int8:
        buf = torch.zeros(shape, dtype=torch.int8)
    n_bad, n_clip = quantize_nhwc(x.detach().contiguous().numpy(), float(delta), rmode,
                                  qmax, ph, pw, buf.numpy())
    if n_bad:
        raise NonFiniteError(f"x: {n_bad} non-finite value(s) (NaN or ±inf) cannot be quantized")
    if not tn.signed:  # negative codes clip to 0 (none after a ReLU)
        neg = buf < 0
        n_neg = int(neg.sum())
        if n_neg:
            buf.masked_fill_(neg, 0)
            n_clip += n_neg
    codes = buf[:, ph:ph + h, pw:pw + w, :].permute(0, 3, 1, 2)
    return QTensor(codes, delta, bits, int(n_clip), tn.signed), buf
