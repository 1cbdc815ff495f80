"""Core allocation against hand-computed small cases and each target's limits
(hardware-targets.md sec. 1a, 2, 4a, 4b; nengo-loihi bits_per_axon)."""

from snnc.compiler.text import parse
from snnc.costmodel import estimate

LIF = "{leak=0.9, vth=1.0, reset=subtract}"


def dense(fin: int, fout: int, attrs: str = "timesteps=2, lowered=true") -> str:
    return f"""graph d(%x: f32[1,{fin}]) snn {{{attrs}}} {{
  %enc = encoder(%x) {{kind=poisson}} : f32[1,{fin}]
  %fc = linear(%enc) {{in={fin}, out={fout}, bias=false}} : f32[1,{fout}]
  %lif = lif(%fc) {LIF} : f32[1,{fout}]
  return %lif
}}
"""


def conv(cin: int, cout: int, h: int, w: int, k: int = 3) -> str:
    p = k // 2
    return f"""graph c(%x: f32[1,{cin},{h},{w}]) snn {{timesteps=2, lowered=true}} {{
  %enc = encoder(%x) {{kind=poisson}} : f32[1,{cin},{h},{w}]
  %conv = conv2d(%enc) {{in={cin}, out={cout}, k=({k},{k}), pad=({p},{p},{p},{p})}} \
: f32[1,{cout},{h},{w}]
  %lif = lif(%conv) {LIF} : f32[1,{cout},{h},{w}]
  return %lif
}}
"""


def _cores(text: str, target: str):
    rep = estimate(parse(text), target=target, rates=0.1)
    return {r.name: r.cores for r in rep.rows if r.cores}, rep


# -- Loihi 1 -----------------------------------------------------------------------------------
def test_loihi1_neuron_limit_only():
    # 100 -> 2000: ceil(2000 / 1024) = 2 cores of 1000 neurons. Each of the 100 axons holds
    # 1000 8-bit weights per core: 15 lists of 64 (64*8 + 10 = 522 -> 576 bits) + 40
    # (40*8 + 10 = 330 -> 384) = 9024 bits; x 100 axons = 902,400 <= 1,048,576.
    cores, rep = _cores(dense(100, 2000), "loihi1")
    assert cores == {"fc": 2} and rep.totals["chips"] == 1 and not rep.violations


def test_loihi1_synapse_memory_binds():
    # 200 -> 2000. c = 2: 9024 x 200 = 1,804,800 bits > 1 Mbit. c = 3: 667 weights per axon:
    # 10 x 576 + (27*8 + 10 = 226 -> 256) = 6016 x 200 = 1,203,200 > 1 Mbit. c = 4: 500 weights:
    # 7 x 576 + (52*8 + 10 = 426 -> 448) = 4480 x 200 = 896,000 fits -> 4 cores.
    cores, _ = _cores(dense(200, 2000), "loihi1")
    assert cores == {"fc": 4}


def test_loihi1_fan_in_violation_names_node_and_limit():
    _, rep = _cores(dense(5000, 10), "loihi1")
    (v,) = [v for v in rep.violations if "in_axons_per_core" in v]
    assert "'fc'" in v and "5000" in v and "4096" in v


def test_loihi1_weight_bits_violation():
    _, rep = _cores(dense(10, 10, "timesteps=2, lowered=true, weight_bits=7"), "loihi1")
    (v,) = rep.violations
    assert "'fc'" in v and "weight_bits=7" in v and "[0, 1, 2, 3, 4, 5, 6, 8]" in v


# -- Loihi 2 -----------------------------------------------------------------------------------
def test_loihi2_conv_columns_and_dense_budget():
    # conv 16 channels on 32x32: a column holds 32 * 16 = 512 neurons; chunks double while
    # they hold fewer than 4096: 1 -> 2 -> 4 (2048); 8 columns would be 4096 -> 32/4 = 8 cores
    cores, _ = _cores(conv(1, 16, 32, 32), "loihi2")
    assert cores == {"conv": 8}
    # PilotNet's 2560 -> 100: 23040 / 2560 = 9 neurons per core -> 12 cores (Intel: 12)
    cores, _ = _cores(dense(2560, 100), "loihi2")
    assert cores == {"fc": 12}
    # 200 -> 256 (Oxford's first layer): floor(23040 / 200) = 115 per core -> 3 cores
    cores, _ = _cores(dense(200, 256), "loihi2")
    assert cores == {"fc": 3}


def test_loihi2_column_too_large():
    _, rep = _cores(conv(1, 64, 64, 2, k=1), "loihi2")  # one column: 64 rows x 64 channels
    (v,) = rep.violations
    assert "'conv'" in v and "4096" in v


# -- TrueNorth ---------------------------------------------------------------------------------
def test_truenorth_crossbar():
    # 200 -> 600: ceil(600 / 256) = 3 cores x ceil(200 / 256) = 1
    cores, rep = _cores(dense(200, 600), "truenorth")
    assert cores == {"fc": 3} and not rep.violations
    # 300 -> 600: fan-in 300 > 256 axons: 3 x 2 = 6 cores and a violation naming the node
    cores, rep = _cores(dense(300, 600), "truenorth")
    assert cores == {"fc": 6}
    (v,) = rep.violations
    assert "'fc'" in v and "fan-in 300" in v and "256" in v


# -- Speck -------------------------------------------------------------------------------------
def _speck_chain(layers: int, readers_of_first: int = 1) -> str:
    lines = ["graph s(%x: f32[1,2,8,8]) snn {timesteps=2, lowered=true} {",
             "  %enc = encoder(%x) {kind=poisson} : f32[1,2,8,8]"]
    prev = "enc"
    for i in range(layers):
        lines.append(f"  %conv{i} = conv2d(%{prev}) {{in=2, out=2, k=(3,3), pad=(1,1,1,1)}} "
                     f": f32[1,2,8,8]")
        lines.append(f"  %lif{i} = lif(%conv{i}) {LIF} : f32[1,2,8,8]")
        prev = f"lif{i}"
    outs = [prev]
    for j in range(1, readers_of_first):
        lines.append(f"  %extra{j} = conv2d(%lif0) {{in=2, out=2, k=(1,1)}} : f32[1,2,8,8]")
        lines.append(f"  %elif{j} = lif(%extra{j}) {LIF} : f32[1,2,8,8]")
        outs.append(f"elif{j}")
    if len(outs) > 1:
        lines.append(f"  %sum = add({', '.join('%' + o for o in outs)}) : f32[1,2,8,8]")
        outs = ["sum"]
    lines += [f"  return %{outs[0]}", "}"]
    return "\n".join(lines) + "\n"


def test_speck_one_layer_per_core_and_limits():
    cores, rep = _cores(_speck_chain(9), "speck")
    assert list(cores.values()) == [1] * 9 and not rep.violations
    _, rep = _cores(_speck_chain(10), "speck")
    (v,) = rep.violations
    assert "10 neuron layers" in v and "9 cores" in v and "'conv9'" in v


def test_speck_destinations():
    # lif0 feeds conv1 plus 2 extra layers: 3 destinations > 2
    _, rep = _cores(_speck_chain(3, readers_of_first=3), "speck")
    (v,) = [v for v in rep.violations if "destination" in v]
    assert "'lif0'" in v and "3 destination layers" in v and "2 per core" in v


def test_speck_kernel_memory():
    # 64 -> 128 channels, 3x3: 64 * 2^(ceil(log2 9) + ceil(log2 128)) = 64 * 2^11 = 131,072
    # kernel entries > 65,536 (the largest core)
    _, rep = _cores(conv(64, 128, 8, 8), "speck")
    (v,) = rep.violations
    assert "'conv'" in v and "131072" in v and "65536" in v
