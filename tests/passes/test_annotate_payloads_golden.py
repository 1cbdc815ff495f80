"""Golden text cases of pass 'annotate-payloads' (tests/passes/golden/annotate_payloads/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.annotate_payloads import annotate_payloads


@pytest.mark.parametrize("case", golden_cases("annotate_payloads"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, annotate_payloads, update_golden)


def test_payload_map_left_for_the_verifier_is_the_one_it_derives(monkeypatch):
    """annotate-payloads leaves on its unverified result the node payload map it marked every
    edge by (`_index["payload_facts"]`); `verify` takes that map instead of deriving it again
    (compiler/core/verify.py). The map is the one verified from scratch; a graph derived
    from the result carries no such map, and a wrong mark there is found."""
    import dataclasses

    from snnc.compiler.api import compile as snnc_compile
    from snnc.compiler.core import verify as verify_mod
    from snnc.compiler.core.errors import VerifyError
    from snnc.compiler.core.ir import Payload, deferred_verify

    g = snnc_compile("zoo:resnet20").graph
    with deferred_verify():  # as in the pipeline: the result is verified once, at its end
        out = annotate_payloads(g.with_edges([e.moved(payload=None) for e in g.edges]))
    facts = out._index["payload_facts"]
    scratch = verify_mod.verify(dataclasses.replace(out))
    assert facts == scratch._index["payloads"] and out.edges == g.edges

    calls = []
    real = verify_mod.edge_payload
    with monkeypatch.context() as m:  # the verifier derives no edge's payload here
        m.setattr(verify_mod, "edge_payload", lambda *a: calls.append(a) or real(*a))
        assert verify_mod.verify(out) is out and not calls
    assert out._index["payloads"] is facts and "payload_facts" not in out._index

    e = next(e for e in out.edges if e.payload is Payload.BINARY)
    with deferred_verify():
        wrong = out.with_edges([x.moved(payload=Payload.GRADED) if x is e else x
                                for x in out.edges])
    assert "payload_facts" not in wrong._index
    with pytest.raises(VerifyError, match="is marked graded but carries binary values"):
        verify_mod.verify(wrong)
