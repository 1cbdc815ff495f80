"""save_module / load_module, firing-rate recording, and modules compiled from the zoo."""

from __future__ import annotations

import json

import pytest
import torch

from snnc.backends.pytorch import build_module, load_module, save_module
from snnc.compiler.errors import ImportFailed, SnncError
from snnc.compiler.text import parse
from snnc.compiler.verify import verify

MLP = """graph mlp(%x: f32[1,64]) snn {timesteps=4, semantics=paper} {
  %enc = encoder(%x) {kind=direct} : f32[1,64]
  %f0 = linear(%enc) {in=64, out=32} [f0.weight, f0.bias] : f32[1,32]
  %b0 = bntt(%f0) {timesteps=4} [b0.weight, b0.bias, b0.running_mean, b0.running_var] : f32[1,32]
  %l0 = lif(%b0) {leak=0.874, vth=1.0} : f32[1,32]
  %f1 = linear(%l0) {in=32, out=40} [f1.weight, f1.bias] : f32[1,40]
  %v = vote(%f1) {k=4} : f32[1,10]
  %ro = readout(%v) : f32[1,10]
  return %ro
}
"""


def mlp(**kw):
    torch.manual_seed(0)
    m = build_module(verify(parse(MLP)), **kw)
    with torch.no_grad():
        m.layers["b0"].bias.uniform_(0.3, 1.0)  # some activity at initialisation
    return m


def test_save_load_roundtrip(tmp_path):
    m = mlp()
    with torch.no_grad():
        m.layers["b0"].running_mean.uniform_(-0.1, 0.1)
    x = torch.rand(5, 64) * 3
    save_module(m, None, tmp_path)
    meta = json.loads((tmp_path / "manifest.json").read_text())
    assert meta["format"] == "snnc-output" and set(meta["files"]) >= {"graph.json",
                                                                      "graph.safetensors"}
    assert json.loads((tmp_path / "graph.json").read_text())["format"] == "snnc-ir"
    m2 = load_module(tmp_path)
    m.eval(), m2.eval()
    assert torch.equal(m(x), m2(x))
    assert set(m2.graph_params()) == {k for n in m.graph.nodes for k in n.params}


def test_load_errors_name_the_file(tmp_path):
    from snnc.compiler.core.outdir import sha256_file

    with pytest.raises(ImportFailed, match="manifest.json"):
        load_module(tmp_path)
    save_module(mlp(), None, tmp_path / "a")
    (tmp_path / "a" / "manifest.json").write_text("{not json")
    with pytest.raises(ImportFailed, match="not an snnc manifest"):
        load_module(tmp_path / "a")
    save_module(mlp(), None, tmp_path / "b")
    (tmp_path / "b" / "graph.json").write_text('{"format": "pickle"}')
    with pytest.raises(ImportFailed, match="graph.json do"):  # its hash no longer matches
        load_module(tmp_path / "b")
    d = tmp_path / "ok"
    save_module(mlp(), None, d)
    (d / "graph.safetensors").write_bytes(b"\x80\x04garbage")
    m = json.loads((d / "manifest.json").read_text())
    m["files"]["graph.safetensors"] = sha256_file(d / "graph.safetensors")  # a consistent lie
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ImportFailed, match="safetensors"):
        load_module(d)


def test_rates_per_layer_per_step():
    """rates(): mean spikes per neuron of each lif and step, averaged over recorded samples."""
    m = mlp().eval()
    m.record_rates = True
    x1, x2 = torch.rand(3, 64) * 3, torch.rand(5, 64) * 3
    m(x1), m(x2)
    r = m.rates()
    assert list(r) == ["l0"] and r["l0"].shape == (4,)
    # reference: the lif's spikes, recomputed by running the graph up to l0
    spikes = []
    for x in (x1, x2):
        cur = m.layers["b0"]([m.layers["f0"]([x.unsqueeze(0)])], 4)
        spikes.append(m.layers["l0"]([cur], 4))
    want = torch.cat(spikes, 1).mean((1, 2))
    torch.testing.assert_close(r["l0"], want)
    assert 0 < want.mean() < 1
    m.reset_rates()
    assert m.rates() == {}


def test_vote_is_mean_of_groups():
    m = mlp()
    x = torch.arange(40.0).view(1, 1, 40)
    assert m.layers["v"]([x]).flatten().tolist() == [1.5 + 4 * i for i in range(10)]


def test_ann_graph_refused():
    g = verify(parse("graph a(%x: f32[1,4]) ann {\n  %r = relu(%x) : f32[1,4]\n  return %r\n}"))
    with pytest.raises(SnncError, match="ANN form"):
        build_module(g)


def test_zoo_resnet_compiles_trains_and_reloads(tmp_path):
    """End to end: zoo S-ResNet (S2S) -> conversion pipeline -> module; a step of training
    changes the loss; save/load gives the same logits."""
    from snnc.compiler import compile
    from snnc.models.sresnet import sresnet

    c = compile(sresnet(n=1, base=4, in_channels=1), residual="s2s", timesteps=3)
    m = c.to_torch()
    x, y = torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    save_module(m, c.graph, tmp_path)
    m.eval()
    assert torch.equal(load_module(tmp_path).eval()(x), m(x))


def test_zoo_loihi2_is_target_exact():
    from snnc.compiler import compile
    from snnc.models.sresnet import sresnet

    c = compile(sresnet(n=1, base=4, in_channels=1), residual="s2m", target="loihi2",
                timesteps=3)
    m = c.to_torch()
    lifs = [mod for mod in m.layers.values() if hasattr(mod, "cfg")]
    assert lifs and all(mod.cfg.fixed and mod.delay == 1 for mod in lifs)
    conv = m.layers["conv1"]
    q = conv._wb()[0]
    assert torch.equal(q * 32, torch.round(q * 32))
    assert m(torch.rand(2, 1, 32, 32)).shape == (2, 10)


ENC = """graph e(%x: f32[1,50]) snn {timesteps=400} {
  %enc = encoder(%x) {kind=poisson, seed=3} : f32[1,50]
  return %enc
}"""


def test_poisson_encoder_rate_and_seed():
    """o_t = 1[r_t < clip(x, 0, 1)]: binary, seeded, rate -> clip(x, 0, 1)."""
    m = build_module(verify(parse(ENC)))
    x = torch.linspace(-0.5, 1.5, 50).expand(2, 50)
    o = m(x)
    assert o.shape == (400, 2, 50) and set(o.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(o.mean((0, 1)), x[0].clamp(0, 1), atol=0.06, rtol=0)
    assert torch.equal(o, m(x))  # the node's seed makes it reproducible


def test_event_input_must_have_t_steps():
    g = verify(parse(ENC.replace("kind=poisson, seed=3", "kind=events")))
    m = build_module(g)
    assert torch.equal(m(torch.ones(400, 2, 50)), torch.ones(400, 2, 50))
    with pytest.raises(SnncError, match=r"T=400"):
        m(torch.ones(3, 2, 50))
