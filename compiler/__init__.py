"""snnc's compiler: the IR, the front ends, the pass manager and the public API.

    from snnc.compiler import compile, load
    c = compile("model.onnx", residual="s2s", target="loihi2", timesteps=8)
"""

from snnc.compiler.api import Compiled, Options, compile, import_ann, load
from snnc.compiler.errors import SnncError
from snnc.compiler.ir import Edge, EdgeKind, Form, Graph, Node, Payload
from snnc.compiler.text import parse, print_ir
from snnc.compiler.verify import verify

__all__ = ["compile", "load", "Compiled", "Options", "import_ann", "SnncError", "Graph", "Node",
           "Edge", "EdgeKind", "Form", "Payload", "parse", "print_ir", "verify"]
