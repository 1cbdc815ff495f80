"""Rate calibration of a normalised SNN with its own neuron (docs/passes.md "Conversion",
`--calibrate-rates`, `--calibrate-bias`): the PyTorch module runs the SNN graph on calibration
images and each lif's threshold is set so that its mean rate matches the ANN's
(`calibrate_thresholds`), then each channel's bias so that the channel's mean rate does
(`calibrate_biases`). Called by `compile` after the
conversion pipeline (the ANN statistics and weights come from passes/_calibrate.py and the
pass `normalize`)."""

from __future__ import annotations

from dataclasses import replace

import torch

from snnc.backends.pytorch.module import build_module
from snnc.compiler.core.interpret import node_outputs
from snnc.compiler.core.ir import Graph

RATE_SAMPLES = 100  # calibration images `calibrate_thresholds` runs the SNN on


def _ann_values(ann: Graph, x: torch.Tensor, names, batch_size: int = 100):
    """{name: the ANN-form IR's output of node `name` on images `x`} (the interpreter's ops)."""
    ins = ann.input_nodes()
    out: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            for node, y in node_outputs(ann, {ins[0].name: x[i:i + batch_size].float()}):
                if node.name in out:
                    out[node.name].append(y)
    return {k: torch.cat(v) for k, v in out.items() if v}


def _ann_rates(ann: Graph, lifs, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{lif: the ANN's clip(a / lambda, 0, 1) on images `x`}, a the output of the ANN node the
    lif stands for (its own name, or the name without the inserted lif's 4-character suffix)."""
    names = {n.name: (n.name if ann.has_node(n.name) else n.name[:-4]) for n in lifs}
    acts = _ann_values(ann, x, set(names.values()))
    return {n.name: (acts[names[n.name]] / float(n.attrs["lambda"])).clamp(0, 1)
            for n in lifs if names[n.name] in acts}


BIAS_BITS = 13  # passes/quantize.py's bias mantissa (its default bias_bits)


def _on_bias_grid(b: torch.Tensor, step: float) -> torch.Tensor:
    """`b` rounded to the quantised bias grid `step` within BIAS_BITS signed bits."""
    top = 2 ** (BIAS_BITS - 1)
    return (torch.round(b / step) * step).clamp(-top * step, (top - 1) * step)


def calibrate_thresholds(snn: Graph, ann: Graph, x: torch.Tensor, *, iterations: int = 3,
                         batch_size: int = 50, max_step: float = 2.0) -> Graph:
    """Layer-wise rate calibration of a normalised SNN with its own neuron (docs/passes.md
    "Conversion", `--calibrate-rates`).

    After Li et al. 2021 (ICML, "A free lunch from ANN: towards efficient, accurate spiking
    neural networks calibration"), which corrects each layer's expected output error on
    calibration data with the SNN's own dynamics: here the quantity corrected is each lif's gain.
    The SNN module (the graph's own neuron and arithmetic: on Loihi 2 reset to zero, fixed point,
    synaptic delays) runs on images `x`; for every lif l with a statistic `lambda`, its mean
    firing rate r_l over the second half of the T steps (after the delays' latency) is compared
    with the ANN's mean clip(a_l / lambda_l, 0, 1) on the same images, t_l, and its threshold
    becomes theta_l r_l / t_l (the ratio clipped to [1/max_step, max_step]): a neuron that
    resets to zero loses the charge above the threshold at each spike (rate 1 / ceil(theta / x)
    instead of x / theta), a deficit that compounds over layers; a lower threshold restores
    the layer's mean rate; a lif that stays silent in that window is left. `iterations` rounds
    (each layer's rate depends on the layers below).
    Thresholds of quantised lifs (attr vth_mant) stay integer mantissas. Returns the new graph
    (attr `rate_calibration`: the rounds run)."""

    lifs = [n for n in snn.by_op("lif") if n.attrs.get("lambda")]
    if snn.params is None or not lifs or iterations <= 0:
        return snn
    target = {k: float(t.mean()) for k, t in _ann_rates(ann, lifs, x).items()}
    g = snn
    steps = int(g.attrs.get("timesteps", 1))
    for _ in range(iterations):
        m = build_module(g).eval()
        m.record_rates = True
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                m(x[i:i + batch_size].float())
        rates = m.rates()
        b = g.edit()
        for n in g.by_op("lif"):
            t = target.get(n.name)
            r = rates.get(n.name)
            if not t or r is None:
                continue
            r = float(r[steps // 2:].mean()) if steps > 1 else float(r.mean())
            if r <= 0:  # silent (or not reached yet at this T): no ratio to correct by
                continue
            ratio = min(max(r / t, 1.0 / max_step), max_step)
            attrs = n.attrs
            if "vth_mant" in attrs:
                mant = max(1, round(int(attrs["vth_mant"]) * ratio))
                attrs = attrs.set(vth=float(attrs["vth"]) * mant / int(attrs["vth_mant"]),
                                  vth_mant=mant)
            else:
                attrs = attrs.set(vth=float(attrs["vth"]) * ratio)
            b.replace_node(replace(n, attrs=attrs))
        g = b.build()
    b = g.edit()
    b.attrs = b.attrs.set(rate_calibration=int(iterations))
    return b.build()


_PASS_THROUGH = ("avgpool", "adaptive_avgpool", "identity", "dropout")


def bias_carrier(g: Graph, lif: str) -> str | None:
    """The node whose per-channel bias is lif `lif`'s input bias: the conv2d/linear (with a
    bias) or non-identity batchnorm on its port-0 input, through average pools and identity
    norms (a bias before an average pool reaches every pooled position unchanged), each read
    by nothing else. None when there is none."""
    ins = [e for e in g.inputs_of(lif) if e.port == 0]
    name = ins[0].src if ins else None
    while name is not None:
        if len(g.users(name)) != 1:  # its bias would reach other readers too
            return None
        n = g.node(name)
        if n.op in ("conv2d", "linear"):
            return name if n.param("bias") is not None else None
        if n.op in ("batchnorm", "bntt"):
            if n.attrs.get("init") != "identity":
                return name if n.op == "batchnorm" and n.param("bias") is not None else None
        elif n.op not in _PASS_THROUGH:
            return None
        ins = g.inputs_of(name)
        name = ins[0].src if len(ins) == 1 else None
    return None


def _channel_rates(m, x: torch.Tensor, names, start: int, batch_size: int):
    """{lif: mean spike rate per channel over steps >= start} of module `m` on images `x`."""
    sums: dict[str, torch.Tensor] = {}

    def observe(node, ins, out):
        if node.name in names:
            s = out[start:].float()
            dims = [0, 1] + list(range(3, s.dim()))
            r = s.mean(dims) * out.shape[1]
            sums[node.name] = sums.get(node.name, 0) + r

    m.observer = observe
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                m(x[i:i + batch_size].float())
    finally:
        m.observer = None
    return {k: v / len(x) for k, v in sums.items()}


def calibrate_biases(snn: Graph, ann: Graph, x: torch.Tensor, *, iterations: int = 4,
                     batch_size: int = 50, start: int | None = None) -> Graph:
    """Per-channel bias correction of a normalised SNN with its own neuron (docs/passes.md
    "Conversion", `--calibrate-bias`).

    Li et al. 2021 (ICML, "A free lunch from ANN", sec. 4.1 bias correction), the SNN form of
    Nagel et al. 2019's (ICCV, "Data-free quantization through weight equalization and bias
    correction", sec. 4.2) correction of a layer's expected output error per channel: the SNN
    module (its own neuron and arithmetic: on Loihi 2 reset to zero, 8-bit weights, relays,
    synaptic delays) runs on images `x`; for every lif l with a statistic lambda, channel c's
    mean rate r_lc over the steps from the graph's longest delay depth on (`start` if given;
    compiler/core/delays.py: before it some lifs cannot have been reached, after it the
    readout averages every step, transient included, so the rates are matched where the
    readout reads them) is compared with the ANN's mean
    clip(a_lc / lambda_l, 0, 1) on the same images, t_lc, and the bias of the layer feeding the
    lif (`bias_carrier`) moves by (t_lc - r_lc) theta_l per step: an IF neuron's rate rises by
    delta / theta for an input delta per step. The error this removes is what a per-layer
    threshold cannot: a neuron that resets to zero loses the charge above the threshold at each
    spike, a loss that grows with the rate, so channels that fire more fall further below the
    ANN than the layer's mean; weight rounding shifts channel means too. `iterations` rounds
    (each layer's rates depend on the layers below; reset to zero rises by less than delta /
    theta). Biases stay on the layer's bias grid (attr bias_step) within its 13-bit range;
    nothing is added that the target cannot hold (a per-channel bias is a per-neuron bias
    mantissa in Lava). Returns the new graph (attr `bias_calibration`: the rounds run)."""
    lifs = [n for n in snn.by_op("lif") if n.attrs.get("lambda")]
    if snn.params is None or not lifs or iterations <= 0:
        return snn
    carriers = {n.name: bias_carrier(snn, n.name) for n in lifs}
    lifs = [n for n in lifs if carriers[n.name] is not None]
    target = {k: t.mean([0] + list(range(2, t.dim())))
              for k, t in _ann_rates(ann, lifs, x).items()}
    g = snn
    steps = int(g.attrs.get("timesteps", 1))
    if start is None:  # every step the readout averages once the input can reach the lifs
        from snnc.compiler.core.delays import delay_depth

        start = min(delay_depth(g).longest, steps - 1)
    for _ in range(iterations):
        m = build_module(g).eval()
        rates = _channel_rates(m, x, set(target), start, batch_size)
        params = dict(g.params)
        for n in lifs:
            t, r = target.get(n.name), rates.get(n.name)
            if t is None or r is None or r.shape != t.shape:
                continue
            theta = float(g.node(n.name).attrs.get("vth", 1.0))
            carrier = g.node(carriers[n.name])
            key = carrier.param("bias")
            new = params[key] + (t - r) * theta
            step = carrier.attrs.get("bias_step")
            if step:  # keep the quantised bias on its grid (quantize's 13-bit mantissa)
                new = _on_bias_grid(new, float(step))
            params[key] = new.to(params[key].dtype)
        g = g.with_params(params)
    b = g.edit()
    b.attrs = b.attrs.set(bias_calibration=int(iterations))
    return b.build()


CLASSIFIER_SAMPLES = 300  # calibration images `calibrate_classifier` runs the SNN on


def calibrate_classifier(snn: Graph, ann: Graph, x: torch.Tensor, *,
                         batch_size: int = 100) -> Graph:
    """Per-class bias correction of the classifier (the layer the readout reads) of a
    normalised SNN (docs/passes.md "Conversion", part of `--calibrate-bias`).

    Nagel et al. 2019 (ICCV, sec. 4.2, empirical bias correction) and Li et al. 2021 (ICML,
    sec. 4.1) applied to the logits: no lif follows the classifier, so `calibrate_biases`
    cannot see its error, yet its coarse weights (the readout unit leaves a Loihi 2
    classifier few weight levels) and the rate errors below shift each class's mean logit.
    The SNN module runs on images `x`; with S the readout's output (mean logit per step) and A
    the ANN's logits on the same images, a = the least-squares scale of A on S (class means
    removed; the SNN's logits are the ANN's in the classifier's unit, less the delays'
    latency), and class c's bias moves by mean(A_c) / a - mean(S_c), rounded to the layer's
    bias grid. Returns the new graph (attr `classifier_calibration`: the images used), or `snn`
    when there is no readout fed by a layer with a bias."""
    reads = [e for r in snn.by_op("readout") for e in snn.inputs_of(r.name) if e.port == 0]
    if snn.params is None or len(reads) != 1 or len(x) < 2:
        return snn
    fc = snn.node(reads[0].src)
    key = fc.param("bias") if fc.op in ("conv2d", "linear") else None
    if key is None or len(snn.users(fc.name)) != 1 or not ann.has_node(fc.name):
        return snn
    m = build_module(snn).eval()
    with torch.no_grad():
        s = torch.cat([m(x[i:i + batch_size].float()) for i in range(0, len(x), batch_size)])
    a_ = _ann_values(ann, x, {fc.name}).get(fc.name)
    bias = snn.params[key]
    if a_ is None or s.shape != a_.shape or s.dim() != 2 or s.shape[1] != bias.numel():
        return snn
    sc, ac = s - s.mean(0), a_ - a_.mean(0)
    scale = float((ac * sc).sum() / (sc * sc).sum().clamp_min(1e-12))
    if scale <= 0:
        return snn
    new = bias + (a_.mean(0) / scale - s.mean(0)).to(bias.dtype)
    step = fc.attrs.get("bias_step")
    if step:
        new = _on_bias_grid(new, float(step))
    params = dict(snn.params)
    params[key] = new
    b = snn.with_params(params).edit()
    b.attrs = b.attrs.set(classifier_calibration=len(x))
    return b.build()
