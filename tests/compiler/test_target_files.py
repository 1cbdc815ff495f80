"""The target file is the only source of target policy (docs/targets.md): a renamed copy of a
shipped file, or the file given by path, compiles and runs exactly like the shipped name; a
misspelt key is an error naming the key and the file; the `nir` target's neuron is honoured."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from snnc.compiler import compile
from snnc.compiler.cli import main
from snnc.compiler.core.errors import TargetError
from snnc.compiler.targets import load_target
from snnc.compiler.targets.schema import LAVA_FIXED

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "models" / "examples" / "resnet20.onnx"  # 19 LIF layers after conversion
SHIPPED = ROOT / "compiler" / "targets"


@pytest.fixture(scope="module")
def user_targets(tmp_path_factory):
    """mychip2 (renamed, its `target:` line renamed too) and loihi2b (renamed file, content
    untouched: the old name test `startswith("loihi2")` gave it half the Loihi passes)."""
    d = tmp_path_factory.mktemp("targets")
    text = (SHIPPED / "loihi2.yaml").read_text()
    (d / "mychip2.yaml").write_text(text.replace("target: loihi2", "target: mychip2", 1))
    shutil.copy(SHIPPED / "loihi2.yaml", d / "loihi2b.yaml")
    return d


def _run(target, x):
    c = compile(str(EXAMPLE), residual="s2s", target=target, timesteps=2)
    m = c.to_torch().eval()
    with torch.no_grad():
        return c, m, m(x)


def test_renamed_copies_and_the_path_are_bit_identical_to_loihi2(user_targets, monkeypatch):
    monkeypatch.setenv("SNNC_TARGETS", str(user_targets))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ref, ref_m, ref_y = _run("loihi2", x)
    n_lif = len(ref.graph.by_op("lif"))
    assert n_lif == 19
    for target in ("mychip2", "loihi2b", str(SHIPPED / "loihi2.yaml"),
                   str(user_targets / "mychip2.yaml")):
        c, m, y = _run(target, x)
        assert c.graph.attrs["target"] == target
        same = dict(c.graph.attrs, target="loihi2")
        assert same == dict(ref.graph.attrs), target
        assert [n for n in c.graph.nodes] == [n for n in ref.graph.nodes], target
        assert c.graph.same_params(ref.graph), target
        assert torch.equal(y, ref_y), target  # bit-identical logits
        lifs = [layer for layer in m.layers.values() if hasattr(layer, "cfg")]
        fixed = [layer.cfg.fixed and (layer.cfg.reset, layer.cfg.fire) == ("zero", "gt")
                 for layer in lifs]
        assert len(lifs) == n_lif and all(fixed), (target, sum(fixed), n_lif)
        assert c.graph.attrs["arithmetic"] == "lava-fixed" and c.graph.attrs["weight_bits"] == 8


def test_cli_takes_the_file_by_path(tmp_path, user_targets, capsys):
    out = tmp_path / "o.snnc"
    code = main(["compile", str(EXAMPLE), "-T", "2", "--no-cost", "-o", str(out),
                 "--target", str(user_targets / "loihi2b.yaml")])
    assert code == 0, capsys.readouterr().err
    from snnc.compiler import load

    g = load(out).graph
    assert g.attrs["arithmetic"] == "lava-fixed" and g.attrs["synaptic_delay"] == 1
    assert g.attrs["target"] == str(user_targets / "loihi2b.yaml")


def _misspelt(tmp_path) -> Path:
    text = (SHIPPED / "loihi2.yaml").read_text().replace("\nneuron:", "\nnueron:", 1)
    bad = tmp_path / "badchip.yaml"
    bad.write_text(text)
    return bad


def test_a_misspelt_key_names_the_key_and_the_file(tmp_path):
    bad = _misspelt(tmp_path)
    with pytest.raises(TargetError) as err:
        load_target(str(bad))
    msg = str(err.value)
    assert "'nueron'" in msg and str(bad) in msg and "did you mean 'neuron'" in msg
    deep = tmp_path / "deep.yaml"
    deep.write_text((SHIPPED / "loihi2.yaml").read_text().replace(
        "  synaptic_delay:", "  synaptic_dealy:", 1))
    with pytest.raises(TargetError, match=r"unknown key 'synaptic_dealy' in neuron"):
        load_target(str(deep))
    typo = tmp_path / "typo.yaml"
    typo.write_text((SHIPPED / "loihi2.yaml").read_text().replace(
        "  reset:          {value: zero,", "  reset:          {value: zer0,", 1))
    with pytest.raises(TargetError, match=r"neuron\.reset\.value"):
        load_target(str(typo))


def test_a_misspelt_key_is_exit_2_on_the_command_line(tmp_path, capsys):
    bad = _misspelt(tmp_path)
    out = tmp_path / "o.snnc"
    code = main(["compile", str(EXAMPLE), "--target", str(bad), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "'nueron'" in err and str(bad) in err and "Traceback" not in err
    assert not out.exists()
    assert main(["cost", str(EXAMPLE), "--target", str(bad)]) == 2


def test_lava_fixed_arithmetic_needs_lavas_constants(tmp_path):
    f = tmp_path / "odd.yaml"
    f.write_text((SHIPPED / "loihi2.yaml").read_text().replace(
        "decay_denominator: {value: 4096", "decay_denominator: {value: 1024", 1))
    with pytest.raises(TargetError, match="decay_denominator = 1024 .needs 4096."):
        load_target(str(f))
    assert {k: load_target("loihi2").value("neuron." + k) for k in LAVA_FIXED} == LAVA_FIXED


def test_every_shipped_file_follows_the_schema():
    names = sorted(p.stem for p in SHIPPED.glob("*.yaml"))
    assert "nir" in names and "loihi2" in names
    for name in names:
        t = load_target(name)
        assert t.graph_attrs("target")["arithmetic"] in ("float", "lava-fixed")


def test_the_nir_target_is_honoured():
    t = load_target("nir")
    assert (t.reset, t.fire, t.synaptic_delay, t.weight_bits, t.graded_spikes) == (
        "zero", "gt", 0, None, True)
    c = compile("zoo:vgg11", target="nir", timesteps=2, bntt=False)  # has max pools
    g = c.graph
    assert {(n.attrs["reset"], n.attrs["fire"]) for n in g.by_op("lif")} == {("zero", "gt")}
    assert g.attrs["synaptic_delay"] == 0 and g.attrs["arithmetic"] == "float"
    assert not g.by_op("maxpool") and g.by_op("avgpool")  # NIR has no max pooling node
    assert compile("zoo:vgg11", timesteps=2, bntt=False).graph.by_op("maxpool")  # generic
    assert "weight_bits" not in g.attrs and not any("decay_k" in n.attrs for n in g.nodes)
    assert "legalized" not in g.attrs and g.attrs["encoder"] == "direct"
    lifs = [layer for layer in c.to_torch().layers.values() if hasattr(layer, "cfg")]
    assert lifs and not any(layer.cfg.fixed for layer in lifs)
    # the leak and threshold stay real-valued (no 1/4096 or 1/64 grid as on loihi2)
    c2 = compile(str(EXAMPLE), target="nir", timesteps=2, leak=0.9001, threshold=1.001)
    assert {n.attrs["leak"] for n in c2.graph.by_op("lif")} == {0.9001}
    assert {n.attrs["vth"] for n in c2.graph.by_op("lif")} == {1.001}
    c3 = compile(str(EXAMPLE), target="loihi2", timesteps=2, leak=0.9001, threshold=1.001)
    # loihi2: 1.001 truncated to the 1/64 grid (64/64), then scaled with the neuron's input side
    # by the quantizer's power of two (docs/passes.md "Neuron scaling": vth = grid value x neuron_scale)
    lifs3 = c3.graph.by_op("lif")
    assert {n.attrs["vth"] / n.attrs.get("neuron_scale", 1.0) for n in lifs3} == {64 / 64}
    assert {n.attrs["leak"] for n in lifs3} == {1 - 409 / 4096}


def test_docs_list_every_key_of_the_schema():
    from snnc.compiler.targets import schema

    text = (ROOT / "docs" / "targets.md").read_text()
    keys = [*schema.TOP_LEVEL, *schema.NEURON, *schema.FEATURES, *schema.CAPACITY,
            *schema.ENERGY, *schema.TIME, *schema.POWER, *schema.Validity.model_fields,
            *schema._Constant.model_fields]
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"docs/targets.md does not describe: {missing}"
    shipped = sorted(p.stem for p in SHIPPED.glob("*.yaml"))
    assert all(f"`{name}`" in text for name in shipped)


def test_target_nir_emits_nir_with_default_options(tmp_path, capsys):
    """`--target nir --emit nir`: the defaults (bn auto = the file's fold, zero reset, fire >,
    no delay) give a network the NIR exporter takes, so training and export agree."""
    pytest.importorskip("nir")
    out = tmp_path / "n.snnc"
    code = main(["compile", str(EXAMPLE), "--target", "nir", "--emit", "nir", "-T", "2",
                 "--no-cost", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "model.nir").is_file()
    import json

    assert json.loads((out / "manifest.json").read_text())["options"]["bn"] == "fold"


def test_a_file_added_or_removed_later_is_seen(tmp_path, monkeypatch):
    """The target listing is kept between loads only while no search directory changed:
    a file added, renamed or removed afterwards is found (or gone) at the next load."""
    from snnc.compiler import targets
    from snnc.compiler.targets import available_targets

    src = Path(targets.__file__).parent / "loihi2.yaml"
    monkeypatch.setenv("SNNC_TARGETS", str(tmp_path))
    assert "chip_a" not in available_targets()
    with pytest.raises(TargetError, match="unknown target 'chip_a'"):
        load_target("chip_a")
    shutil.copy(src, tmp_path / "chip_a.yaml")
    assert load_target("chip_a").name == load_target("loihi2").name
    (tmp_path / "chip_a.yaml").rename(tmp_path / "chip_b.yaml")
    assert "chip_a" not in available_targets() and "chip_b" in available_targets()
    with pytest.raises(TargetError, match="unknown target 'chip_a'"):
        load_target("chip_a")


def test_a_path_that_comes_to_name_another_file_loads_that_file(tmp_path):
    """`load_target` resolves a path once per file it names (compiler/targets `_resolved`):
    a link moved to another file, or a file replaced by another one, is read anew; an edit
    in place is seen through the modification time."""
    import os

    text = (SHIPPED / "loihi2.yaml").read_text()
    for name in ("chip_a", "chip_b"):
        (tmp_path / f"{name}.yaml").write_text(text.replace("target: loihi2", f"target: {name}",
                                                            1))
    link = tmp_path / "current.yaml"
    link.symlink_to(tmp_path / "chip_a.yaml")
    assert load_target(link).name == "chip_a"
    assert load_target(link).path == str((tmp_path / "chip_a.yaml").resolve())
    link.unlink()
    link.symlink_to(tmp_path / "chip_b.yaml")
    assert load_target(link).name == "chip_b"
    assert load_target(link).path == str((tmp_path / "chip_b.yaml").resolve())
    plain = tmp_path / "plain.yaml"
    (tmp_path / "chip_a.yaml").rename(plain)
    assert load_target(plain).name == "chip_a"
    replaced = tmp_path / "new.yaml"
    replaced.write_text(text.replace("target: loihi2", "target: chip_c", 1))
    os.replace(replaced, plain)
    assert load_target(plain).name == "chip_c"
    st = plain.stat()
    plain.write_text(text.replace("target: loihi2", "target: chip_d", 1))
    os.utime(plain, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert load_target(plain).name == "chip_d"
