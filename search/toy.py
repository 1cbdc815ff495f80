"""Objectives with a known optimum, for tests, demos and checking the search machinery.

They speak the evaluator protocol of executors.py (``evaluator(levels, seed) -> dict`` with
``drop`` and ``energy_uj``) and are picklable, so every executor (in-process, process pool, Ray)
can run them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnc.search.space import SearchSpace


@dataclass(frozen=True)
class ToyObjective:
    """drop(x) = sum_e w_e * d(x_e, t_e), zero exactly at the target levels t.

    d is 1 when the edge type differs, `half` when the type agrees but the DSC fraction or ASC
    kind differs, 0 when equal. energy_uj counts skip edges (DSC ones weigh their fraction), so
    the (drop, energy) trade-off is non-trivial when the target has skips. `delay` seconds of
    sleep per call stand in for training time (resume tests).
    """

    space: SearchSpace
    target: tuple[int, ...]
    weights: tuple[float, ...]
    half: float = 0.5
    noise: float = 0.0
    delay: float = 0.0

    @classmethod
    def random(cls, space: SearchSpace, seed: int, noise: float = 0.0) -> ToyObjective:
        """A toy with a random target and weights in [0.5, 2)."""
        rng = np.random.default_rng(seed)
        target = space.sample(rng)
        w = tuple(float(v) for v in rng.uniform(0.5, 2.0, size=space.n_vars))
        return cls(space, target, w, noise=noise)

    def value(self, levels) -> float:
        """The noise-free drop of `levels`."""
        f = self.space.features([levels])[0]
        t = self.space.features([self.target])[0]
        n = self.space.n_vars
        type_diff = f[:n] != t[:n]
        lvl_diff = f[n:] != t[n:]
        d = np.where(type_diff, 1.0, np.where(lvl_diff, self.half, 0.0))
        return float(np.dot(self.weights, d))

    def __call__(self, levels, seed: int) -> dict:
        """Evaluate: drop (+ Gaussian noise seeded by `seed`), energy, a fake firing rate."""
        if self.delay:
            import time

            time.sleep(self.delay)
        drop = self.value(levels)
        if self.noise:
            drop += float(np.random.default_rng(seed).normal(0.0, self.noise))
        energy = 0.0
        for c in self.space.decode(levels):
            energy += sum(1.0 for _ in c.kinds) + sum(c.fractions.values())
        return {"drop": drop, "energy_uj": energy, "rates": {"mean": 0.1}}


@dataclass(frozen=True)
class TorchToy:
    """A tiny real training run whose result depends on the candidate, the seed and torch's
    arithmetic: an MLP whose hidden units are masked by the levels, trained for `steps` SGD
    steps on seeded synthetic data. Used to check that executors agree bit for bit."""

    n_vars: int
    steps: int = 20
    hidden: int = 64

    def __call__(self, levels, seed: int) -> dict:
        """Train and return the final loss as `drop` (and the thread count used)."""
        import torch

        g = torch.Generator().manual_seed(seed)
        x = torch.randn(256, 32, generator=g)
        y = (x[:, :4].sum(1) > 0).long()
        mask = torch.ones(self.hidden)
        for i, lv in enumerate(levels):
            mask[(i * 7) % self.hidden::max(1, self.n_vars)] = 1.0 / (1 + lv)
        net = torch.nn.Sequential(torch.nn.Linear(32, self.hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(self.hidden, 2))
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(self.steps):
            opt.zero_grad()
            h = net[1](net[0](x)) * mask
            loss = torch.nn.functional.cross_entropy(net[2](h), y)
            loss.backward()
            opt.step()
        return {"drop": float(loss.detach()), "energy_uj": float(mask.sum()),
                "threads": torch.get_num_threads()}
