"""Moved: target files and their loader live in `snnc.compiler.targets` (docs/targets.md).

Kept as an alias so that code written against the old path keeps importing; new code imports
`snnc.compiler.targets`.
"""

from snnc.compiler.targets import (SECTIONS, STATUSES, USABLE, Constant, Target,  # noqa: F401
                                   available_targets, load_target)
