"""The op table: every IR op once, with its ports, attributes, form and who handles it.

    from snnc.compiler.core.ops import OPS, supported
    OPS["lif"].ports          # '0: input current; >= 1: S2M / V2V residual inputs'
    supported("nir")          # frozenset of ops the NIR emitter handles

Everything else is derived from or checked against this table (tests/compiler/test_ops.py):
`SPIKING_OPS` and `WEIGHTED_OPS` (ir), the ONNX and torch.fx importers' accepted sources (a
converter for a source the table does not name fails at import), the Lava and NIR emitters'
coverage (an op the table marks unsupported is refused before lowering, naming the table's
reason), and the op support table of docs/ir.md (`python -m snnc.compiler.core.ops` prints it).
Each component either has a rule for an op (shape rule, payload rule, interpreter rule, PyTorch
builder, cost rule, emitter branch) or the table lists the op as deliberately unsupported by
it, with the reason. A data module of the IR core: it imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Components that handle ops (docs/ir.md "Op support"). fx sources: dotted names of torch
# modules / functions (resolved by the fx front end), or Tensor method names (no dot).
COMPONENTS = ("shape", "payload", "interpret", "pytorch", "cost", "lava", "nir")

_ANN_ONLY = "ANN form only: relu-to-lif turns it into a lif"
_SPIKING = "a spiking op: the ANN interpreter runs ANN form; the PyTorch backend runs SNN form"
_SNN_EMIT = "emitters take SNN form"


@dataclass(frozen=True)
class Op:
    """One IR op (docs/ir.md "Ops")."""

    name: str
    form: str  # "ann": ANN form only; "both": either form; "snn": SNN form only
    ports: str
    attrs: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    weighted: bool = False
    onnx: tuple[str, ...] = ()  # ONNX op types imported as this op
    fx: tuple[str, ...] = ()  # torch modules / functions / Tensor methods traced as this op
    unsupported: dict[str, str] = field(default_factory=dict)  # component -> why not

    def supports(self, component: str) -> bool:
        """True when `component` handles this op."""
        if component not in COMPONENTS:
            raise KeyError(f"unknown component '{component}' (one of {', '.join(COMPONENTS)})")
        return component not in self.unsupported


_TABLE = (
    Op("input", "both", "-",
       unsupported={"shape": "its shape is the graph's signature, checked by verify"}),
    Op("conv2d", "both", "x",
       ("in", "out", "k", "stride", "pad", "dilation", "groups", "bias"), ("weight", "bias"),
       weighted=True, onnx=("Conv",), fx=("torch.nn.Conv2d",)),
    Op("linear", "both", "x", ("in", "out", "bias"), ("weight", "bias"), weighted=True,
       onnx=("Gemm", "MatMul"), fx=("torch.nn.Linear",)),
    Op("batchnorm", "both", "x", ("eps",), ("weight", "bias", "running_mean", "running_var"),
       onnx=("BatchNormalization",), fx=("torch.nn.BatchNorm2d", "torch.nn.BatchNorm1d")),
    Op("relu", "ann", "x", onnx=("Relu",),
       fx=("torch.nn.ReLU", "torch.nn.functional.relu", "torch.relu", "torch.relu_",
           "torch.nn.functional.relu_", "relu", "relu_"),
       unsupported={"lava": _ANN_ONLY, "nir": _ANN_ONLY}),
    Op("clip", "ann", "x", ("min", "max"), onnx=("Clip",),
       fx=("torch.nn.ReLU6", "torch.nn.Hardtanh", "torch.nn.functional.relu6",
           "torch.nn.functional.hardtanh", "torch.nn.functional.hardtanh_", "torch.clamp",
           "torch.clip", "clamp", "clamp_", "clip", "clip_"),
       unsupported={"lava": _ANN_ONLY, "nir": _ANN_ONLY}),
    Op("add", "both", "x0, x1, ...", onnx=("Add", "Sum"),
       fx=("operator.add", "operator.iadd", "torch.add", "add", "add_")),
    Op("concat", "both", "x0, x1, ...", ("axis",), onnx=("Concat",),
       fx=("torch.cat", "torch.concat")),
    Op("maxpool", "both", "x", ("k", "stride", "pad", "dilation", "ceil"), onnx=("MaxPool",),
       fx=("torch.nn.MaxPool2d", "torch.nn.functional.max_pool2d"),
       unsupported={"lava": "max pooling has no Loihi synapse; lower it to average (sum) "
                            "pooling before export (maxpool-to-avgpool)",
                    "nir": "no max in snnc's NIR lowering: lower it with maxpool-to-avgpool"}),
    Op("avgpool", "both", "x", ("k", "stride", "pad", "ceil", "count_include_pad"),
       onnx=("AveragePool",), fx=("torch.nn.AvgPool2d", "torch.nn.functional.avg_pool2d")),
    Op("adaptive_avgpool", "both", "x", ("out",), onnx=("GlobalAveragePool", "ReduceMean"),
       fx=("torch.nn.AdaptiveAvgPool2d", "torch.nn.functional.adaptive_avg_pool2d",
           "torch.mean", "mean")),
    Op("flatten", "both", "x", ("start",), onnx=("Flatten",),
       fx=("torch.nn.Flatten", "torch.flatten", "flatten")),
    Op("reshape", "both", "x", ("shape",), onnx=("Reshape", "Squeeze", "Unsqueeze"),
       fx=("torch.reshape", "view", "reshape"),
       unsupported={"nir": "NIR has no reshape node (a flatten is exported)"}),
    Op("dropout", "both", "x", ("p",), onnx=("Dropout",),
       fx=("torch.nn.Dropout", "torch.nn.Dropout2d", "torch.nn.functional.dropout",
           "torch.nn.functional.dropout2d")),
    Op("identity", "both", "x", onnx=("Identity",), fx=("torch.nn.Identity", "contiguous")),
    Op("encoder", "snn", "0: input", ("kind", "seed"),
       unsupported={"interpret": _SPIKING}),
    Op("lif", "snn", "0: input current; >= 1: S2M / V2V residual inputs",
       ("leak", "vth", "reset", "fire", "surrogate", "alpha", "width", "v_init"),
       unsupported={"interpret": _SPIKING}),
    Op("bntt", "snn", "0: x", ("eps", "timesteps"),
       ("weight", "bias", "running_mean", "running_var"),
       unsupported={"interpret": _SPIKING,
                    "lava": "BNTT keeps per-time-step statistics, which a Loihi neuron "
                            "cannot hold; compile without BNTT (--bn fold) for the Lava backend",
                    "nir": "per-step statistics have no NIR node: compile with --target nir "
                           "(BN folded) or --bn fold"}),
    Op("readout", "snn", "0: I_t", (), unsupported={"interpret": _SPIKING}),
    Op("vote", "snn", "0: x [N, k*C]", ("k",),
       unsupported={"interpret": _SPIKING,
                    "lava": "boosting's vote is computed on the host from the readouts",
                    "nir": "boosting's vote has no NIR node"}),
)

OPS: dict[str, Op] = {op.name: op for op in _TABLE}
SPIKING_OPS = frozenset(op.name for op in _TABLE if op.form == "snn")
WEIGHTED_OPS = frozenset(op.name for op in _TABLE if op.weighted)
ONNX_SOURCES: dict[str, str] = {src: op.name for op in _TABLE for src in op.onnx}
FX_SOURCES: dict[str, str] = {src: op.name for op in _TABLE for src in op.fx}


def supported(component: str) -> frozenset[str]:
    """The ops `component` (one of COMPONENTS) handles."""
    return frozenset(op.name for op in _TABLE if op.supports(component))


def why_unsupported(op: str, component: str) -> str | None:
    """The table's reason why `component` does not handle `op` (None if it does)."""
    spec = OPS.get(op)
    if spec is None:
        return f"'{op}' is not an IR op (compiler/core/ops.py)"
    return spec.unsupported.get(component)


def markdown() -> str:
    """The op support table of docs/ir.md, generated from OPS."""
    head = ["op", "form", "ONNX", "torch.fx sources", *COMPONENTS]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for op in _TABLE:
        cells = [f"`{op.name}`", "ANN, SNN" if op.form == "both" else op.form.upper(),
                 ", ".join(op.onnx) or "-", str(len(op.fx)) if op.fx else "-"]
        cells += ["yes" if op.supports(c) else "no" for c in COMPONENTS]
        rows.append("| " + " | ".join(cells) + " |")
    notes = [f"- `{op.name}` / {c}: {why}" for op in _TABLE for c, why in op.unsupported.items()]
    return "\n".join(rows) + "\n\nWhy not:\n\n" + "\n".join(notes) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
