"""The conversion passes: one module per rewrite, each registering one pass (docs/passes.md).

    from snnc.passes import load_builtin_passes, parse_pass_spec
    load_builtin_passes()                        # {"annotate-skips": fn, "fold-bn": fn, ...}
    spec = parse_pass_spec("lower-residual{mode=v2v}")

Modules with a leading underscore and `pipeline` (which orders the passes) register none. The
registry itself is the IR core's (snnc.compiler.core.passmanager), below this package.
"""

from __future__ import annotations

import importlib
import pkgutil

from snnc.compiler.core import passmanager as _pm


def load_builtin_passes() -> dict[str, _pm.PassFn]:
    """Import every module of snnc.passes so that their passes register; return the registry."""
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return _pm.PASSES


def parse_pass_spec(spec: str) -> _pm.PassSpec:
    """`snnc.compiler.core.passmanager.parse_pass_spec` with the built-in passes loaded."""
    if ":" not in spec.partition("{")[0]:
        load_builtin_passes()
    return _pm.parse_pass_spec(spec)
