"""Search space and encoding: paper 1 eq. 1 matrices, per-edge kinds/fractions, round trips."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.search.space import (ASC, DSC, BlockChoice, BlockSpace, SearchSpace, SearchSpaceError,
                               max_skips, writable_entries)


def spaces():
    """Small random spaces: 1-3 blocks of depth 1-5 with random kinds/fractions."""
    block = st.builds(
        BlockSpace,
        depth=st.integers(1, 5),
        kinds=st.lists(st.sampled_from(["S2S", "S2M", "V2V"]), min_size=1, max_size=3,
                       unique=True).map(tuple),
        fractions=st.lists(st.sampled_from([0.25, 0.5, 0.75, 1.0]), min_size=1, max_size=4,
                           unique=True).map(tuple))
    return st.lists(block, min_size=1, max_size=3).filter(
        lambda bs: sum(len(b.entries) for b in bs) > 0).map(lambda bs: SearchSpace(tuple(bs)))


def test_writable_entries_match_paper1_counts():
    # paper 1 sec. III-A: in a 4-layer block layer 2 can receive 1 skip, layer 4 up to 3
    ent = writable_entries(4)
    into = {j: sum(1 for (_, jj) in ent if jj == j) for j in range(6)}
    assert into[2] == 1 and into[3] == 2 and into[4] == 3 and into[5] == 4
    assert all(j >= i + 2 for i, j in ent)
    assert len(ent) == 10


@settings(max_examples=60, deadline=None)
@given(spaces(), st.integers(0, 2 ** 31))
def test_levels_round_trip(space, seed):
    rng = np.random.default_rng(seed)
    c = space.sample(rng)
    dec = space.decode(c)
    assert space.encode(dec) == c
    for b, ch in zip(space.blocks, dec):
        m = ch.matrix
        assert m.shape == (b.depth + 2, b.depth + 2)
        assert set(np.unique(m)) <= {0, 1, 2}
        assert not np.any(np.tril(m, 1))  # main path and backward entries never written
        assert set(ch.kinds) == {tuple(ij) for ij in np.argwhere(m == ASC).tolist()}
        assert set(ch.fractions) == {tuple(ij) for ij in np.argwhere(m == DSC).tolist()}


@settings(max_examples=40, deadline=None)
@given(spaces(), st.integers(0, 2 ** 31))
def test_matrix_round_trip(space, seed):
    # decode(encode(choice)) == choice for choices built directly as matrices
    rng = np.random.default_rng(seed)
    choices = []
    for b in space.blocks:
        m = np.zeros((b.depth + 2,) * 2, dtype=np.int64)
        kinds, fracs = {}, {}
        for i, j in b.entries:
            v = int(rng.integers(0, 3))
            m[i, j] = v
            if v == ASC:
                kinds[(i, j)] = b.kinds[int(rng.integers(len(b.kinds)))]
            elif v == DSC:
                fracs[(i, j)] = b.fractions[int(rng.integers(len(b.fractions)))]
        choices.append(BlockChoice(m, kinds, fracs))
    assert space.decode(space.encode(choices)) == choices


def test_features_type_then_level():
    sp = SearchSpace((BlockSpace(2, kinds=("S2S", "V2V"), fractions=(0.5, 1.0)),))
    # entries (0,2), (0,3), (1,3); levels: 0 none, 1 DSC@.5, 2 DSC@1, 3 ASC/S2S, 4 ASC/V2V
    f = sp.features([(0, 2, 4)])
    assert f.tolist() == [[0, 1, 2, 0, 2, 4]]
    assert sp.describe((0, 2, 4)) == "b0: 0->3 DSC@1, 1->3 ASC/V2V"


def test_resnet_basic_block_encoding():
    # ResNet's basic block: a_{0,3} = 2 (docs/design.md)
    sp = SearchSpace((BlockSpace(2, kinds=("S2S",), fractions=(1.0,)),))
    m = np.zeros((4, 4), dtype=np.int64)
    m[0, 3] = ASC
    lv = sp.encode([BlockChoice(m, {(0, 3): "S2S"}, {})])
    assert lv == (0, 2, 0)


def test_mutate_changes_exactly_n_entries():
    sp = SearchSpace((BlockSpace(4), BlockSpace(3)))
    rng = np.random.default_rng(0)
    for n in (1, 2, 3):
        for _ in range(50):
            c = sp.sample(rng)
            m = sp.mutate(c, rng, n_changes=n)
            assert sum(a != b for a, b in zip(c, m)) == n
            assert all(0 <= v < lv for v, lv in zip(m, sp.n_levels))


def test_size_and_constraint():
    sp = SearchSpace((BlockSpace(2, kinds=("S2S",), fractions=(1.0,)),),
                     constraints=(max_skips(1),))
    assert sp.size == 27
    assert sp.feasible((0, 2, 0)) and not sp.feasible((1, 2, 0))


@pytest.mark.parametrize("bad, match", [
    (lambda: BlockSpace(0), "depth 0"),
    (lambda: BlockSpace(2, kinds=("S2X",)), "unknown residual kind"),
    (lambda: BlockSpace(2, fractions=(0.0,)), r"must lie in \(0, 1\]"),
    (lambda: BlockSpace(2, entries=((0, 1),)), r"entry \(0, 1\) is not writable"),
])
def test_space_errors(bad, match):
    with pytest.raises(SearchSpaceError, match=match):
        bad()


def test_encode_rejects_main_path_and_unknown_choice():
    sp = SearchSpace((BlockSpace(2, kinds=("S2S",), fractions=(0.5,), name="layer1"),))
    m = np.zeros((4, 4), dtype=np.int64)
    m[0, 1] = ASC
    with pytest.raises(SearchSpaceError, match=r"layer1.*a\[0,1\].*not a writable"):
        sp.encode([BlockChoice(m)])
    m = np.zeros((4, 4), dtype=np.int64)
    m[0, 2] = DSC
    with pytest.raises(SearchSpaceError, match="DSC fraction of .0,2. is 1.0"):
        sp.encode([BlockChoice(m, {}, {(0, 2): 1.0})])
