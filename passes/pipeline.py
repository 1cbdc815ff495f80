"""The default conversion pipeline: ANN-form IR -> SNN-form IR, as a list of PassSpec.

    from snnc.compiler.core.passmanager import run_pipeline
    from snnc.passes.pipeline import conversion_pipeline
    snn = run_pipeline(ann, conversion_pipeline(residual="s2s", target="loihi2", timesteps=8))

Not a pass module: it registers no pass; it orders the registered ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.options import Options
from snnc.compiler.core.passmanager import PASSES, PassSpec, apply_pass_options
from snnc.compiler.targets import Target, load_target
from snnc.passes import load_builtin_passes, parse_pass_spec
from snnc.passes._common import check_choice

log = logging.getLogger("snnc.passes")
PAPER_NEURON = dict(reset="subtract", fire="ge")  # paper 2 eq. 5-6


def neuron_options(target: str | Target, semantics: str, leak: float, threshold: float) -> dict:
    """relu-to-lif options for `target` under `semantics` (docs/targets.md "Neuron").

    paper: subtractive reset, fire on u >= theta, leak and threshold as given (paper 2 eq. 3-6).
    target: the target file's neuron: its `reset` and `fire`; with a `decay_denominator` D the
    leak becomes 1 - k/D with k = round((1 - leak) D); with a `threshold_scale` s the threshold
    is truncated to int(theta s)/s (Loihi 2: D = 4096, s = 64, docs/lava-backend.md).
    """
    check_choice("conversion_pipeline", "semantics", semantics, ("target", "paper"))
    opts = dict(leak=float(leak), vth=float(threshold), **PAPER_NEURON)
    if semantics != "target":
        return opts
    t = load_target(target)
    opts.update(reset=t.reset, fire=t.fire)
    den, scale = t.decay_denominator, t.threshold_scale
    if den:
        opts["leak"] = 1.0 - round((1.0 - float(leak)) * den) / den
    if scale:
        vth = int(float(threshold) * scale) / scale
        if vth <= 0:
            raise SnncError(f"threshold {threshold} is below {t.name}'s threshold step 1/{scale} "
                            f"(neuron.threshold_scale in {t.path}); raise --threshold.")
        opts["vth"] = vth
    return opts


def init_membrane(o: Options, reset: str) -> float:
    """The initial membrane (fraction of the threshold) `normalize` gives every lif: the user's
    `init_membrane`, else 1/2 for a neuron that resets by subtraction (Bu et al. 2022, ICLR,
    Theorem 2: the expected conversion error is then zero; docs/passes.md "Conversion") and 0
    for one that resets to zero (no such result; the networks Lava and NIR load hold no initial
    membrane)."""
    if o.init_membrane is not None:
        return float(o.init_membrane)
    return 0.5 if reset == "subtract" else 0.0


def _spec(name: str, **options) -> PassSpec:
    return PassSpec(name, PASSES[name], options)


_warned: set[str] = set()


def _warn_once(key: str, msg: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


def resolve_bn(o: Options) -> str:
    """`bn = auto` -> the target file's `features.bn_default` under target semantics (loihi2:
    `shared`, trained folded: a Loihi neuron holds no per-step statistics, so a BNTT net
    cannot be deployed;
    docs/lava.md "Deployable default"), `bntt` under paper semantics (paper 2). Other modes
    unchanged."""
    if o.bn != "auto":
        return o.bn
    return load_target(o.target).bn_default if o.semantics == "target" else "bntt"


def conversion_pipeline(options: Options | None = None, /, *,
                        extra: Sequence[PassSpec | str] = (),
                        legalize_maxpool: bool | None = None,
                        scales: Mapping[str, float] | None = None,
                        **overrides) -> list[PassSpec]:
    """The default pass list turning an ANN-form graph into an SNN-form graph.

    `options` is the compile options (snnc.compiler.core.options.Options; default: the defaults),
    with keyword `overrides` applied (``conversion_pipeline(target="loihi2", timesteps=4)``).
    Its `passes` are parsed and appended after the pipeline, then `extra` (PassSpec or
    ``NAME{k=v}`` strings); its `pass_options` (``PASS.KEY=VALUE``, `--pass-option`) set options
    of the pipeline's own passes. `scales` (activation statistics from passes/_calibrate.py, what
    `compile` computes for `normalize`) adds `normalize` after the readout (and boost), before
    quantisation (docs/passes.md "Conversion"). quantize runs with on_clip=report: what the
    target cannot hold is a violation in the cost report, not a refusal. `timesteps` must be
    resolved (`compile` turns "auto" into the delay depth plus `window`).

    Every target fact comes from the target file (snnc.compiler.targets, docs/targets.md),
    never from its name: a renamed copy of a file or the file given by path compiles the same.

    Order: annotate-skips -> snn-attrs (timesteps, semantics, target and the file's facts
    `Target.graph_attrs`: synaptic_delay and arithmetic under target semantics, graded_spikes,
    graded_bits) -> fold-bn when bn = fold (bn = auto: the file's features.bn_default under
    target semantics, else bntt; `resolve_bn`) -> maxpool-to-avgpool where features.maxpool is
    false (`legalize_maxpool` overrides) -> relu-to-lif (the file's neuron, see
    `neuron_options`; without graded spikes a lif after every add with no activation,
    unactivated_add=lif) -> bn-to-bntt{missing=identity} (bn = bntt: per-step BNTT, identity
    BNTT where the exporter folded BN; bn = shared: `mode=shared`, the BNs stay, one per layer
    shared over time, with an identity BN where the exporter folded one except under
    fixed-point arithmetic) ->
    spike-linear-outputs (no graded spikes) -> lower-residual{mode=residual} ->
    encode{kind=encoder; auto = features.encoder_default} -> readout -> [boost] ->
    annotate-payloads -> legalize-graded (no graded spikes) -> quantize (arithmetic lava-fixed
    under target semantics, with the file's weight_bits, threshold_scale, decay_denominator).
    `reset` (subtract | zero) overrides the neuron's reset.
    """
    o = Options.build(options, **overrides)
    if o.timesteps == "auto":
        raise SnncError("timesteps='auto' is resolved by snnc.compiler.compile (the delay "
                        "depth plus --window); give conversion_pipeline an integer T.")
    residual, target, timesteps = o.residual, o.target, o.timesteps
    semantics, reset = o.semantics, o.reset
    t = load_target(target)
    bn = resolve_bn(o)
    encoder = t.encoder_default if o.encoder == "auto" else o.encoder
    load_builtin_passes()
    neuron = neuron_options(t, semantics, o.leak, o.threshold)
    facts = t.graph_attrs(semantics)
    fixed = facts["arithmetic"] == "lava-fixed"
    if reset is not None:  # the user's choice wins over the semantics' default (issue 3)
        if fixed and reset != t.reset:
            raise SnncError(f"--reset {reset} with --target {target} and target semantics: the "
                            f"target's neuron ({t.path}) resets to {t.reset} in fixed-point "
                            f"arithmetic. Use --semantics paper to train the paper's "
                            f"subtractive reset (it then runs only in Lava's simulator).")
        neuron["reset"] = reset
    paper = dict(PAPER_NEURON, synaptic_delay=0)
    if semantics == "paper" and {"reset": t.reset, "fire": t.fire,
                                 "synaptic_delay": t.synaptic_delay} != paper:
        log.warning("semantics=paper on target '%s': the trained neuron (subtractive reset, "
                    "fire on >=) differs from what the target runs; deployment will differ",
                    target)
    specs: list[PassSpec | None] = [
        _spec("annotate-skips"),
        _spec("snn-attrs", timesteps=int(timesteps), semantics=semantics, target=str(target),
              **facts),
    ]
    if bn == "fold":
        if "fold-bn" in PASSES:
            specs.append(_spec("fold-bn"))
        else:  # hook: passes/fold_bn.py is written separately
            _warn_once("fold-bn", "pass 'fold-bn' is not available; batch norms stay as "
                       "float batchnorm")
    if legalize_maxpool if legalize_maxpool is not None else not t.maxpool:
        specs.append(_spec("maxpool-to-avgpool"))
    # A binary-only chip cannot carry a graded sum of currents (mobilenetv2's linear
    # bottleneck) into the next synapse: put a neuron after such adds there.
    graded = t.graded_spikes
    unactivated = {} if graded else {"unactivated_add": "lif"}
    specs.append(_spec("relu-to-lif", **neuron, **unactivated))
    if bn == "bntt":
        specs.append(_spec("bn-to-bntt", missing="identity"))
    elif bn == "shared":
        # fixed-point arithmetic (loihi2): the source's BNs are trained folded into their
        # layers (docs/lava.md "Deployable default"); none is inserted where the exporter
        # folded one, so those layers keep quantize's per-layer weight exponent (an inserted
        # identity BN would put their weights on the standard grid: few levels)
        specs.append(_spec("bn-to-bntt", missing="skip" if fixed else "identity",
                           mode="shared"))
    if not graded:
        specs.append(_spec("spike-linear-outputs"))
    specs += [_spec("lower-residual", mode=residual), _spec("encode", kind=encoder),
              _spec("readout")]
    if o.boost:
        specs.append(_spec("boost"))
    if scales is not None:
        specs.append(_spec("normalize", scales=dict(scales), percentile=float(o.percentile),
                           init_membrane=init_membrane(o, neuron["reset"])))
    specs.append(_spec("annotate-payloads"))
    if not graded:
        specs.append(_spec("legalize-graded", target=str(target)))
    if fixed:  # Lava's fixed point (schema.LAVA_FIXED): numbers from the file
        specs.append(_spec("quantize", bits=t.weight_bits, scale=t.threshold_scale,
                           decay_den=t.decay_denominator, on_clip="report"))
    specs = apply_pass_options([s for s in specs if s is not None], o.pass_options)
    for item in (*o.passes, *extra):
        specs.append(parse_pass_spec(item) if isinstance(item, str) else item)
    return specs
