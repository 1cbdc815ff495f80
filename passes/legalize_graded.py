"""legalize-graded: for targets with only binary spikes, split graded sums into synapses."""

from __future__ import annotations

from dataclasses import replace

from snnc.compiler.core.conditions import Condition, form_is, has_attrs, no_edges
from snnc.compiler.core.errors import ConstraintViolation, PassFailed
from snnc.compiler.core.ir import EdgeKind, Form, Graph
from snnc.compiler.core.passmanager import register_pass
from snnc.compiler.core.payload import infer_payloads
from snnc.passes._common import require_snn
from snnc.compiler.targets import load_target

_LINEAR = frozenset({"dropout", "identity", "flatten", "reshape", "avgpool", "adaptive_avgpool",
                     "batchnorm", "bntt"})


class _Split:
    """Decompose values into binary spike terms (for synapse inputs) or PSP terms (currents)."""

    def __init__(self, g: Graph, target: str):
        self.g, self.target = g, target
        self.pay = infer_payloads(g)
        self.spk: dict[str, tuple[int, tuple[str, ...]]] = {}
        self.psp: dict[str, tuple[int, tuple[str, ...]]] = {}
        self.s2s: dict = {}

    def _refuse(self, at: str, reader: str, why: str) -> None:
        n = self.g.node(at)
        raise ConstraintViolation(
            f"graph '{self.g.name}': target '{self.target}' has only binary spikes, but node "
            f"'{reader}' receives a graded value from node '{at}' (op {n.op}): {why}")

    def spikes(self, v: str, reader: str) -> tuple[int, tuple[str, ...]]:
        """(copies, sources): the value of `v` = a sum of `copies` binary terms per element."""
        if v in self.spk:
            return self.spk[v]
        n, ins = self.g.node(v), self.g.inputs_of(v)
        if n.op in ("lif", "encoder", "maxpool", "input") and self.pay[v].value == "binary":
            res = (1, (v,))
        elif n.op in _LINEAR or n.op == "concat":
            parts = [self.spikes(e.src, reader) for e in ins]
            copies = max(p[0] for p in parts) if n.op == "concat" else parts[0][0]
            res = (copies, tuple(dict.fromkeys(s for p in parts for s in p[1])))
        elif n.op == "add":
            parts = []
            for e in ins:
                parts.append(self.spikes(e.src, reader))  # eq. 14: W(W'' o) merges weights
                if e.kind is EdgeKind.S2S:
                    self.s2s[e] = "merge-projection" if e.projection else "split"
            res = (sum(p[0] for p in parts), tuple(s for p in parts for s in p[1]))
        elif n.op == "encoder":
            self._refuse(v, reader, "a direct encoder sends the frame itself at every step. "
                                    "Use encoder=poisson or events.")
        elif n.op in ("conv2d", "linear"):
            self._refuse(v, reader, "its current reaches a synapse with no neuron between "
                                    "(a graded residual, e.g. a linear bottleneck). Re-run "
                                    "relu-to-lif with unactivated_add=lif, or pick a target "
                                    "with graded spikes.")
        else:
            self._refuse(v, reader, f"op {n.op} on {self.pay[v].value} values cannot be "
                                    f"split into binary synapses.")
        self.spk[v] = res
        return res

    def currents(self, v: str, reader: str) -> tuple[int, tuple[str, ...]]:
        """(copies, layers): the current `v` = a sum of `copies` synaptic (PSP) terms."""
        if v in self.psp:
            return self.psp[v]
        n, ins = self.g.node(v), self.g.inputs_of(v)
        if n.op in ("conv2d", "linear"):
            res = (1, (v,))  # its own input is checked as a synapse input
        elif n.op == "add":
            parts = [self.currents(e.value_src, reader) for e in ins]
            self.s2s.update({e: "duplicate" for e in ins if e.kind is EdgeKind.S2S})
            res = (sum(p[0] for p in parts), tuple(s for p in parts for s in p[1]))
        elif n.op in _LINEAR or n.op == "concat":
            parts = [self.currents(e.value_src, reader) for e in ins]
            res = (max(p[0] for p in parts), tuple(s for p in parts for s in p[1]))
        else:
            res = (self.spikes(v, reader)[0], (v,))  # spikes straight into a membrane
        self.psp[v] = res
        return res

    def v2v_terms(self, lif: str) -> tuple[str, ...]:
        """Lifs whose input synapses make up the current of `lif` (paper 2 eq. 15, 18)."""
        out = [lif]
        for e in self.g.inputs_of(lif):
            if e.kind is EdgeKind.V2V:
                out.extend(self.v2v_terms(e.src))
        return tuple(out)


def _legalized(g: Graph, options: dict) -> str | None:
    if load_target(options.get("target", "loihi1")).graded_spikes:
        return None
    return has_attrs("legalized")(g)


@register_pass("legalize-graded", requires=[form_is(Form.SNN), no_edges(EdgeKind.ASC)],
               ensures=[Condition("graph attr legalized on a target without graded spikes",
                                  _legalized)])
def legalize_graded(g: Graph, *, target: str = "loihi1") -> Graph:
    """Make an SNN deployable on a target whose spikes are binary (loihi1, truenorth, speck).

    Requires: SNN form, residuals lowered (no ASC edge).
    Guarantees: on a target whose file has neuron.graded_spikes true (generic, loihi2, ...)
    the graph is unchanged.
    Otherwise every graded value that reaches a synapse is rewritten as extra binary synapses
    and recorded (the structure stays; the cost model and backends read the attrs):
      * a weighted layer reading a sum of c spike terms (S2S adds, chained: eq. 12) gets
        synapse_copies=c and spike_sources=(...): its synapses exist c times, one copy per
        binary source; each S2S edge gets legal=split, or legal=merge-projection when a
        projection W'' is merged into the reader's weights (W_l W'' o_{l-n}, eq. 14);
      * a lif whose membrane receives c > 1 synaptic currents (a sum of currents: graded
        residual of a pre-activation net) gets synapse_copies=c and psp_sources=(...), and
        the S2S edges of that sum get legal=duplicate;
      * a V2V edge gets legal=duplicate (or merge-projection), copies=c and terms=(lifs):
        the current r_l is the sum of the input synapses of c layers, (l/n)-1 for a uniform
        chain (eq. 18); each needs a copy into layer l.
    Refuses (ConstraintViolation naming the node) a direct encoder, a current reaching a
    synapse without a neuron between (mobilenetv2's graded bottleneck) and any other graded
    value that is not a sum of spikes. Sets graph attr legalized=<target>.
    Implements: paper 2 eq. 12, 14 (S2S as extra synapses) and 18 (V2V). Idempotent.
    """
    require_snn(g, "legalize-graded")
    if any(e.kind is EdgeKind.ASC for e in g.edges):
        raise PassFailed(f"graph '{g.name}': legalize-graded needs lowered residuals; run "
                         f"'lower-residual' first.")
    if load_target(target).graded_spikes:  # the file of the target legalised for
        return g
    s = _Split(g, target)
    node_attrs: dict[str, dict] = {}
    for n in g.nodes:
        ins = g.inputs_of(n.name)
        if n.op in ("conv2d", "linear"):
            copies, srcs = s.spikes(ins[0].src, n.name)
            if copies > 1:
                node_attrs[n.name] = dict(synapse_copies=copies, spike_sources=srcs)
        elif n.op in ("lif", "readout"):
            copies, srcs = s.currents(ins[0].src, n.name)
            if copies > 1:
                node_attrs[n.name] = dict(synapse_copies=copies, psp_sources=srcs)
    b = g.edit()
    for name, attrs in node_attrs.items():
        b.replace_node(replace(b.nodes[name], attrs=b.nodes[name].attrs.set(**attrs)))
    for e in g.edges:
        new = None
        if e in s.s2s:
            new = e.attrs.set(legal=s.s2s[e])
        elif e.kind is EdgeKind.V2V:
            terms = s.v2v_terms(e.src)
            new = e.attrs.set(legal="merge-projection" if e.projection else "duplicate",
                              copies=len(terms), terms=terms)
        if new is not None and new != e.attrs:
            b.replace_edge(e, replace(e, attrs=new))
    b.attrs = b.attrs.set(legalized=target)
    return b.build()
