"""`python -m snnc.compiler` runs the `snnc` command line."""

from snnc.compiler.cli import main

raise SystemExit(main())
