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
