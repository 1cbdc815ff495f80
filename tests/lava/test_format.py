"""The HDF5 layouts against stock netx, fixed-point checks, refusals, paper semantics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from snnc.backends import lava
from snnc.compiler.errors import ConstraintViolation, UnsupportedOp
from tests.lava import nets


def _stock_netx_run(path, x):
    """Run a file with lava-dl's own netx.hdf5.Network: (T+1 steps) -> readout voltage."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer

    net = netx.hdf5.Network(net_config=str(path))
    data = np.concatenate([x, np.zeros_like(x[:1])]).transpose(3, 2, 1, 0)  # (x, y, c, T+1)
    src = RingBuffer(data=data.astype(np.int32))
    src.s_out.connect(net.inp)
    try:
        net.run(condition=RunSteps(num_steps=x.shape[0] + 1),
                run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        v = net.layers[-1].neuron.v.get()
    finally:
        net.stop()
    return v / 4096.0


def test_sequential_file_loads_in_stock_netx(tmp_path):
    # no biases: stock netx applies them from step 0 (see Session's bias_start)
    g = nets.compile_net(nets.SeqConv(bias=False))
    path = lava.export(g, tmp_path)
    x = nets.events(1, seed=3)[0]
    _, y = nets.torch_reference(g, x)
    v = _stock_netx_run(path, x)
    assert np.abs(y).sum() > 0
    np.testing.assert_array_equal(v, y * nets.T)


def test_graph_file_is_rejected_by_stock_netx(tmp_path):
    from lava.lib.dl import netx

    path = lava.export(nets.compile_net(nets.Residual(), residual="s2m"), tmp_path)
    with pytest.raises(KeyError):  # no /layer group: nothing is loaded without its skips
        netx.hdf5.Network(net_config=str(path))


def test_weights_out_of_range_are_reported_not_clipped(tmp_path):
    g = nets.compile_net(nets.SeqConv())
    big = dict(g.params)
    big["c2.weight"] = big["c2.weight"] * 40
    with pytest.raises(ConstraintViolation, match=r"layer 'c2' \(op conv2d\).*outside \[-4, 3.97"):
        lava.export(g.with_params(big), tmp_path)


def test_threshold_and_leak_off_grid_are_reported(tmp_path):
    g = nets.compile_net(nets.SeqConv())
    b = g.edit()
    lif = g.node("relu_1")
    b.replace_node(type(lif)(lif.name, lif.op, lif.attrs.set(vth=1.0 / 3, leak=0.9),
                             lif.shape, lif.params))
    with pytest.raises(ConstraintViolation) as err:
        lava.export(b.build(), tmp_path)
    msg = str(err.value)
    assert "layer 'relu_1' (op lif): threshold 0.333" in msg and "leak 0.9 " in msg


def test_unsupported_nodes_are_refused_by_name(tmp_path):
    g = nets.compile_net(nets.SeqConv())
    with pytest.raises(UnsupportedOp, match="BNTT"):
        import torch

        from snnc.compiler.frontends.fx import from_torch
        from snnc.compiler.passmanager import run_pipeline
        from snnc.passes.pipeline import conversion_pipeline

        m = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(72, 3))
        bn = run_pipeline(from_torch(m.eval(), torch.zeros(1, *nets.SHAPE)),
                          conversion_pipeline(target="loihi2", timesteps=4, encoder="events",
                                              bntt=True))
        lava.export(bn, tmp_path)
    with pytest.raises(UnsupportedOp, match="has no weights"):
        lava.export(g.with_params(None), tmp_path)


def test_paper_semantics_runs_in_simulation_only(tmp_path):
    """--semantics paper: subtractive reset and fire on >= (paper 2 eq. 3-6), run through
    snnc's LIF process model; checked against the neuron equation on the layer's input."""
    from snnc.backends.lava.sim import Session

    g = nets.compile_net(nets.SeqConv(bias=False), semantics="paper", leak=0.875)  # 1 - 512/4096
    with pytest.warns(lava.SimulationOnly, match="runs only in Lava's CPU simulator"):
        path = lava.export(g, tmp_path)
    plan = lava.read(path)
    assert plan.semantics == {"reset": "subtract", "fire": "ge"}
    x = nets.events(1, seed=5)[0]
    with Session(path, nets.SHAPE, probe_all=True) as sim:
        got = sim.run(x)
    # layer 1 by the equations, in membrane units (1.0 = 4096): one synaptic delay
    import torch

    layer = plan.layers[1]
    syn = layer.synapses[0]
    a = torch.nn.functional.conv2d(torch.tensor(x, dtype=torch.float64),
                                   torch.tensor(syn.weight, dtype=torch.float64),
                                   padding=syn.conv["padding"]).numpy().astype(np.int64) * 64
    keep, th = 4096 - layer.neuron["vDecay"], layer.neuron["vThMant"] * 64
    v, out = np.zeros(a.shape[1:], np.int64), []
    for t in range(a.shape[0]):
        v = np.trunc(v * keep / 4096).astype(np.int64) + (a[t - 1] if t else 0)
        s = v >= th
        v = v - th * s  # subtract: u_t = I_t + lambda (u_{t-1} - theta o_{t-1})
        out.append(s)
    ref = np.array(out).astype(np.int64)
    assert ref.sum() > 0 and (ref != 0).any()
    np.testing.assert_array_equal(got["spikes"][layer.name], ref)


def _stock_run(net, x):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer

    data = np.concatenate([x, np.zeros_like(x[:1])]).transpose(3, 2, 1, 0)  # (x, y, c, T+1)
    src = RingBuffer(data=data.astype(np.int32))
    src.s_out.connect(net.inp)
    try:
        net.run(condition=RunSteps(num_steps=x.shape[0] + 1),
                run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        v = net.layers[-1].neuron.v.get()
    finally:
        net.stop()
    return v / 4096.0


def test_stock_netx_on_count_input(tmp_path):
    """Event counts (values up to 3): the file records its input message bits, and stock netx
    built with them (snnc's `stock_network`) equals the PyTorch backend; netx's own default
    (0 bits) binarises the counts, which is why the file records them (docs/lava.md)."""
    import h5py
    from lava.lib.dl import netx

    from snnc.backends.lava.sim import stock_network

    g = nets.compile_net(nets.SeqConv(bias=False))
    path = lava.export(g, tmp_path)
    with h5py.File(path, "r") as f:
        assert f.attrs["input_message_bits"] == 16 and f.attrs["bias_start"] == 1
    x = np.random.default_rng(3).integers(0, 4, (nets.T, *nets.SHAPE)).astype(np.float32)
    assert x.max() > 1
    _, y = nets.torch_reference(g, x)
    v = _stock_run(stock_network(path), x)
    assert np.abs(y).sum() > 0
    np.testing.assert_array_equal(v, y * nets.T)
    binarised = _stock_run(netx.hdf5.Network(net_config=str(path)), x)
    assert not np.array_equal(binarised, y * nets.T)
