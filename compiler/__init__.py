"""snnc's compiler: the IR core (snnc.compiler.core), the front ends, the public API and CLI.

    from snnc.compiler import compile, load
    c = compile("model.onnx", residual="s2s", target="loihi2", timesteps=8)

Importing this package imports only the IR core; the API (`compile`, `load`, `to_torch`,
`cost_report`, `find_blocks`, ...) is imported on first use (PEP 562), so that
`import snnc.compiler.core.ir` never pulls in the layers above it (docs/architecture.md). The IR core's modules keep their old paths: `snnc.compiler.ir` *is*
`snnc.compiler.core.ir` (and so on for each name in `MOVED`).
"""

import importlib
import importlib.abc
import importlib.util
import sys


# The public API beyond the IR core's types, imported on first use: name -> (module, attr).
# snnc.search uses only these names (an import-linter contract, docs/architecture.md).
_API = {
    **{n: ("snnc.compiler.api", n) for n in ("compile", "load", "train", "Compiled",
                                             "import_ann", "cost_report")},
    "Options": ("snnc.compiler.core.options", "Options"),
    "cli_options": ("snnc.compiler.core.options", "cli_options"),
    "find_blocks": ("snnc.compiler.core.blocks", "find_blocks"),
    "set_block": ("snnc.compiler.core.blocks", "set_block"),
    # not `interpret`: that name is the old path of the module snnc.compiler.core.interpret
    "run_ann": ("snnc.compiler.core.interpret", "interpret"),
    "load_target": ("snnc.compiler.targets", "load_target"),
    "to_torch": ("snnc.backends.pytorch", "build_module"),
    # what `train` does to the data and the lr, for code that trains an ANN beside it
    "split_val": ("snnc.backends.pytorch.training", "split_val"),
    "cosine_step": ("snnc.backends.pytorch.training", "cosine_step"),
}
# Modules that moved into snnc.compiler.core; their old paths import the same module object.
MOVED = ("ir", "shapes", "payload", "verify", "text", "serialize", "errors", "blocks",
         "blocks_channels", "blocks_detect", "blocks_write", "interpret", "passmanager",
         "options")

__all__ = ["compile", "load", "train", "Compiled", "Options", "import_ann", "cost_report",
           "cli_options", "find_blocks", "set_block", "run_ann", "to_torch", "load_target",
           "split_val", "cosine_step", "SnncError", "Graph",
           "Node", "Edge", "EdgeKind", "Form", "Payload", "parse", "print_ir", "verify"]


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import snnc.compiler.X` for X in MOVED returns `snnc.compiler.core.X` itself."""

    def find_spec(self, name, path=None, target=None):
        head, _, tail = name.rpartition(".")
        if head == __name__ and tail in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.core.{spec.name.rpartition('.')[2]}")
        spec.loader_state = module.__spec__  # the import system sets __spec__ to `spec`
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state


if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
    sys.meta_path.insert(0, _OldPaths())
# Bind the old module path first, so that the function `verify` below wins the attribute.
importlib.import_module(f"{__name__}.verify")

from snnc.compiler.core.errors import SnncError  # noqa: E402
from snnc.compiler.core.ir import Edge, EdgeKind, Form, Graph, Node, Payload  # noqa: E402
from snnc.compiler.core.text import parse, print_ir  # noqa: E402
from snnc.compiler.core.verify import verify  # noqa: E402


def __getattr__(name: str):
    """The API's names (`_API`), imported when first asked for."""
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'snnc.compiler' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_API))
