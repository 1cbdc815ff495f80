"""The `snnc` command line (docs/design.md "Interfaces").

Subcommands live beside the code they drive and are listed in `COMMANDS` here (imported only
when used): `inspect`, `compile`, `export`, `passes`, `targets`, `cost`, `train` (compiler), `search`
(search), `experiment` (experiments).
Exit codes: 0 ok, 2 user error (message, no traceback), 1 internal error (traceback).
"""

from __future__ import annotations

import contextlib
import gc
import sys

import click

from snnc.compiler.core.errors import SnncError, missing_dependency


# name -> (module, attribute, one-line help). Commands are imported only when used, so that
# `snnc compile` never pays for the search's gpytorch or the trainer's data loaders.
COMMANDS = {
    "inspect": ("snnc.compiler.commands", "inspect_cmd",
                "Print a model's IR, blocks, adjacency matrices and skip edges."),
    "compile": ("snnc.compiler.commands", "compile_cmd",
                "Compile a model into an SNN and write the output directory."),
    "export": ("snnc.compiler.commands", "export_cmd",
               "Re-emit lava/ and model.nir of an output directory from its current weights."),
    "cost": ("snnc.compiler.costcmd", "cost_cmd",
             "Estimate MACs, SOPs, graded spikes, cores, energy and latency on a target."),
    "train": ("snnc.compiler.traincmd", "train_cmd",
              "Train a compiled SNN with surrogate gradients (BPTT)."),
    "eval": ("snnc.compiler.evalcmd", "eval_cmd",
             "Accuracy of a compiled net: ANN, SNN, accuracy against T, firing rates."),
    "search": ("snnc.search.cli", "search_cmd",
               "Search skip connections with Bayesian optimisation (paper 1)."),
    "experiment": ("snnc.experiments.cli", "experiment_cmd",
                   "Rerun a claim of the seed papers with snnc (docs/results.md)."),
    "passes": ("snnc.compiler.commands", "passes_cmd",
               "List the registered passes with their contracts."),
    "targets": ("snnc.compiler.commands", "targets_cmd", "List the known hardware targets."),
}


class SnncGroup(click.Group):
    """A click group with lazily imported subcommands that turns SnncError into
    `snnc: error: ...` and exit code 2."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        import importlib

        mod, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(mod), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SnncError as err:
            click.echo(f"snnc: error: {err}", err=True)
            ctx.exit(err.exit_code)
        except ImportError as exc:  # an optional package missing: exit 2 with the pip command
            err = missing_dependency(exc)
            if err is None:
                raise
            click.echo(f"snnc: error: {err}", err=True)
            ctx.exit(err.exit_code)


def _max_memory(ctx, param, value):
    from snnc.compiler.core import limits

    try:
        limits.set_memory_limit(value)  # None: half of the machine's memory
    except SnncError as err:
        raise click.BadParameter(str(err)) from None
    return value


@click.group(cls=SnncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="snnc", prog_name="snnc")
@click.option("--max-memory", metavar="SIZE", default=None, callback=_max_memory,
              is_eager=True, expose_value=False,
              help="Refuse work estimated to need more memory than SIZE (4G, 512M, none); "
                   "default: half of the machine's memory (or of a cgroup/ulimit allowance), "
                   "or $SNNC_MAX_MEMORY. May also follow the subcommand.")
def cli() -> None:
    """snnc: compile ANNs to spiking neural networks and estimate their cost on hardware."""


def _hoist_max_memory(argv: list[str]) -> list[str]:
    """Move `--max-memory X` / `--max-memory=X` given after the subcommand to the front, so
    that `snnc compile m.onnx --max-memory 4G` works like `snnc --max-memory 4G compile ...`."""
    out, front, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out += argv[i:]
            break
        if a == "--max-memory" and i + 1 < len(argv):
            front += argv[i:i + 2]
            i += 2
            continue
        if a.startswith("--max-memory="):
            front.append(a)
        else:
            out.append(a)
        i += 1
    return front + out


# Cyclic garbage collection while a command runs: graphs are built of many small objects
# (nodes, edges, attribute maps, index dicts) that die by reference count, so the collector's
# default first-generation threshold (700 allocations) makes it scan them dozens of times per
# model for nothing (about 15 % of `snnc cost` on densenet121, docs/costmodel.md "Speed").
# A command runs with a threshold of 100,000; the caller's settings come back after it.
GC_THRESHOLD = 100_000


@contextlib.contextmanager
def _fewer_collections():
    old = gc.get_threshold()
    if 0 < old[0] < GC_THRESHOLD:  # 0: automatic collection is off, leave it off
        gc.set_threshold(GC_THRESHOLD, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `snnc` console script; returns the exit code."""
    with _fewer_collections():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        # With standalone_mode=False click returns ctx.exit()'s code instead of raising.
        argv = _hoist_max_memory(list(sys.argv[1:] if argv is None else argv))
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
