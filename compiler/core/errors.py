"""Errors snnc raises on purpose.

Every user-facing failure is an :class:`SnncError`. The CLI prints its message and exits with
code 2 (user error) without a traceback; any other exception is a bug in snnc and keeps its
traceback (exit 1). A message names the file, the node and the op, says what is wrong, and says
what to do.
"""

from __future__ import annotations


class SnncError(Exception):
    """Base class of every error snnc reports to a user (exit code 2)."""

    exit_code = 2


class ImportFailed(SnncError):
    """A model file or module could not be read (empty, truncated, not ONNX, untraceable)."""


class UnsupportedOp(SnncError):
    """One or more nodes use an op snnc cannot convert."""


class ShapeMismatch(SnncError):
    """Shapes disagree between a node and its inputs."""


class VerifyError(SnncError):
    """The IR breaks one of its invariants (see compiler/verify.py)."""


class PassFailed(SnncError):
    """A pass raised, or left a graph the verifier rejects."""


class ParseError(SnncError):
    """The text form of the IR could not be parsed."""


class TargetError(SnncError):
    """An unknown target, or a target file that cannot be read."""


class ConstraintViolation(SnncError):
    """The network breaks a limit of the chosen target."""


class MissingDependency(SnncError):
    """An optional package a command needs is not installed (exit 2, with the pip command)."""


# Optional packages -> (pyproject extra, what needs it). One table: the CLI turns a
# ModuleNotFoundError for any of these into a MissingDependency, so a command run in an
# environment without the extra says what to install instead of printing a traceback.
OPTIONAL_PACKAGES = {
    "onnxruntime": ("onnx", "inspect --check (onnxruntime runs the reference model)"),
    "onnxscript": ("onnx", "torch's dynamo ONNX exporter"),
    "tqdm": ("train", "snnc train / search progress bars"),
    "snntorch": ("train", "the snnTorch comparison"),
    "gpytorch": ("search", "snnc search (the Gaussian process)"),
    "ray": ("search", "snnc search --executor ray"),
    "nir": ("nir", "--emit nir and NIR import"),
    "nirtorch": ("nir", "NIR round trips through nirtorch"),
    "h5py": ("lava", "--emit lava and lava-dl netx files"),
    "sklearn": ("data", "--data digits (scikit-learn ships the digits)"),
}


def missing_dependency(exc: BaseException) -> MissingDependency | None:
    """The MissingDependency for `exc` when it is the ImportError of an optional package."""
    if not isinstance(exc, ImportError):
        return None
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name not in OPTIONAL_PACKAGES:
        return None
    extra, need = OPTIONAL_PACKAGES[name]
    return MissingDependency(
        f"{need} needs the Python package '{name}', which is not installed in this environment "
        f"({exc}). Install it with: pip install 'snnc[{extra}]' (or, from a checkout, "
        f"scripts/setup.sh, which installs every extra).")


class ResourceLimit(SnncError):
    """A compile, cost report or forward would need more memory than the limit allows
    (compiler/core/limits.py; `--max-memory` changes the limit)."""
