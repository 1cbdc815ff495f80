"""Build a Lava process graph from a plan / HDF5 file and run it in Loihi 2's CPU simulator.

snnc's loader: one ``LIF`` process per layer (``du = iDecay − 1``, ``dv = vDecay``,
``vth = vThMant``, ``bias_mant`` with exponent 6, exactly as netx builds a CUBA block), and one
``Conv`` / ``Dense`` synapse process per synapse, every synapse's ``a_out`` connected to its
layer's ``a_in`` (Lava sums them). Conv kernels and geometry are transformed as netx does
(kernel flipped, (out, x, y, in), (x, y) order); dense synapses reading a conv layer see it
flattened in C, H, W order (``transpose([2, 1, 0]).flatten()``, as netx's ``flatten``).

What this verifies is Lava's bit-accurate simulator (``Loihi2SimCfg(select_tag="fixed_pt")``),
not Loihi 2 silicon.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snnc.backends.lava.hdf5 import INPUT_MESSAGE_BITS as GRADED_INPUT_BITS
from snnc.backends.lava.plan import Plan
from snnc.compiler.core.errors import SnncError


def stock_network(path: str | Path, **kwargs):
    """lava-dl's own ``netx.hdf5.Network`` for a sequential snnc file, with the input message
    bits the file records (``input_message_bits`` attribute; netx's default 0 would binarise
    event counts). The network applies biases from step 0: for a net with biases, run
    `Session` (which gates them at step 0) to match the PyTorch backend exactly."""
    import h5py
    from lava.lib.dl import netx

    with h5py.File(path, "r") as f:
        bits = int(f.attrs.get("input_message_bits", 0))
        if "layer" not in f:
            raise SnncError(f"{path}: a graph-layout file (skips, relays); stock netx reads only "
                            f"sequential files. Use snnc.backends.lava.sim.Session")
    return netx.hdf5.Network(net_config=str(path), input_message_bits=bits, **kwargs)


def _whc(shape) -> tuple[int, ...]:
    return tuple(int(s) for s in shape[::-1])


def _synapse(syn, src_shape, message_bits: int):
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense

    if syn.is_conv:
        w = syn.weight[:, :, ::-1, ::-1].transpose((0, 3, 2, 1))
        c = syn.conv
        return Conv(input_shape=_whc(src_shape), weight=np.ascontiguousarray(w),
                    stride=tuple(c["stride"][::-1]), padding=tuple(c["padding"][::-1]),
                    dilation=tuple(c["dilation"][::-1]), groups=int(c["groups"]),
                    num_message_bits=message_bits)
    w, bits, exp, _sign = optimize_weight_bits(syn.weight)
    return Dense(weights=w, num_weight_bits=bits, weight_exp=exp,
                 num_message_bits=message_bits)


def _bias(layer) -> np.ndarray:
    bias = np.zeros(_whc(layer.shape), np.int32)
    if layer.bias is not None:
        bias[...] = layer.bias.astype(np.int32)  # per channel: the last WHC axis
    return bias


RELAY_MESSAGE_BITS = 24  # a relay's graded spike (Loihi 2's graded payload width)


def _neuron(layer):
    from lava.proc.lif.process import LIF

    n = layer.neuron
    if n["type"] == "RELAY":  # backends/relay.py: payload = floor(a_in / 2**stateExp)
        from lava.proc.sdn.process import ActivationMode, SigmaDelta

        return SigmaDelta(shape=_whc(layer.shape), vth=0, bias=0,
                          act_mode=ActivationMode.UNIT, state_exp=int(n["stateExp"]))
    if n["type"] != "CUBA":
        raise SnncError(f"layer '{layer.name}': neuron type {n['type']!r} is not supported by "
                        f"snnc's Lava loader (CUBA only)")
    return LIF(shape=_whc(layer.shape), du=int(n["iDecay"]) - 1, dv=int(n["vDecay"]),
               vth=int(n["vThMant"]), bias_mant=_bias(layer), bias_exp=6)


class LavaNetwork:
    """The process graph of a plan: `neurons[i]` is layer i's LIF (i >= 1)."""

    def __init__(self, plan: Plan, spikes: np.ndarray, message_bits: int = 0,
                 probe_all: bool = False):
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source

        self.plan = plan
        self.probe_all = probe_all
        T = spikes.shape[0]
        data = np.moveaxis(spikes, 0, -1)  # (C,H,W,T) -> (x,y,c,T) below
        if data.ndim == 4:
            data = data.transpose(2, 1, 0, 3)
        self.source = Source(data=data.astype(np.int32))
        self.neurons = [None] + [_neuron(layer) for layer in plan.layers[1:]]
        self.bias = [None] + [_bias(layer) for layer in plan.layers[1:]]
        outs = [self.source.s_out] + [n.s_out for n in self.neurons[1:]]
        self.synapses = []
        for i, layer in enumerate(plan.layers[1:], start=1):
            for syn in layer.synapses:
                src_shape = plan.layers[syn.src].shape
                bits = message_bits if syn.src == 0 else 0
                if plan.layers[syn.src].op == "relay":
                    bits = RELAY_MESSAGE_BITS
                proc = _synapse(syn, src_shape, bits)
                port = outs[syn.src]
                if not syn.is_conv and len(src_shape) > 1:
                    port = port.transpose([2, 1, 0]).flatten()
                port.connect(proc.s_in)
                proc.a_out.connect(self.neurons[i].a_in)
                self.synapses.append(proc)
        self.sinks = {}
        for i in self.probes():
            sink = Sink(shape=self.neurons[i].s_out.shape, buffer=T)
            self.neurons[i].s_out.connect(sink.a_in)
            self.sinks[i] = sink

    def probes(self) -> list[int]:
        """Layers whose spikes are recorded: every output layer that fires, and every layer
        feeding a readout output (the last spiking layer); with `probe_all`, every lif layer
        (not the relays and bias units)."""
        if self.probe_all:
            return [i for i, layer in enumerate(self.plan.layers) if layer.op == "lif"]
        want = set()
        for v in self.plan.outputs.values():
            for i in v:
                layer = self.plan.layers[i]
                want |= {s.src for s in layer.synapses} if layer.readout else {i}
        return sorted(i for i in want if i > 0)


def import_lava_runtime() -> None:
    """Import Lava's runtime even after another library fixed multiprocessing's start method.

    Lava calls ``multiprocessing.set_start_method("fork")`` (without ``force``) when its
    runtime is first imported, which raises "context has already been set" once anything in
    the process fixed the default context -- tqdm's progress-bar lock does, so `snnc train`
    followed by a simulation in one process failed. When the context is already ``fork``
    (Linux's default), Lava's call is a no-op in effect and is let through."""
    import multiprocessing as mp
    import sys

    if "lava.magma.runtime.runtime" in sys.modules:
        return
    current = mp.get_start_method(allow_none=True)
    if current is None:
        import lava.magma.core.process.process  # noqa: F401
        return
    if current != "fork":
        raise SnncError(f"multiprocessing's start method is already '{current}'; Lava's "
                        f"runtime needs 'fork'. Import snnc.backends.lava.sim (or create the "
                        f"Session) before anything calls set_start_method.")
    original = mp.set_start_method
    mp.set_start_method = lambda method, force=False: (
        None if method == "fork" else original(method, force))
    try:
        import lava.magma.core.process.process  # noqa: F401
    finally:
        mp.set_start_method = original


class Session:
    """A compiled Loihi 2 simulation of one plan, reused across samples (context manager).

    Building and compiling the process graph costs seconds; each sample then runs T + 1 steps
    after its state (membranes, currents, synapse buffers) is zeroed. The extra step lets the
    readout integrate the last output spikes: the PyTorch backend's readout sums the delayed
    spikes of steps 0..T-1, which reach the readout neuron one synapse later.

    `probe_all` records every spiking layer (default: the output layers and the layers feeding
    a readout). `bias_start` = 1 (default) is snnc's per-sample protocol, the one the PyTorch
    backend's target-exact mode trains: the host zeroes the state, runs step 0 with every
    bias gated off (no synaptic input can have arrived yet: the input crosses one synapse),
    writes the biases back and runs steps 1..T, so no neuron integrates before the sample's
    first frame reaches layer 1. `bias_start` = 0 adds the biases from step 0 (a cold start);
    the two differ only for layers with a bias. Why 1 is the default, and its measured effect:
    docs/lava.md "Timing"."""

    def __init__(self, plan: Plan | str | Path, shape: tuple[int, ...], bias_start: int = 1,
                 probe_all: bool = False):
        import_lava_runtime()
        from snnc.backends.lava import hdf5
        from snnc.backends.lava.models import run_config

        self.plan = plan if isinstance(plan, Plan) else hdf5.read(plan)
        self.T = self.plan.timesteps
        self.steps = self.T + 1
        self.cfg = run_config(self.plan.semantics)
        # The input synapses always carry graded (integer) messages: a direct input's values,
        # or an event frame's per-pixel counts (> 1 when a pixel fired several times in the
        # frame's window); a binary spike is the message 1, so binary input is unchanged.
        bits = GRADED_INPUT_BITS
        self.net = LavaNetwork(self.plan, np.zeros((self.steps, *shape), np.int32), bits,
                               probe_all)
        self.bias_start = int(bias_start)
        self.biased = any(layer.bias is not None and np.any(layer.bias)
                          for layer in self.plan.layers[1:])
        self.started = False

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.started:
            self.net.source.stop()
            self.started = False

    def _bias(self, on: bool) -> None:
        for i, n in enumerate(self.net.neurons[1:], start=1):
            # bias units fire from step 0: a relay's bias is part of its value at every step
            if self.plan.layers[i].bias is not None and self.plan.layers[i].op != "bias":
                value = self.net.bias[i] if on else np.zeros(n.bias_mant.shape, np.int32)
                if self.started:
                    n.bias_mant.set(value)
                else:  # no runtime before the first run: set the initial value
                    n.bias_mant.init = value

    def _reset(self) -> None:
        for n in self.net.neurons[1:]:
            names = ("sigma", "act", "residue", "error") if hasattr(n, "sigma") else ("u", "v")
            for name in names:
                var = getattr(n, name)
                var.set(np.zeros(var.shape, np.int32))
        for s in self.net.synapses:
            buf = s.a_buf if hasattr(s, "a_buf") else s.a_buff
            buf.set(np.zeros(buf.shape, np.int32))

    def run(self, spikes: np.ndarray) -> dict:
        """One sample (T, C, H, W) or (T, F); see `run` for the result."""
        from lava.magma.core.run_conditions import RunSteps

        spikes = np.asarray(spikes)
        if spikes.shape[0] != self.T:
            raise SnncError(f"network '{self.plan.name}' runs T={self.T} steps; the input has "
                            f"{spikes.shape[0]}")
        if not np.array_equal(spikes, np.round(spikes)):
            raise SnncError(f"network '{self.plan.name}': the input must be integer-valued "
                            f"(binary spikes or event counts; Loihi's messages are integers), "
                            f"but it has fractional values. For graded images compile with "
                            f"a spiking encoder (--encoder poisson|events), or scale the input "
                            f"to integers and the first layer's weights down to match.")
        data = np.concatenate([spikes, np.zeros((1, *spikes.shape[1:]), spikes.dtype)])
        data = np.moveaxis(data, 0, -1)
        if data.ndim == 4:
            data = data.transpose(2, 1, 0, 3)
        src = self.net.source
        if self.started:
            self._reset()
            src.data.set(data.astype(np.int32))
        else:  # before the first run there is no runtime: set the initial value
            src.data.init = data.astype(np.int32)
        if self.bias_start and self.biased:
            self._bias(False)
            src.run(condition=RunSteps(num_steps=self.bias_start), run_cfg=self.cfg)
            self.started = True
            self._bias(True)
        src.run(condition=RunSteps(num_steps=self.steps - self.bias_start if self.biased
                                   else self.steps), run_cfg=self.cfg)
        self.started = True
        out: dict = {"spikes": {}, "voltage": {}}
        for i, sink in self.net.sinks.items():
            d = np.moveaxis(sink.data.get(), -1, 0)[:self.T]
            if d.ndim == 4:
                d = d.transpose(0, 3, 2, 1)
            out["spikes"][self.plan.layers[i].name] = np.rint(d).astype(np.int64)
        for i, layer in enumerate(self.plan.layers):
            if layer.readout:
                v = self.net.neurons[i].v.get()
                v = v.transpose(2, 1, 0) if v.ndim == 3 else v
                out["voltage"][layer.name] = v.astype(np.float64) / (4096.0 * layer.scale)
        return out


def run(plan: Plan | str | Path, spikes: np.ndarray) -> dict:
    """Run one sample in Lava's Loihi 2 simulator (fixed point, CPU).

    `spikes` is (T, C, H, W) or (T, F): the encoder's output (binary; integers for a graded
    input). Returns ``{"spikes": {layer name: (T, *shape) int}, "voltage": {readout name: its
    accumulated membrane sum_t I_t (float, membrane units / 4096)}}``. Step t of the spikes is
    step t of the PyTorch backend's (delayed) lif output in target-exact mode. For many samples
    use `Session` (builds once)."""
    spikes = np.asarray(spikes)
    with Session(plan, spikes.shape[1:]) as s:
        return s.run(spikes)


def readouts(session: Session, samples, progress=None) -> np.ndarray:
    """The readout of every sample (N, T, ...) through one `Session`, as (N, classes) floats
    on the PyTorch backend's scale (the accumulated membrane / T, its ``u_T / T``): the
    network's logits, whose argmax is the predicted class. The graph must have exactly one
    readout output. `progress(i)` is called after sample i."""
    names = [layer.name for layer in session.plan.layers if layer.readout]
    if len(names) != 1:
        raise SnncError(f"network '{session.plan.name}' has {len(names)} readout layers; "
                        f"readouts() needs exactly one (read Session.run's 'voltage' instead)")
    out = []
    for i, x in enumerate(samples):
        out.append(session.run(np.asarray(x))["voltage"][names[0]] / session.T)
        if progress is not None:
            progress(i)
    return np.stack(out)
