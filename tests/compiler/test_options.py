"""One options object (docs/options.md): keyword-only, validated, the same flags on every command,
the same pipeline from the API, the CLI and `conversion_pipeline`, recorded in manifest.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
import pytest

from snnc.compiler.cli import main
from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.options import Options, cli_options, option_names
from snnc.data.options import FORMAT
from snnc.passes.pipeline import conversion_pipeline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "models" / "examples" / "resnet20.onnx"


def test_options_are_keyword_only_and_validated():
    with pytest.raises(TypeError):
        Options("s2m")  # noqa: the point: positional construction is refused
    o = Options(residual="s2m", timesteps=4.0, leak=1)
    assert (o.timesteps, type(o.timesteps), o.leak, type(o.leak)) == (4, int, 1.0, float)
    for bad, what in ((dict(timesteps=0), "timesteps"), (dict(leak=1.5), "leak"),
                      (dict(encoder="jpeg"), "encoder"), (dict(threshold=-1), "threshold"),
                      (dict(timesteps=2.5), "timesteps"), (dict(reset="soft"), "reset")):
        with pytest.raises(SnncError, match=what):
            Options(**bad)
    with pytest.raises(SnncError, match="unknown compile option.*'timestep'"):
        Options().replace(timestep=3)
    assert Options(passes="fold-bn").passes == ("fold-bn",)


def test_manifest_round_trip_keeps_every_field():
    o = Options(residual="v2v", target="loihi2", timesteps=3, bntt=False, passes=("fold-bn",))
    d = json.loads(json.dumps(o.as_dict()))
    assert set(d) == set(option_names())
    assert Options.from_dict(d) == o
    # a manifest from a newer snnc (an extra name) or an older one (a missing name) still loads
    assert Options.from_dict({**d, "future_option": 1}) == o
    assert Options.from_dict({"residual": "v2v"}) == Options(residual="v2v")


def test_pipeline_from_options_equals_pipeline_from_keywords():
    o = Options(residual="s2m", target="loihi2", timesteps=5, boost=True, passes=("fold-bn",))
    a = [(s.name, s.options) for s in conversion_pipeline(o)]
    b = [(s.name, s.options) for s in conversion_pipeline(residual="s2m", target="loihi2",
                                                          timesteps=5, boost=True,
                                                          passes=("fold-bn",))]
    c = [(s.name, s.options) for s in conversion_pipeline(Options(), residual="s2m",
                                                          target="loihi2", timesteps=5,
                                                          boost=True, passes=["fold-bn"])]
    assert a == b == c and a[-1][0] == "fold-bn"
    attrs = dict(a)["snn-attrs"]
    assert attrs["timesteps"] == 5 and attrs["target"] == "loihi2"


def _params(command: click.Command) -> dict[str, tuple]:
    return {p.name: (tuple(p.opts), tuple(p.secondary_opts)) for p in command.params}


def test_every_command_spells_every_option_the_same_way():
    from snnc.compiler.commands import compile_cmd, inspect_cmd
    from snnc.compiler.costcmd import cost_cmd
    from snnc.search.cli import search_cmd

    want = {f.name: f.metadata["cli"].decls for f in dataclasses.fields(Options)
            if f.metadata["cli"].decls}
    assert set(want) == set(option_names())  # every option is on the command line
    for cmd in (compile_cmd, inspect_cmd, cost_cmd, search_cmd):
        got = _params(cmd)
        for name, decls in want.items():
            assert name in got, (cmd.name, name)
            flags = got[name][0] + got[name][1]
            for d in decls:
                for flag in d.split("/"):
                    assert flag in flags, (cmd.name, name, flag, flags)


def test_a_new_field_reaches_the_command_line_with_no_other_edit():
    """What `cli_options` hands the command is an Options built from exactly the fields."""
    seen = {}

    @click.command()
    @cli_options(defaults={"timesteps": 4})
    def cmd(options):
        seen["o"] = options

    cmd.main(["--residual", "v2v", "--no-bntt", "--pass", "fold-bn", "--pass", "boost"],
             standalone_mode=False)
    assert seen["o"] == Options(residual="v2v", timesteps=4, bntt=False,
                                passes=("fold-bn", "boost"))
    # plus the reading options of its data option (--normalize), shared with any --data
    assert {p.name for p in cmd.params} == set(option_names()) | set(FORMAT)


def test_cli_api_and_manifest_agree(tmp_path, capsys):
    from snnc.compiler import compile, load

    out = tmp_path / "o.snnc"
    code = main(["compile", str(EXAMPLE), "-o", str(out), "--residual", "s2m", "-T", "3",
                 "--target", "loihi2", "--no-bntt", "--no-cost"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    o = Options(residual="s2m", timesteps=3, target="loihi2", bntt=False, encoder="direct")
    assert manifest["options"] == o.as_dict()
    c = compile(str(EXAMPLE), Options(residual="s2m", timesteps=3, target="loihi2"), bntt=False)
    assert c.options == o == load(out).options
    assert c.graph == load(out).graph and c.graph.same_params(load(out).graph)


def test_bad_option_value_is_exit_2(tmp_path, capsys):
    out = tmp_path / "bad.snnc"
    assert main(["compile", str(EXAMPLE), "--threshold", "-1", "-o", str(out)]) == 2
    assert "threshold" in capsys.readouterr().err and not out.exists()
