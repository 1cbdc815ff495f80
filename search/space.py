"""The search space: block adjacency matrices with per-edge choices, and their encoding.

A block with d layers has vertices 0 (input), 1..d (layers), d+1 (output); its matrix is
(d+2) x (d+2), a_ij in {0 none, 1 DSC, 2 ASC} (paper 1 eq. 1), writable only for j >= i + 2
(docs/design.md "Blocks and adjacency matrices"). Beside the matrix each DSC edge has a channel
fraction (paper 1's generalised DSC) and each ASC edge a spiking residual kind (S2M / S2S / V2V,
paper 2), both chosen by the search.

Encoding. Every writable entry e of every block is one categorical variable whose *level* is

    0                     no edge
    1 .. |F|              DSC with fraction F[level - 1]
    |F| + 1 .. |F| + |K|  ASC with residual kind K[level - |F| - 1]

so a candidate is a tuple of small integers (hashable, JSON-friendly, the journal's key). The GP
sees two columns per entry (:meth:`SearchSpace.features`): the edge *type* (0/1/2) and the level
itself, so two candidates that differ only in a DSC fraction or an ASC kind are closer than two
that differ in the type of edge (see kernel.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from snnc.compiler import SnncError

NONE, DSC, ASC = 0, 1, 2
ALL_KINDS = ("S2S", "S2M", "V2V")
DEFAULT_FRACTIONS = (0.25, 0.5, 1.0)

Levels = tuple[int, ...]


class SearchSpaceError(SnncError):
    """The search space cannot be built as asked (no writable entry, empty choice set, ...)."""


def writable_entries(depth: int) -> tuple[tuple[int, int], ...]:
    """Entries (i, j) of a depth-`depth` block the search may write: j >= i + 2, row-major."""
    n = depth + 2
    return tuple((i, j) for i in range(n) for j in range(i + 2, n))


@dataclass(frozen=True)
class BlockChoice:
    """One block's decoded choice: the matrix and the per-edge attributes beside it.

    `kinds` maps each ASC entry (i, j) to its residual kind, `fractions` each DSC entry to its
    channel fraction. Entries with j = i + 1 (the implicit main path) are always 0.
    """

    matrix: np.ndarray
    kinds: dict[tuple[int, int], str] = field(default_factory=dict)
    fractions: dict[tuple[int, int], float] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BlockChoice):
            return NotImplemented
        return (np.array_equal(self.matrix, other.matrix) and self.kinds == other.kinds
                and self.fractions == other.fractions)

    def n_skips(self) -> int:
        """Number of skip edges in this block."""
        return int(np.count_nonzero(self.matrix))


@dataclass(frozen=True)
class BlockSpace:
    """The choices of one block: its depth, writable entries, allowed kinds and fractions.

    `entries` defaults to every (i, j) with j >= i + 2; a caller may restrict it (e.g. to entries
    the block API can realise). `name` is for reports (e.g. the block's first layer).
    """

    depth: int
    kinds: tuple[str, ...] = ALL_KINDS
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    entries: tuple[tuple[int, int], ...] = ()
    name: str = ""

    def __post_init__(self):
        if self.depth < 1:
            raise SearchSpaceError(f"block '{self.name}': depth {self.depth} < 1; a block needs "
                                   "at least one layer")
        if not self.entries:
            object.__setattr__(self, "entries", writable_entries(self.depth))
        for i, j in self.entries:
            if not (0 <= i and j <= self.depth + 1 and j >= i + 2):
                raise SearchSpaceError(f"block '{self.name}': entry ({i}, {j}) is not writable "
                                       f"(need j >= i + 2 and j <= {self.depth + 1})")
        bad = [k for k in self.kinds if k not in ALL_KINDS]
        if bad:
            raise SearchSpaceError(f"block '{self.name}': unknown residual kind(s) {bad}; use "
                                   f"some of {', '.join(ALL_KINDS)}")
        if any(not (0.0 < f <= 1.0) for f in self.fractions):
            raise SearchSpaceError(f"block '{self.name}': DSC fractions {self.fractions} must "
                                   "lie in (0, 1]")

    @property
    def n_levels(self) -> int:
        """Levels of each entry: none, one per DSC fraction, one per ASC kind."""
        return 1 + len(self.fractions) + len(self.kinds)

    def edge_type(self, level: int) -> int:
        """0 none, 1 DSC, 2 ASC for an entry at `level`."""
        if level == 0:
            return NONE
        return DSC if level <= len(self.fractions) else ASC

    def decode(self, levels: Sequence[int]) -> BlockChoice:
        """The block's matrix, kinds and fractions from its entries' levels."""
        n = self.depth + 2
        m = np.zeros((n, n), dtype=np.int64)
        kinds, fracs = {}, {}
        for (i, j), lv in zip(self.entries, levels, strict=True):
            t = self.edge_type(int(lv))
            m[i, j] = t
            if t == DSC:
                fracs[(i, j)] = float(self.fractions[lv - 1])
            elif t == ASC:
                kinds[(i, j)] = self.kinds[lv - 1 - len(self.fractions)]
        return BlockChoice(m, kinds, fracs)

    def encode(self, choice: BlockChoice) -> Levels:
        """Levels from a decoded choice; raises when the choice is outside this block's space."""
        m = np.asarray(choice.matrix)
        n = self.depth + 2
        if m.shape != (n, n):
            raise SearchSpaceError(f"block '{self.name}': matrix shape {m.shape}, expected "
                                   f"({n}, {n})")
        writable = set(self.entries)
        out = []
        for i in range(n):
            for j in range(n):
                v = int(m[i, j])
                if v not in (NONE, DSC, ASC):
                    raise SearchSpaceError(f"block '{self.name}': a[{i},{j}] = {v}; entries "
                                           "are 0 (none), 1 (DSC) or 2 (ASC)")
                if v and (i, j) not in writable:
                    raise SearchSpaceError(f"block '{self.name}': a[{i},{j}] = {v} is not a "
                                           "writable entry of this space")
        for i, j in self.entries:
            v = int(m[i, j])
            if v == NONE:
                out.append(0)
            elif v == DSC:
                f = choice.fractions.get((i, j), 1.0)
                out.append(1 + _index_of(self.fractions, f, f"DSC fraction of ({i},{j})"))
            else:
                k = choice.kinds.get((i, j), self.kinds[0])
                pos = _index_of(self.kinds, k, f"ASC kind of ({i},{j})")
                out.append(1 + len(self.fractions) + pos)
        return tuple(out)


def _index_of(options: Sequence, value, what: str) -> int:
    for pos, opt in enumerate(options):
        if (isinstance(opt, float) and math.isclose(opt, float(value))) or opt == value:
            return pos
    raise SearchSpaceError(f"{what} is {value!r}, not one of the space's choices {tuple(options)}")


Constraint = Callable[[list[BlockChoice]], bool]


@dataclass(frozen=True)
class SearchSpace:
    """All blocks' choices, flattened into one tuple of levels per candidate.

    `constraints` are cheap predicates on the decoded blocks (e.g. at most s skips); expensive
    ones (energy, cores) are checked on the built graph by the search loop. `allowed` lists,
    per variable, the levels that can be realised (e.g. no V2V out of a max-pool: the block API
    refuses it); empty means every level everywhere.
    """

    blocks: tuple[BlockSpace, ...]
    constraints: tuple[Constraint, ...] = ()
    allowed: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self):
        if not self.blocks or self.n_vars == 0:
            raise SearchSpaceError("the search space has no writable entry: the model has no "
                                   "block with two or more layers; pick a deeper model")
        if self.allowed:
            if len(self.allowed) != self.n_vars or any(
                    not a or 0 not in a or max(a) >= n
                    for a, n in zip(self.allowed, self.n_levels)):
                raise SearchSpaceError("`allowed` needs, for every variable, a non-empty list "
                                       "of its levels that includes 0 (no edge)")

    def choices(self, var: int) -> tuple[int, ...]:
        """The levels variable `var` may take."""
        return self.allowed[var] if self.allowed else tuple(range(int(self.n_levels[var])))

    @property
    def n_vars(self) -> int:
        """Number of categorical variables (writable entries over all blocks)."""
        return sum(len(b.entries) for b in self.blocks)

    @property
    def n_levels(self) -> np.ndarray:
        """Levels per variable, in order."""
        return np.array([b.n_levels for b in self.blocks for _ in b.entries], dtype=np.int64)

    @property
    def size(self) -> int:
        """Number of candidates before constraints (product of allowed levels)."""
        return int(np.prod([len(self.choices(v)) for v in range(self.n_vars)], dtype=object))

    def split(self, levels: Sequence[int]) -> list[Levels]:
        """Per-block slices of a candidate."""
        if len(levels) != self.n_vars:
            raise SearchSpaceError(f"candidate has {len(levels)} entries; this space has "
                                   f"{self.n_vars}")
        out, pos = [], 0
        for b in self.blocks:
            out.append(tuple(int(v) for v in levels[pos:pos + len(b.entries)]))
            pos += len(b.entries)
        return out

    def decode(self, levels: Sequence[int]) -> list[BlockChoice]:
        """Each block's matrix, kinds and fractions."""
        return [b.decode(lv) for b, lv in zip(self.blocks, self.split(levels))]

    def encode(self, choices: Sequence[BlockChoice]) -> Levels:
        """The candidate (levels) of decoded block choices; inverse of :meth:`decode`."""
        if len(choices) != len(self.blocks):
            raise SearchSpaceError(f"{len(choices)} block choices for {len(self.blocks)} blocks")
        return tuple(v for b, c in zip(self.blocks, choices) for v in b.encode(c))

    def features(self, cands: Iterable[Sequence[int]]) -> np.ndarray:
        """GP inputs [n, 2 * n_vars]: the edge type of every entry, then its level."""
        lv = np.asarray(list(cands), dtype=np.int64).reshape(-1, self.n_vars)
        nf = np.array([len(b.fractions) for b in self.blocks for _ in b.entries])
        typ = np.where(lv == 0, NONE, np.where(lv <= nf, DSC, ASC))
        return np.concatenate([typ, lv], axis=1).astype(np.float64)

    def feasible(self, levels: Sequence[int]) -> bool:
        """True when every level is allowed and every cheap constraint accepts the candidate."""
        if self.allowed and any(lv not in a for lv, a in zip(levels, self.allowed)):
            return False
        if not self.constraints:
            return True
        dec = self.decode(levels)
        return all(c(dec) for c in self.constraints)

    def sample(self, rng: np.random.Generator) -> Levels:
        """A candidate drawn uniformly over allowed levels (paper 1's random search)."""
        if not self.allowed:
            return tuple(int(x) for x in rng.integers(0, self.n_levels))
        return tuple(int(a[int(i)]) for a, i in
                     zip(self.allowed, rng.integers(0, [len(a) for a in self.allowed])))

    def mutate(self, levels: Sequence[int], rng: np.random.Generator,
               n_changes: int = 1) -> Levels:
        """`levels` with `n_changes` distinct entries moved to a different allowed level."""
        out = list(levels)
        free = [v for v in range(self.n_vars) if len(self.choices(v)) > 1]
        for v in rng.choice(free, size=min(n_changes, len(free)), replace=False):
            other = [lv for lv in self.choices(int(v)) if lv != out[v]]
            out[v] = int(other[int(rng.integers(0, len(other)))])
        return tuple(out)

    def describe(self, levels: Sequence[int]) -> str:
        """Human-readable edges: `b0: 0->3 ASC/S2S, 1->3 DSC@0.5` (empty blocks omitted)."""
        parts = []
        for bi, (b, c) in enumerate(zip(self.blocks, self.decode(levels))):
            edges = []
            for i, j in b.entries:
                if c.matrix[i, j] == ASC:
                    edges.append(f"{i}->{j} ASC/{c.kinds[(i, j)]}")
                elif c.matrix[i, j] == DSC:
                    edges.append(f"{i}->{j} DSC@{c.fractions[(i, j)]:g}")
            if edges:
                parts.append(f"b{bi}: " + ", ".join(edges))
        return "; ".join(parts) or "(no skips)"


def max_skips(limit: int) -> Constraint:
    """A constraint: at most `limit` skip edges in every block."""
    def check(choices: list[BlockChoice]) -> bool:
        return all(c.n_skips() <= limit for c in choices)
    check.__doc__ = f"at most {limit} skip edges per block"
    return check
