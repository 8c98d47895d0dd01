"""One-step forward and backtrack LAQ (BLAQ, Ma et al., AAAI 2024; docs/algorithms.md §2).

Step ``t`` (state: master ``w_t``, Adam moments, codes; the recipe ``fb``):

1. forward / loss / backward at ``ŵ_t`` on the batch -> ``g_t`` (every parameter);
2. ``fb_trial_update``: scratch Adam moments ``m', v'`` from ``g_t``; trial master
   ``w̃ = clip(w_t − η·m̂'/(√v̂' + ε))``, trial codes by the projection with ``d̃ = √v' + ε``
   (m rounds, warm-started from the current codes); other parameters take the scratch step;
3. ``fb_trial_*``: forward / loss / backward at the trial point on the same batch
   (``trial_batch = next``: the following mini-batch) -> ``g̃``; BN running statistics
   and all parameters are restored afterwards (the trial is not committed);
4. ``fb_blend``: ``ḡ = a·g̃ + (1−a)·g_t`` (``coef_on = current``: ``a·g_t + (1−a)·g̃``);
5. ``update``: Adam from ``w_t`` with ``ḡ`` (the real moments; with
   ``trial_updates_moments`` the scratch moments are committed first), clip, projection.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fxpsim.training import vector_unit as vu
from fxpsim.training.algorithms.base import Batch, StepStats, _grad
from fxpsim.training.algorithms.execlog import PassNames
from fxpsim.training.algorithms.laq import LaqAlgorithm, weight_values
from fxpsim.training.algorithms.optim import AdamMoments, ParamGroup

_TRIAL = PassNames.prefixed("fb_trial_")


class FbAlgorithm(LaqAlgorithm):
    name = "fb"

    def _bn_buffers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(b, b.detach().clone()) for m in self.net.modules()
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for b in m.buffers()]

    def _trial_step(self, grp: ParamGroup, scratch: dict[int, AdamMoments],
                    w_trial: dict[str, torch.Tensor]
                    ) -> Callable[[torch.Tensor, torch.Tensor], None]:
        """Scratch Adam step of one parameter of ``grp`` (moments into ``scratch``; the GEMM
        weight's trial master copy into ``w_trial``, moved into ``ŵ`` when float)."""
        def step(p: torch.Tensor, g: torch.Tensor) -> None:
            mo = self.adam.moments(p).advanced(g, self.adam.beta1, self.adam.beta2)
            scratch[id(p)] = mo
            if grp.is_gemm and p is grp.weight:
                w_trial[grp.node] = self._weight_step(grp.node, mo)
                if grp.node not in self.levels:
                    p.copy_(w_trial[grp.node])
            else:
                p.sub_(self.adam.delta(mo))
        return step

    @torch.no_grad()
    def _trial_point(self, grads: dict[int, torch.Tensor]) -> dict[int, AdamMoments]:
        """Move every parameter to the trial point; returns the scratch moments."""
        scratch: dict[int, AdamMoments] = {}
        w_trial: dict[str, torch.Tensor] = {}
        for grp in self.groups:
            vu.update(self.log, grp.node, "fb_trial_update", "adam_update",
                      self._trial_step(grp, scratch, w_trial), grp.params,
                      [grads[id(p)] for p in grp.params])
            if grp.node in self.levels:
                p, k = grp.weight, self.levels[grp.node]
                alpha, q = self._projection(self.log, "fb_trial_update", grp.node,
                                            w_trial[grp.node], scratch[id(p)].v.sqrt() + 1e-8,
                                            self.codes[grp.node])
                p.copy_(weight_values(alpha, q, k).to(p.dtype))
        return scratch

    def probe(self, x: torch.Tensor, y: torch.Tensor
              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        """Raw probe gradient at ŵ_t and the blend FB would form on the probe batch: the
        trial point from the probe gradient (scratch moments), the probe gradient there,
        ``a·g̃ + (1−a)·g`` (per ``coef_on``). Nothing is committed."""
        o = self.options
        params = [p for grp in self.groups for p in grp.params]
        saved = {id(p): p.detach().clone() for p in params}
        with self.quiet():
            self.forward_backward(x, y)
            raw = self._gemm_grads()
            g_cur = {id(p): _grad(p).detach().clone() for p in params}
            self._trial_point(g_cur)
            self.forward_backward(x, y)
            trial = self._gemm_grads()
            with torch.no_grad():
                for p in params:
                    p.copy_(saved[id(p)])
        a = o.fb_a
        wt, wc = (a, 1.0 - a) if o.fb_coef_on == "trial" else (1.0 - a, a)
        return raw, {n: wt * trial[n] + wc * raw[n] for n in raw}

    def step(self, batch: Batch) -> StepStats:
        o = self.options
        self.log.clear()
        self.net.train()
        self.net.begin_step(self.step_index)
        loss, correct = self.forward_backward(batch.x, batch.y)
        clip_grads = [(c, c.grad) for _, c in self._clips]  # the trial's are not used
        params = [p for grp in self.groups for p in grp.params]
        g_cur = {id(p): _grad(p).detach().clone() for p in params}
        saved = {id(p): p.detach().clone() for p in params}
        bn = self._bn_buffers()
        scratch = self._trial_point(g_cur)
        if o.fb_trial_batch == "next" and batch.next_x is not None:
            assert batch.next_y is not None  # next_x and next_y are set together
            tx, ty = batch.next_x, batch.next_y
        else:
            tx, ty = batch.x, batch.y
        self.forward_backward(tx, ty, _TRIAL, loss_pass="fb_trial_loss")
        g_trial = {id(p): _grad(p).detach().clone() for p in params}
        with torch.no_grad():  # backtrack: the trial point is not committed
            for p in params:
                p.copy_(saved[id(p)])
            for buf, copy in bn:
                buf.copy_(copy)
        if o.fb_trial_updates_moments:
            self.adam.state.update(scratch)
        a = o.fb_a
        wt, wc = (a, 1.0 - a) if o.fb_coef_on == "trial" else (1.0 - a, a)
        blended: dict[int, torch.Tensor] = {}
        for grp in self.groups:
            ids = [id(p) for p in grp.params]
            out = vu.blend(self.log, grp.node, "fb_blend", wt, [g_trial[i] for i in ids],
                           wc, [g_cur[i] for i in ids])
            blended.update(zip(ids, out, strict=True))
        self._last_grads = {g.node: blended[id(g.weight)].reshape(-1)
                            for g in self.groups if g.is_gemm}
        self.commit(blended)
        for c, g in clip_grads:
            c.grad = g
        self.update_scales()
        self.step_index += 1
        return StepStats(loss, correct, int(batch.x.shape[0]))
