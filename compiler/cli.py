"""The `snnc` command line (DESIGN.md "Interfaces").

Subcommands live beside the code they drive and are registered here: `inspect`, `compile`,
`passes`, `targets` (compiler), `cost` (costmodel), `train` (backends.pytorch), `search`.
Exit codes: 0 ok, 2 user error (message, no traceback), 1 internal error (traceback).
"""

from __future__ import annotations

import sys

import click

from snnc.compiler.errors import SnncError


class SnncGroup(click.Group):
    """A click group that turns SnncError into `snnc: error: ...` and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SnncError as err:
            click.echo(f"snnc: error: {err}", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=SnncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="snnc", prog_name="snnc")
def cli() -> None:
    """snnc: compile ANNs to spiking neural networks and estimate their cost on hardware."""


def _register() -> None:
    import importlib

    for mod, name in [("snnc.compiler.commands", "inspect_cmd"),
                      ("snnc.compiler.commands", "compile_cmd"),
                      ("snnc.compiler.commands", "passes_cmd"),
                      ("snnc.compiler.commands", "targets_cmd"),
                      ("snnc.costmodel.cli", "cost_cmd"),
                      ("snnc.backends.pytorch.cli", "train_cmd"),
                      ("snnc.search.cli", "search_cmd")]:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("snnc"):
                continue  # that part of snnc is not built yet
            raise
        cmd = getattr(module, name, None)
        if cmd is not None:
            cli.add_command(cmd)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `snnc` console script; returns the exit code."""
    try:
        # With standalone_mode=False click returns ctx.exit()'s code instead of raising.
        rv = cli.main(args=argv, prog_name="snnc", standalone_mode=False)
        if isinstance(rv, int):
            return rv
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("snnc: aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return 2
    except SnncError as err:
        click.echo(f"snnc: error: {err}", err=True)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
