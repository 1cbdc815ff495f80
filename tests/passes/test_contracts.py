"""Executable pass contracts: register_pass(requires=..., ensures=...) checked by run_pipeline
(docs/passes.md "Contracts")."""

from __future__ import annotations

from pathlib import Path

import pytest

from snnc.compiler.core import passmanager as pm
from snnc.compiler.core.conditions import Condition, failure, form_is, lacks_ops
from snnc.compiler.core.errors import PassFailed, SnncError
from snnc.compiler.core.ir import Form, Graph
from snnc.compiler.core.text import parse
from snnc.passes import load_builtin_passes, parse_pass_spec
from snnc.passes.pipeline import conversion_pipeline

GOLDEN = Path(__file__).parent / "golden"
BASIC = (GOLDEN / "relu_to_lif" / "basic.before.snnc").read_text()  # ANN form, one relu


def test_every_builtin_pass_has_checks():
    passes = load_builtin_passes()
    bare = sorted(n for n, fn in passes.items() if not (fn.requires or fn.ensures))
    assert not bare, f"passes without requires/ensures: {bare}"
    for name, fn in passes.items():
        assert "checked requires:" in pm.describe(fn), name


def test_violated_requires_names_the_pass_and_the_condition():
    ann = parse(BASIC)
    assert ann.form is Form.ANN
    with pytest.raises(PassFailed) as err:
        pm.run_pipeline(ann, [parse_pass_spec("lower-residual")])
    msg = str(err.value)
    assert "pass 'lower-residual' requires SNN form" in msg and "ANN form" in msg
    # after the pass it depends on, the same pass runs
    snn = pm.run_pipeline(ann, [parse_pass_spec("relu-to-lif"),
                                parse_pass_spec("lower-residual")])
    assert snn.form is Form.SNN and snn.attrs["lowered"] is True


def test_conditions_read_the_pass_options():
    ann = parse(BASIC)
    snn = pm.run_pipeline(ann, [parse_pass_spec("relu-to-lif"), parse_pass_spec("readout")])
    with pytest.raises(PassFailed, match=r"'legalize-graded' requires no ASC edge"):
        pm.run_pipeline(snn, [parse_pass_spec("legalize-graded")])
    snn = pm.run_pipeline(snn, [parse_pass_spec("lower-residual"),
                                parse_pass_spec("encode{kind=poisson}"),
                                parse_pass_spec("annotate-payloads")])
    # legalize-graded's ensure depends on its target option: a graded target needs no attr
    out = pm.run_pipeline(snn, [parse_pass_spec("legalize-graded{target=loihi2}")])
    assert "legalized" not in out.attrs
    out = pm.run_pipeline(snn, [parse_pass_spec("legalize-graded{target=loihi1}")])
    assert out.attrs["legalized"] == "loihi1"


def test_the_names_of_passes_already_run_are_in_the_error():
    ann = parse(BASIC)
    with pytest.raises(PassFailed, match=r"ran after: maxpool-to-avgpool"):
        pm.run_pipeline(ann, [parse_pass_spec("maxpool-to-avgpool"), parse_pass_spec("encode")])


def _identity(g: Graph) -> Graph:
    return g


def test_a_user_pass_breaking_its_ensures_is_a_user_error(monkeypatch):
    monkeypatch.setattr(pm, "PASSES", {})
    fn = pm.register_pass("no-op", ensures=[form_is(Form.SNN)])(_identity)
    fn.__module__ = "my_passes"
    with pytest.raises(PassFailed, match=r"pass 'no-op' ensures SNN form.*my_passes\._identity"):
        pm.run_pipeline(parse(BASIC), [fn])


def test_a_builtin_breaking_its_ensures_is_a_bug(monkeypatch):
    passes = load_builtin_passes()
    broken = Condition("never", lambda g: "it is broken on purpose")
    monkeypatch.setattr(passes["snn-attrs"], "ensures", (broken,))
    with pytest.raises(pm.PassContractError, match=r"pass 'snn-attrs' ensures never"):
        pm.run_pipeline(parse(BASIC), [parse_pass_spec("snn-attrs")])


def test_plain_functions_as_conditions():
    g = parse(BASIC)
    assert failure(lambda g: g.form is Form.ANN, g) is None
    assert failure(lambda g: False, g) == "it does not hold"
    assert failure(lambda g, opts: "k" in opts or "no k", g, {"k": 1}) is None
    assert failure(lacks_ops("relu"), g).startswith("nodes '")


@pytest.mark.parametrize("target", ["generic", "loihi1", "loihi2", "truenorth"])
def test_every_ensure_holds_through_the_pipeline(target):
    from snnc.compiler.core.options import Options

    out = pm.run_pipeline(parse(BASIC), conversion_pipeline(Options(target=target, timesteps=4)))
    assert out.form is Form.SNN


def test_verified_once_per_pipeline_gives_what_verifying_each_pass_gives():
    """snnc's own passes are verified once, at the end of the pipeline (docs/passes.md
    "Contracts"): the same graph as with the verifier after every pass, itself verified."""
    from snnc.compiler.core.options import Options
    from snnc.compiler.core.text import print_ir

    for target in ("generic", "loihi1"):
        passes = conversion_pipeline(Options(target=target, timesteps=4))
        fast = pm.run_pipeline(parse(BASIC), passes)
        each = pm.run_pipeline(parse(BASIC), passes, verify_each=True)
        assert fast == each and print_ir(fast) == print_ir(each)
        assert fast._index.get("verified")


def test_a_broken_builtin_graph_is_named_as_when_verifying_each_pass(monkeypatch):
    """A built-in pass whose graph the verifier rejects, masked by the passes after it: the
    pipeline runs again verifying each pass and names that pass, as it always did."""
    from dataclasses import replace

    from snnc.compiler.core.ir import Node

    passes = load_builtin_passes()
    real = passes["snn-attrs"]

    def broken(g, **kw):  # a wrong shape on the last node, which no later pass repairs
        out = real(g, **kw)
        b = out.edit()
        last = out.nodes[-1]
        b.replace_node(replace(last, shape=(*last.shape[:-1], last.shape[-1] + 1)))
        return b.build()

    for attr in ("pass_name", "requires", "ensures", "__module__", "__wrapped__"):
        if hasattr(real, attr):
            setattr(broken, attr, getattr(real, attr))
    broken.__signature__ = __import__("inspect").signature(real)
    monkeypatch.setitem(pm.PASSES, "snn-attrs", broken)
    specs = [parse_pass_spec("maxpool-to-avgpool"), parse_pass_spec("snn-attrs"),
             parse_pass_spec("relu-to-lif")]
    seen = []
    with pytest.raises(SnncError) as fast:
        pm.run_pipeline(parse(BASIC), specs, progress=seen.append)
    with pytest.raises(SnncError) as each:
        pm.run_pipeline(parse(BASIC), specs, verify_each=True)
    assert str(fast.value) == str(each.value)
    assert type(fast.value) is type(each.value)
    assert str(fast.value).startswith("in pass 'snn-attrs' (ran after: maxpool-to-avgpool)")
    assert seen == ["maxpool-to-avgpool", "snn-attrs", "relu-to-lif"]  # announced once
