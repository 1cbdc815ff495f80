"""readout: the classifier's currents go to a non-spiking integrator (paper 2 sec. 3.3)."""

from __future__ import annotations

from snnc.compiler.core.conditions import form_is, outputs_are
from snnc.compiler.core.errors import UnsupportedOp
from snnc.compiler.core.ir import EMPTY, Form, Graph, Node
from snnc.compiler.core.passmanager import register_pass
from snnc.passes._common import check_choice, classifier_of, require_snn, rewire_readers

FINAL_LIF = ("remove", "error")
_DONE = ("readout", "vote")


@register_pass("readout", requires=[form_is(Form.SNN)],
               ensures=[outputs_are("readout", "vote")])
def readout(g: Graph, *, final_lif: str = "remove") -> Graph:
    """Put `%<classifier>_readout = readout(...)` on every graph output.

    Requires: SNN form; each output is fed by a classifier (the last linear/conv2d) through
    single-input nodes.
    Guarantees: every output is a readout (or the vote after one); no lif lies between the
    classifier and its readout: the classifier's own activation (a lif made from its relu) is
    removed under final_lif=remove (default; the output layer must not spike, sec. 3.3) or
    refused under final_lif=error. Other nodes after the classifier (dropout, flatten, a norm)
    stay before the readout.
    Implements: paper 2 sec. 3.3 and eq. 19: u_t = u_{t-1} + I_t with no leak and no spikes;
    the output is u_T / T (docs/ir.md "readout").
    Idempotent.
    """
    require_snn(g, "readout")
    check_choice("readout", "final_lif", final_lif, FINAL_LIF)
    todo = [o for o in g.outputs if g.node(o).op not in _DONE]
    if not todo:
        return g
    b = g.edit()
    for out in todo:
        clf, chain = classifier_of(g, out)
        for n in chain:
            if n.op != "lif":
                continue
            if final_lif == "error":
                raise UnsupportedOp(
                    f"graph '{g.name}': node '{n.name}' (op lif) follows the classifier "
                    f"'{clf.name}', but the output layer must not spike (paper 2 sec. 3.3). "
                    f"Remove the final ReLU from the model or run readout with "
                    f"final_lif=remove.")
            src = b.inputs_of(n.name)[0].src
            rewire_readers(b, n.name, src, skip=set())
            b.remove(n.name)
        tail = b.outputs[g.outputs.index(out)]
        name = b.fresh(f"{clf.name}_readout")
        b.add(Node(name, "readout", EMPTY, b.nodes[tail].shape), [tail])
        b.outputs = [name if o == tail else o for o in b.outputs]
    return b.build()
