"""normalize: data-based weight normalisation for ANN-to-SNN conversion (docs/passes.md
"Conversion").

Rueckauer et al. 2017 (sec. 2.3, "robust normalisation"), after Diehl et al. 2015 (data-based
normalisation): with lambda_l the p-th percentile of ReLU layer l's activations on calibration
data, a spike of layer l stands for the value lambda_l, so layer l's weights become
W_l lambda_{l-1} / lambda_l (per input channel: a concat mixes layers) and its bias b_l / lambda_l,
in units of the neuron's threshold theta: an IF neuron (leak 1, reset by subtraction) then fires
at rate a_l / lambda_l.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

import torch

from snnc.compiler.core.relays import is_relay_edge
from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.conditions import form_is, has_attrs
from snnc.compiler.core.ir import EdgeKind, Form, Graph, Node
from snnc.compiler.core.passmanager import register_pass
from snnc.passes._common import data_users, require_snn

log = logging.getLogger("snnc.passes")
# Ops whose output is their input's value, channel by channel (flatten/reshape expand it).
TRANSPARENT = ("avgpool", "adaptive_avgpool", "maxpool", "flatten", "reshape", "identity",
               "dropout")
NORMS = ("bntt", "batchnorm")
RELAY_LEVELS = 256  # relay steps the largest relayed current spans (`_current_unit`)


def lif_scale(name: str, scales: Mapping[str, float]) -> float | None:
    """lambda of lif `name`: the statistic of the ANN node of the same name (relu-to-lif keeps
    names), or of the node an inserted `<node>_lif` follows."""
    if name in scales:
        return float(scales[name])
    if name.endswith("_lif") and name[:-4] in scales:
        return float(scales[name[:-4]])
    return None


@register_pass("normalize", requires=[form_is(Form.SNN)], ensures=[has_attrs("normalized")])
def normalize(g: Graph, *, scales: Mapping[str, float] | None = None,
              percentile: float = 99.9, headroom: float = 1.0,
              init_membrane: float = 0.0) -> Graph:
    """Data-based normalisation: weights, biases, thresholds and S2M scales so that every lif
    fires at the rate (its ANN activation) / lambda_l.

    `scales` maps ANN node names to lambda (the p-th percentile of their positive outputs,
    passes/_calibrate.py `activation_scales`; `percentile` is recorded), each multiplied by
    `headroom` (> 1 keeps every rate at most 1/headroom: a neuron that resets to zero loses the
    charge above its threshold at each spike, an error that grows with the rate; docs/passes.md
    "Conversion"). Each node's output gets
    a unit u (the ANN value of one unit of the SNN value, per channel): 1 for the input, lambda_l
    for a lif's spikes; pools, flatten and concat carry units per channel. A conv/linear becomes
    W[o, c] u_in[c] / u_out and b / u_out, where u_out = lambda_l / theta_l when its value goes
    (through identity BNTTs and pools only) into lif l's membrane, else 1 (an add of currents, the
    classifier: logits keep the ANN's scale). A batchnorm/bntt that is not an identity converts
    u_in to its own u_out (gamma u_in / u_out, mean / u_in, beta / u_out). A lif whose input unit
    u differs from lambda / theta (an inserted lif after an add) gets theta = lambda / u. An S2M
    edge's scale becomes u_skip / u_lif_input (eq. 7's W' = U_th when every lambda is 1).
    Requires: SNN form with params (a structure-only graph is returned with the attrs only), after
    lower-residual and readout.
    Guarantees: attrs `lambda` on every lif that has a statistic, `normalized` (percentile) on the
    graph; a node whose units do not agree (an S2S add of spikes from layers with different
    lambda, a V2V current) gets attr `norm_mismatch` and is left as the nearest approximation.
    Implements: Rueckauer et al. 2017 eq. 9-10 (Diehl et al. 2015 with p = 100).
    Idempotent: a graph with attr `normalized` is returned unchanged.
    """
    require_snn(g, "normalize")
    if "normalized" in g.attrs:
        return g
    if headroom <= 0:
        raise SnncError(f"normalize: headroom must be positive (got {headroom}).")
    if not 0.0 <= init_membrane <= 1.0:
        raise SnncError(f"normalize: init_membrane must lie in [0, 1] (got {init_membrane}).")
    scales = {k: float(v) * float(headroom) for k, v in (scales or {}).items()}
    b = g.edit()
    b.attrs = b.attrs.set(normalized=float(percentile))
    if g.params is None or not scales:
        return b.build()
    units: dict[str, torch.Tensor | float] = {}
    base = _current_unit(g, scales)
    params = dict(g.params)
    for n in g.nodes:
        ins = g.inputs_of(n.name)
        u_in = _unit(g, ins[0], units) if ins else 1.0
        if n.op in ("input", "encoder"):
            units[n.name] = 1.0
        elif n.op in ("conv2d", "linear"):
            u_out = _demand(g, n.name, scales, base) * _readout_unit(g, n.name, scales)
            _scale_weighted(n, params, u_in, u_out)
            units[n.name] = u_out
        elif n.op in NORMS:
            if n.attrs.get("init") == "identity":  # transparent to _demand: u_in is its demand
                units[n.name] = u_in
            else:
                u_out = _demand(g, n.name, scales, base)
                if ins and base != 1.0 and is_relay_edge(g, ins[0]):
                    u_out = _relay_norm_unit(n, params, u_in, u_out)
                _scale_norm(n, params, u_in, u_out)
                units[n.name] = u_out
        elif n.op == "lif":
            units[n.name] = _lif(b, g, n, ins, units, scales, u_in, init_membrane)
        elif n.op in TRANSPARENT:
            units[n.name] = _through(n, g, ins[0], u_in)
        elif n.op == "concat":
            units[n.name] = torch.cat([_per_channel(_unit(g, e, units), _channels(g, e))
                                       for e in ins])
        elif n.op == "add":
            us = [_unit(g, e, units) for e in ins]
            if not all(_same(us[0], u) for u in us[1:]):
                b.replace_node(replace(b.nodes[n.name], attrs=b.nodes[n.name].attrs.set(
                    norm_mismatch="add of values with different units")))
            units[n.name] = us[0]
        else:  # readout, vote: the classifier already produced ANN units
            units[n.name] = u_in
    for name, p in params.items():
        if g.params[name] is not p:
            b.set_param(name, p)
    return b.build()


def _lif(b, g: Graph, n: Node, ins, units, scales, u_in, v_init: float) -> float:
    lam = lif_scale(n.name, scales)
    theta = float(n.attrs.get("vth", 1.0))
    if lam is None or lam <= 0:  # no statistic (or a dead layer): a spike stands for 1
        return 1.0
    node = b.nodes[n.name]
    attrs = node.attrs.set(**{"lambda": round(lam, 6)})
    if v_init:
        attrs = attrs.set(v_init=float(v_init))
    u_main = u_in if isinstance(u_in, float) else float(u_in.mean())
    if not _close(u_main, lam / theta):  # the input could not be put in units of lambda/theta
        theta = lam / u_main
        attrs = attrs.set(vth=theta)
    for e in ins[1:]:
        if e.kind is EdgeKind.S2M:
            u_skip = _unit(g, e, units)
            u_skip = u_skip if isinstance(u_skip, float) else float(u_skip.mean())
            sc = float(e.attrs.get("scale", 1.0)) if e.projection is not None else 1.0
            b.replace_edge(e, replace(e, attrs=e.attrs.set(scale=sc * u_skip / u_main)))
        elif e.kind is EdgeKind.V2V:
            attrs = attrs.set(norm_mismatch="V2V current is not rescaled")
    b.replace_node(replace(node, attrs=attrs))
    return lam


def _demand(g: Graph, name: str, scales, base: float = 1.0) -> float:
    """The unit node `name`'s output should have: lambda/theta of the lif it feeds (through
    identity norms and pools), 1 for the classifier feeding the readout (logits keep the ANN's
    scale), else `base` (the unit of a sum of currents, `_current_unit`)."""
    users = data_users(g, name)
    if len(users) != 1:
        return base
    e = users[0]
    d = g.node(e.dst)
    if d.op == "lif":
        lam = lif_scale(d.name, scales)
        if lam is None or lam <= 0:
            return 1.0
        theta = float(d.attrs.get("vth", 1.0))
        if e.port == 0:
            return lam / theta
        if e.kind is EdgeKind.S2M and e.projection is not None:
            return lam / theta / float(e.attrs.get("scale", 1.0))
        return base
    if d.op in TRANSPARENT or (d.op in NORMS and d.attrs.get("init") == "identity"):
        return _demand(g, d.name, scales, base)
    return 1.0 if d.op in ("readout", "vote") else base


def _relay_norm_unit(n: Node, params: dict, u_in, u_out: float) -> float:
    """The output unit of a batchnorm that reads a graded relay (Loihi 2: a 1x1 synapse with
    one 8-bit weight per channel on the fixed grid WEIGHT_GRID and a shift on BIAS_GRID,
    backends/pytorch/ops.py BatchNorm): u_out divided by f, the largest factor that keeps the
    largest per-channel scale gamma u_in / (sigma u_out) within half of the weight range and the
    largest shift within half of the bias range (at ANN units a few weight steps round to zero);
    the lif it feeds takes the matching threshold lambda / u_out (`_lif`)."""
    from snnc.compiler.core.relays import BIAS_GRID, WEIGHT_GRID

    c = n.shape[1]
    var = params[n.param("running_var")] + float(n.attrs.get("eps", 1e-5))
    gain = params[n.param("weight")] / torch.sqrt(var)
    top = float((gain.abs() * _in_vector(u_in, c)).max()) / u_out
    shift = float((params[n.param("bias")] - params[n.param("running_mean")] * gain).abs().max())
    if top <= 0:
        return u_out
    f = WEIGHT_GRID[2] / 2 / top
    if shift > 0:
        f = min(f, BIAS_GRID[2] / 2 * u_out / shift)
    return u_out / f


def _readout_unit(g: Graph, name: str, scales) -> float:
    """1, or for the classifier of a Loihi 2 readout (backends/relay.py: a membrane of k T
    logits, k the pooled positions, that resets above READOUT_CEILING) the unit that keeps
    k T lambda (lambda: the logits' statistic) within half of the ceiling."""
    from snnc.compiler.core.relays import READOUT_CEILING, exact_loihi2, readout_scale

    users = data_users(g, name)
    if not exact_loihi2(g) or len(users) != 1 or g.node(users[0].dst).op != "readout":
        return 1.0
    lam = float(scales.get(name, 0.0))
    k = readout_scale(g, users[0].dst)
    steps = int(g.attrs.get("timesteps", 1) or 1)
    return max(1.0, 2.0 * k * steps * lam / READOUT_CEILING)


def _current_unit(g: Graph, scales) -> float:
    """The unit of the currents (sums of weighted inputs that no single lif reads) in `g`.

    1 (ANN units), except where a current crosses a graded relay (backends/relay.py, Loihi 2
    target semantics: a pre-activation net's BN input, a DenseNet transition's pool), which
    floors it to RELAY_STEP: there every current gets the unit lambda_max RELAY_STEP /
    RELAY_LEVELS, lambda_max the largest statistic of a relayed value, so that the relayed values
    span RELAY_LEVELS relay steps (8 bits, the weights' precision) instead of a few."""
    from snnc.compiler.core.relays import RELAY_STEP

    relayed = {e.value_src for e in g.edges if is_relay_edge(g, e)}
    lams = [float(scales[v]) for v in relayed if float(scales.get(v, 0.0)) > 0]
    if not lams:
        return 1.0
    return max(lams) * RELAY_STEP / RELAY_LEVELS


def _unit(g: Graph, e, units):
    u = units.get(e.value_src, 1.0)
    frac = e.attrs.get("fraction", 1.0)
    if e.kind is EdgeKind.DSC and frac < 1.0 and not isinstance(u, float):
        u = u[:round(frac * len(u))]
    return u


def _channels(g: Graph, e) -> int:
    shape = g.node(e.value_src).shape
    c = shape[1] if len(shape) > 1 else 1
    frac = e.attrs.get("fraction", 1.0)
    return round(frac * c) if e.kind is EdgeKind.DSC and frac < 1.0 else c


def _per_channel(u, c: int) -> torch.Tensor:
    return torch.full((c,), float(u)) if isinstance(u, float) else u


def _through(n: Node, g: Graph, e, u):
    if isinstance(u, float) or n.op not in ("flatten", "reshape"):
        return u
    shape = g.node(e.value_src).shape
    per = 1
    for d in shape[2:]:
        per *= int(d)
    return u.repeat_interleave(per)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return _close(a, b)
    ta, tb = torch.as_tensor(a), torch.as_tensor(b)
    return bool(torch.allclose(ta.expand_as(tb) if ta.dim() == 0 else ta,
                               tb.expand_as(ta) if tb.dim() == 0 else tb, rtol=1e-5))


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1e-12)


def _in_vector(u, c: int) -> torch.Tensor:
    t = _per_channel(u, c)
    if len(t) != c:
        raise SnncError(f"normalize: a layer reads {c} channels but its input carries units "
                        f"for {len(t)}; please report this as a bug.")
    return t


def _scale_weighted(n: Node, params: dict, u_in, u_out: float) -> None:
    wkey, bkey = n.param("weight"), n.param("bias")
    w = params[wkey]
    groups = int(n.attrs.get("groups", 1)) if n.op == "conv2d" else 1
    cin = w.shape[1] * groups
    uv = _in_vector(u_in, cin)
    if groups > 1:  # out channel o reads in-channels (o // (out/groups)) * cin/groups + j
        per_out = w.shape[0] // groups
        idx = (torch.arange(w.shape[0]) // per_out)[:, None] * w.shape[1] \
            + torch.arange(w.shape[1])[None, :]
        factor = uv[idx]
    else:
        factor = uv[None, :].expand(w.shape[0], -1)
    factor = factor.reshape(*factor.shape, *([1] * (w.dim() - 2)))
    params[wkey] = w * factor / u_out
    if bkey is not None:
        params[bkey] = params[bkey] / u_out


def _scale_norm(n: Node, params: dict, u_in, u_out: float) -> None:
    c = n.shape[1]
    uv = _in_vector(u_in, c)
    for role, f in (("weight", uv / u_out), ("running_mean", 1.0 / uv),
                    ("bias", torch.full((c,), 1.0 / u_out))):
        key = n.param(role)
        if key is not None:
            params[key] = params[key] * f
