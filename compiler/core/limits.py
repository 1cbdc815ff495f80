"""Memory limit: estimate what a compile, cost report or forward needs, refuse above a limit
(docs/frontends.md, "Validation and limits").

The limit is a process-wide setting, separate from the compile options (it decides whether
snnc runs, never what it produces): by default half of the machine's memory (MemTotal, or less
under a cgroup allowance or an address-space rlimit), not of what happens to be free when the
command starts, so that a busy machine does not refuse a model an idle one accepts;
`snnc --max-memory 4G`, the environment variable ``SNNC_MAX_MEMORY`` or
`set_memory_limit("4G")` change it (``none`` turns the check off). Estimates come from
shapes, parameter counts and T before anything is allocated; `require` raises ResourceLimit
(exit 2) naming what and which node.
"""

from __future__ import annotations

import math
import operator
import os
import re

from snnc.compiler.core.errors import ResourceLimit

_limit: int | None = None  # bytes; None = not decided yet (the default is computed lazily)
_OFF = 1 << 62
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def fmt(n: float) -> str:
    """Bytes in the largest binary unit under which they stay >= 1 (3.0 GiB, 512 MiB)."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def parse_size(text: str | int) -> int:
    """'4G', '512MiB', '1.5g', '2000000000' -> bytes; 'none'/'off' -> no limit."""
    if isinstance(text, int):
        return text
    s = str(text).strip().lower()
    if s in ("none", "off", "unlimited"):
        return _OFF
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", s)
    if not m:
        raise ResourceLimit(f"--max-memory {text!r}: give a size such as 4G, 512M, 1.5GiB or "
                            f"a number of bytes (or 'none').")
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if value < 1:
        raise ResourceLimit(f"--max-memory {text!r} must be positive.")
    return int(value)


def total_memory() -> int:
    """Bytes this process could use on an idle machine: the machine's memory (MemTotal),
    capped by a cgroup v2 memory.max allowance and by the process's address-space limit
    (RLIMIT_AS, less what is mapped). Not what is free now: the default limit must not depend
    on what other jobs happen to hold when the command starts (docs/frontends.md)."""
    total = _meminfo("MemTotal")
    if total is None:
        try:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            total = 16 << 30
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            cap = f.read().strip()
        if cap != "max":
            total = min(total, int(cap))
    except (OSError, ValueError):
        pass
    try:  # an address-space cap (ulimit -v, resource.setrlimit) bounds what we can allocate
        import resource

        cap = resource.getrlimit(resource.RLIMIT_AS)[0]
        if cap != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            total = min(total, max(0, cap - used))
    except (ImportError, OSError, ValueError):
        pass
    return total


def _meminfo(key: str) -> int | None:
    """A /proc/meminfo field in bytes, or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def set_memory_limit(value: str | int | None) -> None:
    """Set the limit (bytes, a size string, 'none'); None goes back to the default, half of
    `total_memory()` (the CLI calls this when a command starts)."""
    global _limit
    if value is None:
        env = os.environ.get("SNNC_MAX_MEMORY")
        _limit = parse_size(env) if env else total_memory() // 2
    else:
        _limit = parse_size(value)


def memory_limit() -> int:
    """The limit in bytes (the default is measured at the first call)."""
    if _limit is None:
        set_memory_limit(None)
    return _limit  # type: ignore[return-value]


def require(nbytes: int, what: str, label: str, node: str | None = None) -> None:
    """Refuse (ResourceLimit) when `nbytes` exceed the limit."""
    limit = memory_limit()
    if nbytes <= limit:
        return
    at = f" (largest at node '{node}')" if node else ""
    raise ResourceLimit(f"{label}: {what} needs about {fmt(nbytes)}{at}, above the memory "
                        f"limit of {fmt(limit)}. Use a smaller input shape, fewer time steps "
                        f"or a smaller model, or raise the limit with --max-memory (e.g. "
                        f"`snnc --max-memory {max(1, math.ceil(nbytes / (1 << 30)))}G ...`).")


# -- estimates (bytes) from a graph's shapes, parameters and T --------------------------------
def _numel(shape) -> int:
    return math.prod(map(int, shape))


def _param_bytes(g) -> int:
    """float32 bytes of `g`'s parameters (4 per element; one `numel` per tensor, summed once:
    densenet121's SNN holds ~900 tensors and each compile asks twice)."""
    return 4 * sum(map(_NUMEL, (g.params or {}).values()))


_NUMEL = operator.methodcaller("numel")


def cost_estimate(g) -> tuple[int, str | None]:
    """What the cost model needs for `g`: an int64 fan-out map per input position of each
    conv/linear (H x W, cached across nodes) and C x H x W maps built transiently for the
    largest layer (docs/costmodel.md)."""
    worst, worst_node, maps = 0, None, 0
    per: dict[tuple, tuple[int, int]] = {}  # a shape's (map bytes, elements per sample)
    for n in g.nodes:
        if n.op in ("conv2d", "linear"):
            src = _per_shape(g.node(g.inputs_of(n.name)[0].value_src).shape, per,
                             _map_and_size)
            out = _per_shape(n.shape, per, _map_and_size)
            maps += src[0]
            here = 16 * src[1] + 16 * out[1]
            if here > worst:
                worst, worst_node = here, n.name
    return maps + worst, worst_node


def _map_and_size(shape) -> tuple[int, int]:
    """(bytes of an int64 fan-out map over `shape`'s positions, elements of one sample),
    asked once per distinct shape through `_per_shape`: densenet121's 121 weighted nodes
    read and write 71 distinct shapes (242 look-ups), and every compile and cost report
    asks."""
    return 8 * (_numel(shape[2:]) if len(shape) == 4 else 1), _numel(shape[1:])


def _per_shape(shape, memo: dict, fn):
    """`fn(shape)`, kept in `memo` per distinct shape (a shape given as a list, which cannot
    be a key, is computed each time)."""
    if type(shape) is not tuple:
        return fn(shape)
    known = memo.get(shape)
    if known is None:
        known = memo[shape] = fn(shape)
    return known


def compile_estimate(g, timesteps: int) -> tuple[int, str | None]:
    """What `compile` (passes, module, cost report, save) needs for ANN-form graph `g`:
    parameters are held about five times (ANN and SNN graphs, module, serialised buffers);
    batch norm through time adds 4 x T x C floats per batchnorm node, also held five times;
    plus the cost model's maps (`cost_estimate`)."""
    bntt, big, big_node = 0, 0, None
    for n in g.nodes:
        if n.op == "batchnorm":
            here = 16 * timesteps * int(n.shape[1])
            bntt += here
            if here > big:
                big, big_node = here, n.name
    cost, node = cost_estimate(g)
    params = 5 * (_param_bytes(g) + bntt)
    return params + cost, (node if cost >= params else big_node or node)


def forward_estimate(g, timesteps: int, batch: int = 1) -> tuple[int, str | None]:
    """What one forward of the SNN module needs: every node's output for all T steps (the
    module keeps them for backpropagation through time), float32, plus the parameters."""
    per = 4 * timesteps * batch  # bytes per element of one sample's output
    sizes = _sizes(g.nodes)
    big = max(sizes, default=0)  # the first node of the largest output, if it holds any bytes
    worst_node = g.nodes[sizes.index(big)].name if per > 0 and big > 0 else None
    return _param_bytes(g) + per * sum(sizes), worst_node


def _sizes(nodes) -> list[int]:
    """Elements of one sample's output of each node (`_numel(shape[1:])`), counted once per
    distinct shape: an SNN layer's conv, norm and lif share one (densenet121: 73 shapes for
    491 nodes, and every compile asks)."""
    memo: dict[tuple, int] = {}
    return [_per_shape(n.shape, memo, _sample_size) for n in nodes]


def _sample_size(shape) -> int:
    return _numel(shape[1:])


def check_compile(g, timesteps: int, label: str) -> None:
    """Refuse compiling `g` with T = `timesteps` when the estimate exceeds the limit."""
    need, node = compile_estimate(g, timesteps)
    require(need, f"compiling with T={timesteps}", label, node)


def check_cost(g, label: str) -> None:
    """Refuse a cost report of `g` whose maps exceed the limit."""
    need, node = cost_estimate(g)
    require(need, "the cost report", label, node)


def check_forward(g, timesteps: int, batch: int, label: str) -> None:
    """Refuse a forward of `g` on `batch` samples over `timesteps` steps above the limit."""
    need, node = forward_estimate(g, timesteps, batch)
    require(need, f"a forward pass (batch {batch}, T={timesteps})", label, node)
