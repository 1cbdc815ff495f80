"""spike-linear-outputs: a neuron after every weighted layer whose current would otherwise reach
another synapse directly (binary-only targets)."""

from __future__ import annotations

from dataclasses import replace

from snnc.compiler.core.conditions import Condition, form_is
from snnc.compiler.core.ir import Attrs, EdgeKind, Form, Graph, Node
from snnc.compiler.core.passmanager import register_pass
from snnc.passes._common import require_snn

NORMS = frozenset({"batchnorm", "bntt"})
SYNAPTIC_READERS = frozenset({"conv2d", "linear", "concat", "avgpool", "adaptive_avgpool",
                              "maxpool", "flatten", "reshape"})


def _end_of_layer(g: Graph, name: str) -> str:
    """The last node of the layer starting at weighted node `name` (its norm, if any)."""
    users = g.users(name)
    while len(users) == 1 and users[0].kind is EdgeKind.DATA \
            and g.node(users[0].dst).op in NORMS and users[0].value_src == name:
        name = users[0].dst
        users = g.users(name)
    return name


def _no_current_into_synapse(g: Graph) -> str | None:
    if not g.by_op("lif"):
        return None  # the pass has no neuron to copy and leaves the graph alone
    for n in g.by_op("conv2d", "linear"):
        end = _end_of_layer(g, n.name)
        for e in g.users(end):
            if e.kind is EdgeKind.DATA and e.value_src == end \
                    and g.node(e.dst).op in SYNAPTIC_READERS:
                return f"'{end}' feeds {g.node(e.dst).op} '{e.dst}' a current"
    return None


@register_pass("spike-linear-outputs", requires=[form_is(Form.SNN)],
               ensures=[Condition("no weighted layer's current reaches another synapse",
                                  _no_current_into_synapse)])
def spike_linear_outputs(g: Graph) -> Graph:
    """Put a lif after each weighted layer (conv2d/linear + its norm) whose output reaches
    another synapse with no neuron in between, e.g. mobilenetv2's linear bottleneck without a
    skip (a 1x1 projection conv feeding the next block's expansion conv).

    Requires: SNN form (relu-to-lif ran, so that there is a lif to copy the neuron from).
    Guarantees: no DATA edge carries a weighted layer's current into a conv2d, linear, pool,
    flatten, reshape or concat; when one did, every reader of that layer (skip edges too, whose
    source becomes the new neuron) reads the new lif instead; the new lif is named `<end>_lif` with the graph's first lif's
    attributes plus inserted="linear-output". Adds (residual sums) are not touched: relu-to-lif's
    unactivated_add and legalize-graded handle them. The classifier (read by a readout or an
    output) is not touched. Used by the pipeline on targets without graded spikes (loihi1,
    truenorth, speck), where such a current cannot be sent; it changes the function (the
    layer's output becomes spikes) -- a documented policy, not an equivalence.
    Implements: no paper equation; the legalisation counterpart of paper 2 sec. 3.2.1's remark
    that non-binary activations need graded spikes or extra synapses.
    """
    require_snn(g, "spike-linear-outputs")
    lifs = g.by_op("lif")
    if not lifs:
        return g
    base = {k: v for k, v in lifs[0].attrs.items() if k != "inserted"}
    b = g.edit()
    changed = False
    for n in g.by_op("conv2d", "linear"):
        end = _end_of_layer(g, n.name)
        synaptic = [e for e in g.users(end) if e.kind is EdgeKind.DATA and e.value_src == end
                    and g.node(e.dst).op in SYNAPTIC_READERS]
        if not synaptic:
            continue
        lif = b.fresh(f"{end}_lif")
        b.add(Node(lif, "lif", Attrs(dict(base, inserted="linear-output")), g.node(end).shape),
              [end])
        # Every reader now sees the spikes, skips included (a skip from this layer becomes a
        # skip from its neuron), so no current of it is left to travel anywhere.
        for e in g.users(end):
            if e.src == end:
                b.replace_edge(e, replace(e, src=lif, payload=None))
        b.outputs = [lif if o == end else o for o in b.outputs]
        changed = True
    return b.build() if changed else g
