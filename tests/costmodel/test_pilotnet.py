"""Loihi 2 core estimate of lava-dl's PilotNet SNN next to the 74 cores Intel's compiler used
(hardware-targets.md sec. 2). The file lives in ../shared (CI has it; a user checkout does not)."""

from pathlib import Path

import pytest

NET = Path(__file__).resolve().parents[3] / "shared" / "data" / "lava-dl" / "pilotnet_snn.net"


@pytest.mark.skipif(not NET.is_file(), reason="needs ../shared/data/lava-dl (present in CI)")
def test_pilotnet_loihi2_cores():
    from snnc.costmodel.netx import loihi2_cores

    est = loihi2_cores(NET)
    # Intel's per-core table: input 13, conv 25/13/3/3/2, dense 12/1/1/1 = 74.
    convs = [v for k, v in est["layers"].items() if "conv" in k or "input" in k]
    assert convs == [13, 25, 13, 3, 3, 2]  # model fitted on this table (D), see docs
    dense = [v for k, v in est["layers"].items() if "dense" in k]
    assert dense == [13, 1, 1, 1]  # Intel: 12 (sparse SynMem counts only non-zero weights)
    assert est["cores"] == 75 and not est["violations"]
