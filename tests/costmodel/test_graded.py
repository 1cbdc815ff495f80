"""Graded-edge rules per residual kind and the extra synapses of each lowering (paper 2 eq. 12,
14, 18; hardware-targets.md sec. 7c), on small hand-written graphs whose numbers are computed
by hand in the comments. loihi2 has graded spikes (24 bits), loihi1 binary spikes only."""

import pytest

from snnc.compiler.text import parse
from snnc.compiler.api import cost_report  # lowers for binary-only targets

LIF = "{leak=0.9, vth=1.0, reset=subtract}"
# Rates (prior, per layer): hand numbers below use these; T = 2 everywhere.
RATES = {"x_enc": 0.5, "lif0": 0.1, "lif1": 0.2, "lif2": 0.3, "lif3": 0.4, "*": 0.25}
T = 2

# -- S2S with a projection (eq. 13/14) ------------------------------------------------------
PROJ = f"""graph proj(%x: f32[1,2,4,4]) snn {{timesteps=2, lowered=true}} {{
  %x_enc = encoder(%x) {{kind=poisson}} : f32[1,2,4,4]
  %conv0 = conv2d(%x_enc) {{in=2, out=2, k=(3,3), pad=(1,1,1,1)}} : f32[1,2,4,4]
  %lif0 = lif(%conv0) {LIF} : f32[1,2,4,4]
  %conv1 = conv2d(%lif0) {{in=2, out=4, k=(3,3), stride=(2,2), pad=(1,1,1,1)}} : f32[1,4,2,2]
  %lif1 = lif(%conv1) {LIF} : f32[1,4,2,2]
  %conv2 = conv2d(%lif1) {{in=4, out=4, k=(3,3), pad=(1,1,1,1)}} : f32[1,4,2,2]
  %lif2 = lif(%conv2) {LIF} : f32[1,4,2,2]
  %ds = conv2d(%lif0) {{in=2, out=4, k=(1,1), stride=(2,2)}} : f32[1,4,2,2]
  %add = add(%lif2, %lif0 ~S2S n=2 proj=%ds) : f32[1,4,2,2]
  %conv3 = conv2d(%add) {{in=4, out=4, k=(3,3), pad=(1,1,1,1)}} : f32[1,4,2,2]
  %lif3 = lif(%conv3) {LIF} : f32[1,4,2,2]
  return %lif3
}}
"""
# conv3 on 2x2, 3x3 pad 1: along each axis both positions are read by both outputs -> fan-out
# 2 x 2 = 4 per position, 4 positions, 4 in x 4 out channels: 4 * 4 * 16 = 256 synapses.
# eq. 14 merges W_3 W'' (every one of lif0's 2 channels reaches all 4 outputs): 256 * 2/4 = 128.
# ds (1x1, stride 2 on 4x4): positions 0 and 2 of each axis, 4 x 4 out x 2 in = 32 synapses.


def _row(rep, name):
    return next(r for r in rep.rows if r.name == name)


def test_s2s_projection_graded_on_loihi2():
    rep = cost_report(parse(PROJ), target="loihi2", rates=RATES)
    (e,) = rep.graded_edges
    # payload graded (spikes + W'' o), carried at the accumulator width (a_out 16 bits) <= 24
    assert (e.kind, e.payload, e.bits, e.fits, e.extra_synapses) == (
        "s2s_projection", "graded", 16, True, 0)
    # density of add = 1 (the projection is graded every step): 1 * T * 256
    assert _row(rep, "conv3").graded_sops == pytest.approx(2 * 256)
    assert _row(rep, "ds").sops == pytest.approx(0.1 * T * 32)


def test_s2s_projection_eq14_on_loihi1():
    rep = cost_report(parse(PROJ), target="loihi1", rates=RATES)
    (e,) = rep.graded_edges
    assert (e.lowering, e.equation, e.extra_synapses) == ("merge-projection", "paper 2 eq. 14",
                                                          128)
    conv3, ds = _row(rep, "conv3"), _row(rep, "ds")
    # two incoming connections: lif2's spikes on 256 synapses, lif0's on the merged 128
    assert conv3.sops == pytest.approx(0.3 * T * 256 + 0.1 * T * 128)
    assert conv3.graded_sops == 0
    assert (ds.extra_synapses, ds.sops) == (-32, 0)  # W'' is not emitted on its own
    assert rep.totals["extra_synapses"] == 128 - 32


# -- S2S sum chain (eq. 12) ------------------------------------------------------------------
CHAIN = f"""graph chain(%x: f32[1,1,3,3]) snn {{timesteps=2, lowered=true}} {{
  %x_enc = encoder(%x) {{kind=poisson}} : f32[1,1,3,3]
  %conv0 = conv2d(%x_enc) {{in=1, out=1, k=(1,1)}} : f32[1,1,3,3]
  %lif0 = lif(%conv0) {LIF} : f32[1,1,3,3]
  %conv1 = conv2d(%lif0) {{in=1, out=1, k=(1,1)}} : f32[1,1,3,3]
  %lif1 = lif(%conv1) {LIF} : f32[1,1,3,3]
  %add1 = add(%lif1, %lif0 ~S2S n=1) : f32[1,1,3,3]
  %conv2 = conv2d(%add1) {{in=1, out=1, k=(1,1)}} : f32[1,1,3,3]
  %lif2 = lif(%conv2) {LIF} : f32[1,1,3,3]
  %add2 = add(%lif2, %add1 ~S2S n=1) : f32[1,1,3,3]
  %conv3 = conv2d(%add2) {{in=1, out=1, k=(1,1)}} : f32[1,1,3,3]
  %lif3 = lif(%conv3) {LIF} : f32[1,1,3,3]
  return %lif3
}}
"""
# 1x1 convs on 3x3, one channel: 9 synapses each. add1 = lif1 + lif0 (2 terms, values 0..2:
# 2 bits); add2 = lif2 + lif1 + lif0 (3 terms, 0..3: 2 bits). eq. 12: conv2 exists twice
# (+9), conv3 three times (+18).


def test_s2s_sum_chain_eq12():
    g = parse(CHAIN)
    l2 = cost_report(g, target="loihi2", rates=RATES)
    assert [(e.dst, e.kind, e.payload, e.terms, e.bits, e.fits) for e in l2.graded_edges] == [
        ("conv2", "s2s_sum", "count", 2, 2, True), ("conv3", "s2s_sum", "count", 3, 2, True)]
    # graded: one event per non-zero element: d(add2) = 1 - 0.7 * 0.8 * 0.9
    assert _row(l2, "conv3").graded_sops == pytest.approx((1 - 0.7 * 0.8 * 0.9) * T * 9)
    # sinabs counts the value: (0.3 + 0.2 + 0.1) per element per step
    assert _row(l2, "conv3").sinabs_synops == pytest.approx(0.6 * T * 9)
    l1 = cost_report(g, target="loihi1", rates=RATES)
    assert [(e.lowering, e.equation, e.extra_synapses) for e in l1.graded_edges] == [
        ("split", "paper 2 eq. 12", 9), ("split", "paper 2 eq. 12", 18)]
    assert _row(l1, "conv3").sops == pytest.approx((0.3 + 0.2 + 0.1) * T * 9)
    assert _row(l1, "conv2").sops == pytest.approx((0.2 + 0.1) * T * 9)
    assert l1.totals["extra_synapses"] == 27 and l1.totals["graded_sops"] == 0


# -- V2V chain (eq. 15-18) -------------------------------------------------------------------
V2V = f"""graph v2v(%x: f32[1,1,4,4]) snn {{timesteps=2, lowered=true}} {{
  %x_enc = encoder(%x) {{kind=poisson}} : f32[1,1,4,4]
  %conv0 = conv2d(%x_enc) {{in=1, out=1, k=(3,3), pad=(1,1,1,1)}} : f32[1,1,4,4]
  %lif0 = lif(%conv0) {LIF} : f32[1,1,4,4]
  %conv1 = conv2d(%lif0) {{in=1, out=1, k=(3,3), pad=(1,1,1,1)}} : f32[1,1,4,4]
  %lif1 = lif(%conv1) {LIF} : f32[1,1,4,4]
  %conv2 = conv2d(%lif1) {{in=1, out=1, k=(3,3), pad=(1,1,1,1)}} : f32[1,1,4,4]
  %lif2 = lif(%conv2, %lif0 ~V2V n=2) {LIF} : f32[1,1,4,4]
  %conv3 = conv2d(%lif2) {{in=1, out=1, k=(3,3), pad=(1,1,1,1)}} : f32[1,1,4,4]
  %lif3 = lif(%conv3) {LIF} : f32[1,1,4,4]
  %conv4 = conv2d(%lif3) {{in=1, out=1, k=(3,3), pad=(1,1,1,1)}} : f32[1,1,4,4]
  %lif4 = lif(%conv4, %lif2 ~V2V n=2) {LIF} : f32[1,1,4,4]
  return %lif4
}}
"""
# 3x3 pad 1 on 4x4: per axis fan-out (2, 3, 3, 2), sum 10; 10 * 10 = 100 synapses per conv.
# eq. 15: r_2 = I_0 (conv0's current); r_4 = I_2 + r_2 = conv2 + conv0 (eq. 18: 2 terms).


def test_v2v_graded_current_on_loihi2():
    rep = cost_report(parse(V2V), target="loihi2", rates=RATES)
    assert [(e.dst, e.kind, e.bits, e.fits) for e in rep.graded_edges] == [
        ("lif2", "v2v_current", 16, True), ("lif4", "v2v_current", 16, True)]
    # one-to-one membrane input: 16 synapses carrying the current every step (T * 16 GSOPs)
    row = _row(rep, "conv4")
    assert (row.residual_synapses, row.synapses) == (16, 100 + 16)
    assert row.graded_sops == pytest.approx(T * 16)
    assert row.sops == pytest.approx(0.4 * T * 100)  # lif3's spikes on conv4


def test_v2v_eq18_recursion_on_loihi1():
    rep = cost_report(parse(V2V), target="loihi1", rates=RATES)
    e2, e4 = rep.graded_edges
    assert (e2.lowering, e2.equation, e2.extra_synapses) == ("duplicate", "paper 2 eq. 18", 100)
    assert e4.extra_synapses == 200  # conv2's and conv0's synapses copied into layer 4
    assert rep.totals["extra_synapses"] == 300
    row4 = _row(rep, "conv4")
    assert row4.graded_sops == 0 and row4.residual_synapses == 0
    # its own input (lif3, 0.4) + the copies of conv2 (driven by lif1) and conv0 (by x_enc)
    assert row4.sops == pytest.approx((0.4 + 0.2 + 0.5) * T * 100)
    assert _row(rep, "conv2").sops == pytest.approx((0.2 + 0.5) * T * 100)


# -- S2M (eq. 7): binary spikes into the membrane, no graded edge -----------------------------
S2M = V2V.replace("~V2V n=2", "~S2M n=2 scale=1.0")


@pytest.mark.parametrize("target", ["loihi1", "loihi2"])
def test_s2m_is_binary_everywhere(target):
    rep = cost_report(parse(S2M), target=target, rates=RATES)
    assert rep.graded_edges == [] and rep.totals["extra_synapses"] == 0
    assert not any("S2M" in v for v in rep.violations)
    row = _row(rep, "conv4")  # 100 conv synapses + 16 one-to-one of weight W' = U_th
    assert row.synapses == 116
    assert row.sops == pytest.approx(0.4 * T * 100 + 0.3 * T * 16)  # lif3, then lif2's spikes
    assert row.graded_sops == 0


# -- direct input and average pool ----------------------------------------------------------
POOL = f"""graph pool(%x: f32[1,1,4,4]) snn {{timesteps=2, lowered=true}} {{
  %x_enc = encoder(%x) {{kind={{enc}}}} : f32[1,1,4,4]
  %conv0 = conv2d(%x_enc) {{in=1, out=4, k=(1,1)}} : f32[1,4,4,4]
  %lif0 = lif(%conv0) {LIF} : f32[1,4,4,4]
  %pool = avgpool(%lif0) {{k=(2,2), stride=(2,2), pad=(0,0,0,0)}} : f32[1,4,2,2]
  %flat = flatten(%pool) {{start=1}} : f32[1,16]
  %fc = linear(%flat) {{in=16, out=10, bias=false}} : f32[1,10]
  %out = readout(%fc) : f32[1,10]
  return %out
}}
"""
# conv0: 16 positions x 4 outputs = 64 synapses. fc: 16 x 10 = 160 synapses. The pool averages
# 4 spikes (values 0, 1/4, .., 1: 3 bits); folded into fc, fc reads all 64 spikes: 640
# synapses, 480 extra; each spike reaches 10 outputs: SOPs = 0.1 * T * 64 * 10 = 0.1*T*160*4.


def test_avgpool_output_graded_and_folded():
    g = parse(POOL.replace("{enc}", "poisson"))
    l2 = cost_report(g, target="loihi2", rates=RATES)
    (e,) = l2.graded_edges
    assert (e.dst, e.kind, e.terms, e.bits, e.fits) == ("fc", "avgpool", 4, 3, True)
    assert _row(l2, "fc").graded_sops == pytest.approx((1 - 0.9 ** 4) * T * 160)
    l1 = cost_report(g, target="loihi1", rates=RATES)
    (e,) = l1.graded_edges
    assert (e.lowering, e.extra_synapses) == ("fold-into-reader", 480)
    assert _row(l1, "fc").sops == pytest.approx(0.1 * T * 160 * 4)
    assert e.alternatives["bitplane"]["extra_synapses"] == 2 * 160  # (b - 1) x synapses


def test_direct_input_graded_and_refused_on_binary_target():
    g = parse(POOL.replace("{enc}", "direct"))
    l2 = cost_report(g, target="loihi2", rates=RATES, input_bits=8)
    first = l2.graded_edges[0]
    assert (first.dst, first.kind, first.bits, first.fits) == ("conv0", "direct_input", 8, True)
    assert _row(l2, "conv0").graded_sops == pytest.approx(T * 64)  # every pixel, every step
    l1 = cost_report(g, target="loihi1", rates=RATES)
    assert l1.graded_edges[0].lowering == "refused"
    (v,) = [v for v in l1.violations if "direct encoder" in v]
    assert "'conv0'" in v and "'x_enc'" in v and "encoder=poisson" in v
