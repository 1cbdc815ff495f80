"""Memory estimates from shapes (docs/frontends.md, "Validation and limits")."""

import math

from snnc.compiler.core.ir import Node
from snnc.compiler.core.limits import _sizes, forward_estimate
from snnc.compiler.text import parse

NET = """graph g(%x: f32[1,2,4,4]) snn {timesteps=2} {
  %conv = conv2d(%x) {in=2, out=3, k=1} : f32[1,3,4,4]
  %bn = bntt(%conv) {eps=1e-05, timesteps=2} : f32[1,3,4,4]
  %lif = lif(%bn) {leak=0.9, vth=1.0, reset=subtract} : f32[1,3,4,4]
  %pool = avgpool(%lif) {k=4} : f32[1,3,1,1]
  return %pool
}
"""


def test_forward_estimate_counts_every_node_once_per_shape_seen():
    """Nodes that share a shape (a layer's conv, norm and lif) are counted from one product
    each, with the same total and the same largest node as one product per node."""
    g = parse(NET)
    per = 4 * 2 * 3
    want = per * sum(math.prod(n.shape[1:]) for n in g.nodes)
    assert forward_estimate(g, 2, 3) == (want, "conv")  # structure only: no parameter bytes
    nodes = [Node("a", "relu", shape=(1, 3.0, 2)), Node("b", "relu", shape=(1, 3, 2)),
             Node("c", "relu", shape=[1, 5, 2]), Node("d", "relu", shape=[1, 5, 2])]
    assert _sizes(nodes) == [math.prod(map(int, n.shape[1:])) for n in nodes] == [6, 6, 10, 10]


NET2 = """graph h(%x: f32[1,2,4,4]) snn {timesteps=2} {
  %c1 = conv2d(%x) {in=2, out=3, k=1} : f32[1,3,4,4]
  %l1 = lif(%c1) {leak=0.9, vth=1.0, reset=subtract} : f32[1,3,4,4]
  %c2 = conv2d(%l1) {in=3, out=3, k=1} : f32[1,3,4,4]
  %l2 = lif(%c2) {leak=0.9, vth=1.0, reset=subtract} : f32[1,3,4,4]
  %c3 = conv2d(%l2) {in=3, out=8, k=3, stride=(2,2), pad=(1,1,1,1)} : f32[1,8,2,2]
  %l3 = lif(%c3) {leak=0.9, vth=1.0, reset=subtract} : f32[1,8,2,2]
  %f = flatten(%l3) : f32[1,32]
  %fc = linear(%f) {in=32, out=5} : f32[1,5]
  return %fc
}
"""


def test_cost_estimate_equals_one_product_per_read():
    """cost_estimate's per-shape products (each distinct shape once) give what one product
    per node and read gives: the map bytes summed over weighted nodes plus the largest
    layer's transient maps, and that layer's name."""
    from snnc.compiler.core.limits import cost_estimate

    for net in (NET, NET2):
        g = parse(net)
        maps, worst, node = 0, 0, None
        for n in g.nodes:
            if n.op in ("conv2d", "linear"):
                src = g.node(g.inputs_of(n.name)[0].value_src).shape
                maps += 8 * (math.prod(src[2:]) if len(src) == 4 else 1)
                here = 16 * math.prod(src[1:]) + 16 * math.prod(n.shape[1:])
                if here > worst:
                    worst, node = here, n.name
        assert cost_estimate(g) == (maps + worst, node)
    assert cost_estimate(parse(NET2))[1] == "c2"  # 3x4x4 in and out
