"""`python -m snnc.models`: list the zoo with default input shapes and parameter counts."""

from __future__ import annotations

from snnc import models


def main() -> None:
    """Print one line per zoo model."""
    for name in models.available():
        net = models.get(name)
        n = sum(p.numel() for p in net.parameters())
        shape = "x".join(str(d) for d in net.input_shape)
        doc = (models.MODELS[name].__doc__ or "").splitlines()[0]
        print(f"{name:<12} input {shape:<10} {n:>11,} parameters   {doc}")


if __name__ == "__main__":
    main()
