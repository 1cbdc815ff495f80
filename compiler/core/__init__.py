"""The IR core: the bottom layer of snnc (docs/architecture.md).

The graph IR (ir), its shape, payload and interpreter rules (shapes, payload, interpret), the
verifier, the text form and the on-disk form (verify, text, serialize), errors, blocks and
their adjacency matrices (blocks*), and the pass registry (passmanager). Nothing here imports
a front end, a pass, a backend, the cost model, the API or the CLI; an import-linter contract
in pyproject.toml checks it. This ``__init__`` imports nothing.
"""
