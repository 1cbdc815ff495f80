"""The snnc model zoo: the architectures the papers and the users adapt to spikes.

Written here (not torchvision): paper 2's CIFAR S-ResNets (resnet20 / resnet38 / resnet44, 16 or
32 base filters), resnet18 (CIFAR or ImageNet stem), densenet121, mobilenetv2 and VGG-11.

    from snnc import models
    net = models.get("resnet20", num_classes=100)       # a fresh nn.Module (train mode)
    models.available()                                  # ['densenet121', 'mobilenetv2', ...]

Every builder takes ``num_classes``, ``in_channels`` and ``input_size`` (the side of the square
input it is meant for); the module records ``input_shape`` = (C, H, W) so callers can make an
example input. Small input sizes are fine everywhere (global average pooling before the head).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from snnc.compiler.core.errors import SnncError

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Register the decorated builder under `name` in the zoo."""
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model '{name}' is registered twice")
        MODELS[name] = fn
        return fn
    return deco


def available() -> list[str]:
    """The names `get` accepts, sorted."""
    _load()
    return sorted(MODELS)


def get(name: str, **kwargs) -> nn.Module:
    """Build zoo model `name` with keyword options (num_classes, input_size, ...)."""
    _load()
    if name not in MODELS:
        raise SnncError(f"no model named '{name}' in the snnc zoo. Available: "
                        f"{', '.join(sorted(MODELS))}.")
    return MODELS[name](**kwargs)


def _load() -> None:
    from snnc.models import densenet, mobilenet, resnet, sresnet, vgg  # noqa: F401


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm seeded random statistics and affine parameters, as if trained.

    Freshly built models have mean 0, var 1, weight 1, bias 0, which hides bugs (a bias never
    copied, mean and var swapped) and lets exporters drop all-zero biases. Returns `model`.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                if m.affine:
                    m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                    m.bias.copy_(0.6 * torch.rand(c, generator=gen) - 0.3)
    return model
