"""Measured mode: SOPs counted event by event from recorded synaptic inputs
(docs/costmodel.md "Measured mode").

An activity profile with ``inputs`` (recorded by a backend, e.g. the PyTorch backend's
``record_activity``) holds, per synaptic input, the number of non-zero events of each input
element summed over samples and steps (``events``), the same restricted to calls with a value
outside {-1, 0, 1} (``graded_events``) and the sum of its values (``values``). With the layer's
exact fan-out maps (padding, stride, groups, dilation: `connectivity`) the counts are dot
products, per sample:

* ``sops`` / ``graded_sops`` = events . fan-out (every synapse exists on the chip, zero weights
  too), binary or graded by the input's payload;
* NeuroBench's effective operations = events . non-zero-weight fan-out (inputs and weights
  binarised), split into ACs and MACs by the per-call test of graded_events;
* sinabs' synops = values . fan-out (x k^2 behind an average pool, sinabs' rule).
"""

from __future__ import annotations

import numpy as np

from snnc.compiler.core.ir import Graph, Node
from snnc.costmodel.connectivity import Conn, connectivity, tap_positions


def _axis_onehot(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """[k, n_in]: 1 where tap k reads input position i at some output position."""
    pos = tap_positions(n_in, n_out, k, stride, pad, dil)
    out = np.zeros((k, n_in), dtype=np.int64)
    for t in range(k):  # k taps: a loop over the kernel, not over events
        p = pos[t]
        np.add.at(out[t], p[(p >= 0) & (p < n_in)], 1)
    return out


def nonzero_fanout(g: Graph, node: Node) -> np.ndarray | None:
    """The fan-out of every input element counting only non-zero weights (NeuroBench's
    binarised layer), shaped like one input sample; None without weights."""
    key = node.param("weight")
    if key is None or g.params is None or g.param(key) is None:
        return None
    import torch

    w = torch.as_tensor(g.param(key)) != 0
    c = connectivity(g, node)
    if node.op == "linear":
        return w.sum(0).numpy().astype(np.int64)
    return _conv_nonzero(c, node, w.numpy())


def _conv_nonzero(c: Conn, node: Node, nz: np.ndarray) -> np.ndarray:
    a = node.attrs
    _, cin, h, wd = c.in_shape
    _, cout, ho, wo = node.shape
    k = a.get("k", (1, 1))
    kh, kw = (k, k) if isinstance(k, int) else k
    s = a.get("stride", (1, 1))
    d = a.get("dilation", (1, 1))
    s = (s, s) if isinstance(s, int) else s
    d = (d, d) if isinstance(d, int) else d
    pad = tuple(a.get("pad", (0, 0, 0, 0)))
    groups = int(a.get("groups", 1))
    # K[c, i, j]: non-zero weights of tap (i, j) from input channel c over its group's outputs
    K = nz.reshape(groups, cout // groups, cin // groups, kh, kw).sum(1, dtype=np.int64)
    K = K.reshape(cin, kh, kw)
    A = _axis_onehot(h, ho, kh, s[0], pad[0], d[0])
    B = _axis_onehot(wd, wo, kw, s[1], pad[1], d[1])
    return np.einsum("cij,ih,jw->chw", K, A, B, dtype=np.int64)


def count_input(rec, fan: np.ndarray, fan_nz: np.ndarray | None, samples: int):
    """(events per sample, SOPs, NeuroBench ACs, NeuroBench MACs, value-weighted synops) of one
    recorded input `rec` read through fan-out maps `fan` (all synapses) and `fan_nz` (non-zero
    weights; None = all)."""
    ev = np.asarray(rec.events, dtype=np.int64).reshape(fan.shape)
    gev = np.asarray(rec.graded_events, dtype=np.int64).reshape(fan.shape)
    val = np.asarray(rec.values, dtype=np.float64).reshape(fan.shape)
    nzf = fan if fan_nz is None else fan_nz.reshape(fan.shape)
    sops = int((ev * fan).sum())
    nb = int((ev * nzf).sum())
    nb_mac = int((gev * nzf).sum())
    syn = float((val * fan).sum())
    n = max(1, samples)
    return ev.sum() / n, sops / n, (nb - nb_mac) / n, nb_mac / n, syn / n
