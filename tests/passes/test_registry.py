"""The pass registry agrees with passes/: names, functions, contracts, options."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import snnc.passes as pkg
from snnc.compiler.core.passmanager import PASSES, describe
from snnc.passes import load_builtin_passes, parse_pass_spec

NOT_PASSES = {"pipeline"}  # orders passes; registers none
OTHERS = {"fold_bn"}  # written separately; checked by its own tests


def _modules():
    return [m.name for m in pkgutil.iter_modules(pkg.__path__)
            if not m.name.startswith("_") and m.name not in NOT_PASSES | OTHERS]


@pytest.mark.parametrize("mod_name", _modules())
def test_module_registers_its_pass(mod_name):
    load_builtin_passes()
    mod = importlib.import_module(f"snnc.passes.{mod_name}")
    fns = [f for f in vars(mod).values()
           if callable(f) and getattr(f, "pass_name", None) and f.__module__ == mod.__name__]
    assert len(fns) == 1, f"passes/{mod_name}.py should register exactly one pass"
    fn = fns[0]
    assert fn.__name__ == mod_name and fn.pass_name == mod_name.replace("_", "-")
    assert PASSES[fn.pass_name] is fn
    doc = inspect.getdoc(fn)
    for word in ("Requires:", "Guarantees:", "Implements:"):
        assert word in doc, f"{fn.pass_name}: docstring lacks {word}"
    params = list(inspect.signature(fn).parameters.values())
    assert params[0].name == "g"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    assert "options:" in describe(fn)


def test_pipeline_names_registered_passes():
    from snnc.passes.pipeline import conversion_pipeline

    for target in ("generic", "loihi1", "loihi2", "truenorth"):
        for spec in conversion_pipeline(target=target, boost=True, bntt=False):
            assert PASSES.get(spec.name) is spec.fn


def test_cli_spec_reaches_the_pass():
    spec = parse_pass_spec("lower-residual{mode=v2v, v2v_fallback=s2s}")
    assert spec.options == {"mode": "v2v", "v2v_fallback": "s2s"}
    assert spec.fn is PASSES["lower-residual"]
