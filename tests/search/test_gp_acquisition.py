"""GP kernel, UCB formula and beta schedule, batch selection (kriging believer), toy optimum."""

import math

import numpy as np
import pytest
import torch

from snnc.search.acquisition import beta_t, candidate_pool, select_batch, ucb
from snnc.search.gp import OverlapKernel, fit_gp
from snnc.search.space import BlockSpace, SearchSpace

SPACE = SearchSpace((BlockSpace(3, kinds=("S2S", "S2M"), fractions=(0.5, 1.0)),))


def test_overlap_kernel_formula_and_psd():
    k = OverlapKernel(ard_num_dims=3).double()
    k.lengthscale = torch.tensor([[0.5, 1.0, 2.0]], dtype=torch.float64)
    x = torch.tensor([[0., 1., 2.], [0., 2., 2.], [1., 2., 3.]], dtype=torch.float64)
    K = k(x, x).to_dense()
    # exp(-sum_c [x_c != x'_c] / l_c)
    assert K[0, 1].item() == pytest.approx(math.exp(-1 / 1.0))
    assert K[0, 2].item() == pytest.approx(math.exp(-(1 / 0.5 + 1 / 1.0 + 1 / 2.0)))
    assert torch.allclose(torch.diagonal(K), torch.ones(3, dtype=torch.float64))
    rng = np.random.default_rng(0)
    feats = torch.as_tensor(SPACE.features([SPACE.sample(rng) for _ in range(40)]))
    k2 = OverlapKernel(ard_num_dims=feats.shape[1]).double()
    assert torch.linalg.eigvalsh(k2(feats, feats).to_dense()).min() > -1e-9


def test_gp_fits_and_is_deterministic():
    rng = np.random.default_rng(1)
    X = [SPACE.sample(rng) for _ in range(25)]
    y = np.array([sum(c) for c in X], dtype=float)
    g1 = fit_gp(SPACE.features(X), y)
    g2 = fit_gp(SPACE.features(X), y)
    mu1, sd1 = g1.predict(SPACE.features(X))
    mu2, _ = g2.predict(SPACE.features(X))
    assert np.array_equal(mu1, mu2)
    # an additive target is easy for the overlap kernel: small training error, small sd
    assert np.abs(mu1 - y).max() < 0.5 * y.std()
    Xn = [SPACE.sample(rng) for _ in range(10)]
    _, sdn = g1.predict(SPACE.features(Xn))
    assert sd1.mean() < sdn.mean()


def test_beta_schedule_srinivas_theorem1():
    # Srinivas et al. 2010 Thm 1: beta_t = 2 log(|D| t^2 pi^2 / (6 delta))
    for D, t, d in [(27, 1, 0.1), (15625, 10, 0.05), (10 ** 9, 50, 0.1)]:
        want = 2 * math.log(D * t ** 2 * math.pi ** 2 / (6 * d))
        assert beta_t(t, D, schedule="srinivas", delta=d) == pytest.approx(want)
        assert beta_t(t, D, schedule="scaled", delta=d, scale=0.2) == pytest.approx(0.2 * want)
    assert beta_t(7, 100, schedule="constant", scale=3.0) == 3.0
    assert beta_t(2, 100) < beta_t(3, 100)  # grows with t
    with pytest.raises(ValueError, match="unknown beta schedule"):
        beta_t(1, 10, schedule="ei")


def test_ucb_formula():
    mu, sd = np.array([1.0, 2.0, 0.5]), np.array([0.1, 1.0, 0.0])
    assert ucb(mu, sd, 4.0).tolist() == pytest.approx([-1.0 + 0.2, -2.0 + 2.0, -0.5])


def _fitted():
    rng = np.random.default_rng(3)
    X = [SPACE.sample(rng) for _ in range(20)]
    y = np.array([float(c[0] != 2) + 0.5 * float(c[3] != 4) for c in X])
    return X, y, fit_gp(SPACE.features(X), y)


def test_select_batch_first_pick_is_ucb_argmax_and_no_duplicates():
    X, y, gp = _fitted()
    pool = candidate_pool(SPACE, list(zip(X, y)), np.random.default_rng(0), exclude=set(X))
    assert len(pool) == len(set(pool)) and not set(pool) & set(X)
    beta = 2.0
    mu, sd = gp.predict(SPACE.features(pool))
    batch = select_batch(gp, SPACE, pool, 6, beta)
    assert batch[0] == pool[int(np.argmax(ucb(mu, sd, beta)))]
    assert len(batch) == 6 and len(set(batch)) == 6 and set(batch) <= set(pool)


def test_kriging_believer_spreads_the_batch():
    X, y, gp = _fitted()
    # a = best point; b = a with one level changed (close); c = a different, far point
    base = list(min(zip(X, y), key=lambda t: t[1])[0])
    rng = np.random.default_rng(5)
    pool = [SPACE.mutate(tuple(base), rng, 1) for _ in range(200)]
    pool += [SPACE.sample(rng) for _ in range(200)]
    pool = list(dict.fromkeys(p for p in pool if p not in set(X)))
    beta = 9.0
    mu, sd = gp.predict(SPACE.features(pool))
    naive = [pool[i] for i in np.argsort(-ucb(mu, sd, beta), kind="stable")[:4]]
    batch = select_batch(gp, SPACE, pool, 4, beta)
    assert batch[0] == naive[0]
    # after believing the first pick, its sd collapses: sd there is ~ noise level
    fant = gp.believe(SPACE.features([batch[0]]), gp.predict(SPACE.features([batch[0]]))[0])
    assert fant.predict(SPACE.features([batch[0]]))[1][0] < 0.5 * sd[pool.index(batch[0])]
    # kriging believer re-ranks: the batch is not simply the naive top 4
    assert batch != naive
    # and the later picks are on average farther (Hamming) from the first pick
    dist = lambda a, b: sum(u != v for u, v in zip(a, b))  # noqa: E731
    assert np.mean([dist(batch[0], b) for b in batch[1:]]) >= \
        np.mean([dist(naive[0], b) for b in naive[1:]])


def test_select_batch_respects_accept():
    X, y, gp = _fitted()
    pool = candidate_pool(SPACE, list(zip(X, y)), np.random.default_rng(0), exclude=set(X))
    banned = set(select_batch(gp, SPACE, pool, 3, 2.0))
    batch = select_batch(gp, SPACE, pool, 3, 2.0, accept=lambda c: c not in banned)
    assert len(batch) == 3 and not set(batch) & banned
