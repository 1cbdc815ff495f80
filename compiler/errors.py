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
