"""Target files: schema, statuses, variants, user targets (docs/design.md "Targets")."""

import pytest

from snnc.compiler.errors import TargetError
from snnc.compiler.targets import STATUSES, available_targets, load_target

NAMES = ["cmos45", "generic", "loihi1", "loihi1-sanafe", "loihi2", "nir", "speck", "truenorth"]


def test_builtin_targets_listed():
    assert set(NAMES) <= set(available_targets())


@pytest.mark.parametrize("name", NAMES)
def test_every_constant_is_sourced(name):
    t = load_target(name)
    assert t.constants
    for c in t.constants.values():
        assert c.status in STATUSES and c.source, c
        if c.band is not None:
            assert c.band[0] <= c.band[1]


def test_loihi2_energies_unusable():
    t = load_target("loihi2")
    energy = t.section("energy")
    assert energy and all(not c.usable for c in energy.values())
    assert t.graded_bits == 24 and t.reset == "zero" and t.fire == "gt"
    assert t.decay_denominator == 4096 and t.synaptic_delay == 1 and t.weight_bits == 8


def test_loihi1_davies_constants():
    t = load_target("loihi1")
    assert t.value("energy.synop") == pytest.approx(23.6e-12)
    assert t.get("energy.synop").transcribed
    assert t.limits["synapse_bits_per_core"] == 1048576
    assert not t.graded_spikes and t.graded_bits == 0


def test_cmos45_variants():
    fp32, int8 = load_target("cmos45"), load_target("cmos45:int8")
    assert fp32.variant == "fp32" and int8.variant == "int8"
    assert fp32.value("energy.mac") == pytest.approx(4.6e-12)
    assert int8.value("energy.mac") == pytest.approx(0.23e-12)
    assert int8.weight_bits == 8
    with pytest.raises(TargetError, match="no variant 'int4'"):
        load_target("cmos45:int4")


def test_unknown_target_lists_known():
    with pytest.raises(TargetError) as err:
        load_target("loihi3")
    assert "loihi1" in str(err.value) and "speck" in str(err.value)


def test_user_target_file_and_dir(tmp_path, monkeypatch):
    f = tmp_path / "mychip.yaml"
    f.write_text("target: mychip\nneuron:\n  fire: {value: gt, source: me, status: P}\n"
                 "energy:\n  synop: {value: 1.0e-12, unit: J, source: me, status: D}\n")
    assert load_target(str(f)).fire == "gt"
    monkeypatch.setenv("SNNC_TARGETS", str(tmp_path))
    assert "mychip" in available_targets()
    assert load_target("mychip").value("energy.synop") == 1.0e-12


@pytest.mark.parametrize("body,match", [
    ("nothing: 1\n", "no 'target:'"),
    ("target: x\nenergy:\n  synop: 3\n", "must be a mapping"),
    ("target: x\nenergy:\n  synop: {value: 1, status: Q}\n", "status 'Q'"),
    ("target: x\nenergy:\n  synop: {value: null, status: P}\n", "no value"),
    ("target: x\nenergy:\n  synop: {value: 1, band: [2, 1], status: P}\n", "lo<=hi"),
])
def test_bad_target_files(tmp_path, body, match):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(TargetError, match=match):
        load_target(str(f))
