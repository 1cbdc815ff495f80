"""The default conversion pipeline: ANN-form IR -> SNN-form IR, as a list of PassSpec.

    from snnc.compiler.core.passmanager import run_pipeline
    from snnc.passes.pipeline import conversion_pipeline
    snn = run_pipeline(ann, conversion_pipeline(residual="s2s", target="loihi2", timesteps=8))

Not a pass module: it registers no pass; it orders the registered ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.options import Options
from snnc.compiler.core.passmanager import PASSES, PassSpec
from snnc.passes import load_builtin_passes, parse_pass_spec
from snnc.passes._common import check_choice
from snnc.passes._targets import BINARY_ONLY, is_loihi2, supports_graded

log = logging.getLogger("snnc.passes")

DECAY_DEN = 4096  # Loihi 2: decays are integers out of 4096
VTH_SCALE = 64  # Loihi 2: vThMant = int(theta * 64)


def neuron_options(target: str, semantics: str, leak: float, threshold: float) -> dict:
    """relu-to-lif options for `target` under `semantics` (docs/design.md "Neuron semantics").

    paper: subtractive reset, fire on u >= theta, leak and threshold as given (paper 2 eq. 3-6).
    target on loihi2: reset to zero, fire on v > theta, leak = 1 - k/4096 with k = round((1 -
    leak) 4096), threshold truncated to a multiple of 1/64 (lava-backend.md). Other targets
    have no target-specific neuron here yet and use the paper's (hook: a target file's
    neuron description would go here once snnc.costmodel.targets provides one).
    """
    check_choice("conversion_pipeline", "semantics", semantics, ("target", "paper"))
    opts = dict(leak=float(leak), vth=float(threshold), reset="subtract", fire="ge")
    if semantics == "target" and is_loihi2(target):
        k = round((1.0 - float(leak)) * DECAY_DEN)
        vth = int(float(threshold) * VTH_SCALE) / VTH_SCALE
        if vth <= 0:
            raise SnncError(f"threshold {threshold} is below Loihi 2's threshold step 1/64; "
                            f"raise --threshold.")
        opts.update(leak=1.0 - k / DECAY_DEN, vth=vth, reset="zero", fire="gt")
    return opts


def _spec(name: str, **options) -> PassSpec:
    return PassSpec(name, PASSES[name], options)


_warned: set[str] = set()


def _warn_once(key: str, msg: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


def resolve_bn(o: Options) -> str:
    """`bn = auto` -> the target's default batch-norm mode: `fold` on loihi2 with target
    semantics (a Loihi neuron holds no per-step statistics, so a BNTT net cannot be deployed;
    docs/lava.md "Deployable default"), `bntt` elsewhere (paper 2). Other modes unchanged."""
    if o.bn != "auto":
        return o.bn
    return "fold" if o.semantics == "target" and is_loihi2(o.target) else "bntt"


def conversion_pipeline(options: Options | None = None, /, *,
                        extra: Sequence[PassSpec | str] = (),
                        legalize_maxpool: bool | None = None, **overrides) -> list[PassSpec]:
    """The default pass list turning an ANN-form graph into an SNN-form graph.

    `options` is the compile options (snnc.compiler.core.options.Options; default: the defaults),
    with keyword `overrides` applied (``conversion_pipeline(target="loihi2", timesteps=4)``).
    Its `passes` are parsed and appended after the pipeline, then `extra` (PassSpec or
    ``NAME{k=v}`` strings).

    Order: annotate-skips -> snn-attrs (timesteps, semantics, target,
    synaptic_delay = 1 for loihi2 target-exact, else 0) -> fold-bn when bn = fold (bn = auto:
    fold on loihi2 target-exact, else bntt; `resolve_bn`) ->
    maxpool-to-avgpool for hardware targets (loihi*, truenorth, speck; `legalize_maxpool`
    overrides) -> relu-to-lif (the target's neuron, see `neuron_options`; on targets without
    graded spikes a lif after every add with no activation, unactivated_add=lif) ->
    bn-to-bntt{missing=identity} (bn = bntt: per-step BNTT, identity BNTT where the exporter
    folded BN; bn = shared: `mode=shared`, the BNs stay, one per layer shared over time, with an
    identity BN where the exporter folded one) -> spike-linear-outputs (targets without graded
    spikes) -> lower-residual{mode=residual} ->
    encode{kind=encoder} -> readout -> [boost] -> annotate-payloads -> legalize-graded (targets
    without graded spikes) -> quantize (loihi2 target-exact). `reset` (subtract | zero)
    overrides the neuron's reset.
    """
    o = Options.build(options, **overrides)
    residual, target, timesteps = o.residual, o.target, o.timesteps
    leak, threshold, semantics, reset = o.leak, o.threshold, o.semantics, o.reset
    bn, boost = resolve_bn(o), o.boost
    encoder = o.encoder
    if encoder == "auto":
        encoder = "direct" if supports_graded(target) else "poisson"
    load_builtin_passes()
    neuron = neuron_options(target, semantics, leak, threshold)
    if reset is not None:  # the user's choice wins over the semantics' default (issue 3)
        if semantics == "target" and is_loihi2(target) and reset != "zero":
            raise SnncError("--reset subtract with --target loihi2 and target semantics: Loihi "
                            "2's neuron resets to zero. Use --semantics paper to train the "
                            "paper's subtractive reset (it then runs only in Lava's simulator).")
        neuron["reset"] = reset
    exact = semantics == "target" and is_loihi2(target)
    if semantics == "paper" and target != "generic":
        log.warning("semantics=paper on target '%s': the trained neuron (subtractive reset, "
                    "fire on >=) differs from what the target runs; deployment will differ",
                    target)
    hardware = is_loihi2(target) or target in BINARY_ONLY
    specs: list[PassSpec | None] = [
        _spec("annotate-skips"),
        _spec("snn-attrs", timesteps=int(timesteps), semantics=semantics, target=str(target),
              synaptic_delay=1 if exact else 0),
    ]
    if bn == "fold":
        if "fold-bn" in PASSES:
            specs.append(_spec("fold-bn"))
        else:  # hook: passes/fold_bn.py is written separately
            _warn_once("fold-bn", "pass 'fold-bn' is not available; batch norms stay as "
                       "float batchnorm")
    if legalize_maxpool if legalize_maxpool is not None else hardware:
        specs.append(_spec("maxpool-to-avgpool"))
    # A binary-only chip cannot carry a graded sum of currents (mobilenetv2's linear
    # bottleneck) into the next synapse: put a neuron after such adds there.
    unactivated = {} if supports_graded(target) else {"unactivated_add": "lif"}
    specs.append(_spec("relu-to-lif", **neuron, **unactivated))
    if bn == "bntt":
        specs.append(_spec("bn-to-bntt", missing="identity"))
    elif bn == "shared":
        specs.append(_spec("bn-to-bntt", missing="identity", mode="shared"))
    if not supports_graded(target):
        specs.append(_spec("spike-linear-outputs"))
    specs += [_spec("lower-residual", mode=residual), _spec("encode", kind=encoder),
              _spec("readout")]
    if boost:
        specs.append(_spec("boost"))
    specs.append(_spec("annotate-payloads"))
    if not supports_graded(target):
        specs.append(_spec("legalize-graded", target=str(target)))
    if exact:
        specs.append(_spec("quantize"))
    for item in (*o.passes, *extra):
        specs.append(parse_pass_spec(item) if isinstance(item, str) else item)
    return [s for s in specs if s is not None]
