"""The surrogate: a gpytorch exact GP over encoded candidates, with a categorical kernel.

Kernel (:class:`OverlapKernel`): the exponentiated, ARD-weighted Hamming (overlap) kernel

    k(x, x') = s^2 * exp( - sum_c [x_c != x'_c] / l_c )

over the columns c of :meth:`SearchSpace.features` (per writable entry: its edge type, then its
level). Why this kernel: the variables are categorical (none / DSC@f / ASC@kind), so a
Euclidean distance between level numbers would invent an order that does not exist (DSC@1.0 is
not "between" DSC@0.5 and ASC/S2S). The overlap distance only asks "same choice or not". With
the type column beside the level column, two candidates that differ in an ASC's residual kind
differ in one column, two that differ in the type of edge differ in two: the kernel sees the
hierarchy of the choice. Each factor exp(-[x_c != x'_c] / l_c) is a valid kernel on a finite
set (its Gram matrix is (1 - e^{-1/l}) I + e^{-1/l} 11^T, positive definite), so the product is
positive definite. ARD lengthscales let the GP learn which entries matter (paper 1 Fig. 1: the
position of a skip matters). This is Casmopolitan's (Wan et al., 2021) overlap kernel with
the type column added.

Hyperparameters (lengthscales, outputscale, noise, constant mean) are refitted every round by
maximising the exact marginal log likelihood (L-BFGS with a strong-Wolfe line search, at most
`iters` iterations, from a fixed initialisation, so the fit is a deterministic function of the
data). Targets are standardised.
"""

from __future__ import annotations

from dataclasses import dataclass

import gpytorch
import numpy as np
import torch

DTYPE = torch.float64


class OverlapKernel(gpytorch.kernels.Kernel):
    """exp(-sum_c [x_c != x'_c] / l_c) with one lengthscale per column (ARD) or one shared."""

    has_lengthscale = True

    def forward(self, x1, x2, diag: bool = False, last_dim_is_batch: bool = False, **params):
        """Kernel matrix (or its diagonal) between rows of `x1` and `x2`.

        Computed as a matrix product of one-hot codes: sum_c w_c [x_c != x'_c] =
        sum_c w_c - (onehot(x) * w) . onehot(x'), with w_c = 1 / l_c.
        """
        w = 1.0 / self.lengthscale  # [..., 1, d]
        if diag:
            mism = (x1 != x2).to(x1.dtype)
            return torch.exp(-(mism * w).sum(-1))
        levels = int(torch.maximum(x1.max(), x2.max()).item()) + 1
        a = torch.nn.functional.one_hot(x1.long(), levels).to(x1.dtype)  # [..., n, d, L]
        b = torch.nn.functional.one_hot(x2.long(), levels).to(x1.dtype)
        same = (a * w.unsqueeze(-1)).flatten(-2) @ b.flatten(-2).transpose(-1, -2)
        return torch.exp(same - w.sum(-1, keepdim=True))


class _ExactGP(gpytorch.models.ExactGP):
    def __init__(self, x, y, likelihood, ard_dims: int | None):
        super().__init__(x, y, likelihood)
        self.mean_module = gpytorch.means.ConstantMean()
        base = OverlapKernel(ard_num_dims=ard_dims,
                             lengthscale_prior=gpytorch.priors.GammaPrior(3.0, 1.0))
        self.covar_module = gpytorch.kernels.ScaleKernel(
            base, outputscale_prior=gpytorch.priors.GammaPrior(2.0, 1.0))

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


@dataclass
class FittedGP:
    """A fitted GP with the standardisation of its targets; predicts in objective units."""

    model: _ExactGP
    likelihood: gpytorch.likelihoods.GaussianLikelihood
    y_mean: float
    y_std: float
    final_mll: float

    def predict(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent objective at `feats`."""
        x = torch.as_tensor(feats, dtype=DTYPE)
        self.model.eval()
        with torch.no_grad(), gpytorch.settings.fast_pred_var(False):
            post = self.model(x)
            mu = post.mean.numpy() * self.y_std + self.y_mean
            sd = post.variance.clamp_min(1e-12).sqrt().numpy() * self.y_std
        return mu, sd

    def believe(self, feats: np.ndarray, values: np.ndarray) -> FittedGP:
        """The GP conditioned on extra (fantasy) observations, hyperparameters kept.

        Used by the kriging believer: `values` are the GP's own means at `feats`.
        """
        x = torch.as_tensor(np.atleast_2d(feats), dtype=DTYPE)
        y = torch.as_tensor((np.atleast_1d(values) - self.y_mean) / self.y_std, dtype=DTYPE)
        self.model.eval()
        with torch.no_grad():
            self.model(x[:1])  # fantasy models need the prediction caches
            fant = self.model.get_fantasy_model(x, y)
        return FittedGP(fant, self.likelihood, self.y_mean, self.y_std, self.final_mll)


def fit_gp(feats: np.ndarray, y: np.ndarray, *, ard: bool = True, iters: int = 50) -> FittedGP:
    """Fit an exact GP with the overlap kernel by maximising the marginal likelihood.

    `feats` [n, d] are :meth:`SearchSpace.features`, `y` [n] the objective (any sign; the GP
    just models it). Deterministic: fixed initialisation, fixed iteration count.
    """
    x = torch.as_tensor(feats, dtype=DTYPE)
    yv = np.asarray(y, dtype=np.float64)
    y_mean = float(yv.mean())
    y_std = float(yv.std()) if len(yv) > 1 and yv.std() > 1e-12 else 1.0
    yt = torch.as_tensor((yv - y_mean) / y_std, dtype=DTYPE)
    lik = gpytorch.likelihoods.GaussianLikelihood(
        noise_constraint=gpytorch.constraints.GreaterThan(1e-5),
        noise_prior=gpytorch.priors.GammaPrior(1.1, 10.0)).to(DTYPE)
    model = _ExactGP(x, yt, lik, x.shape[1] if ard else None).to(DTYPE)
    model.covar_module.base_kernel.lengthscale = 2.0
    model.covar_module.outputscale = 1.0
    lik.noise = 0.05
    model.train()
    lik.train()
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=iters,
                            line_search_fn="strong_wolfe")
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)

    def closure():
        opt.zero_grad()
        loss = -mll(model(x), yt)
        loss.backward()
        return loss

    with gpytorch.settings.cholesky_jitter(1e-6):
        opt.step(closure)
        with torch.no_grad():
            loss = -mll(model(x), yt)
    model.eval()
    lik.eval()
    return FittedGP(model, lik, y_mean, y_std, float(-loss.detach()))
