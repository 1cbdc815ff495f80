"""torch.fx front end: every accepted spelling of each op, and the errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnc.compiler.compare import check_equivalence
from snnc.compiler.errors import ImportFailed, UnsupportedOp
from snnc.compiler.frontends.fx import from_torch
from snnc.compiler.text import parse, print_ir
from snnc.compiler.verify import verify
from snnc.models import randomize_batchnorm


class Spellings(nn.Module):
    """Each supported op written in several ways (module, functional, method, in-place)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.same = nn.Conv2d(8, 8, 3, padding="same", dilation=2, bias=False)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.relu6 = nn.ReLU6()
        self.ht = nn.Hardtanh(-0.5, 0.5)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.avg = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.drop = nn.Dropout(0.3)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16 * 2 * 2, 6)
        self.fc_bn = nn.BatchNorm1d(6)

    def forward(self, x):
        a = F.relu(self.bn(self.conv(x)))
        b = torch.relu(self.same(a))
        b.relu_()
        c = self.relu6(a) + self.ht(b)                 # operator +
        c = torch.add(c, F.relu6(b))
        c += torch.clamp(a, min=0.0, max=2.0)          # iadd
        c = c.clamp(-1.0, 1.0)
        d = self.dw(c)
        d = F.hardtanh(d, 0.0, 3.0)
        e = torch.cat([d, F.max_pool2d(c, 2)], 1)      # 16 channels at 5x5
        e = self.avg(self.pool(e))                     # 3x3, then 3x3
        e = F.avg_pool2d(e, 2, 1)                      # 2x2
        g = F.adaptive_avg_pool2d(e, (2, 2)) + e.mean((2, 3), keepdim=True).expand(-1, -1, 2, 2)
        return g, self.fc_bn(self.fc(self.drop(self.flat(g)))), F.dropout(g.view(1, -1),
                                                                             training=False)


def test_spellings_rejects_expand_only():
    """.expand is not an IR op: the error names exactly that node."""
    with pytest.raises(UnsupportedOp, match=r"(?s)1 node\(s\).*node 'expand' \(method \.expand"):
        from_torch(Spellings(), input_shape=(3, 10, 10))


class SpellingsOk(Spellings):
    def forward(self, x):
        a = F.relu(self.bn(self.conv(x)))
        b = torch.relu(self.same(a))
        b.relu_()
        c = self.relu6(a) + self.ht(b)
        c = torch.add(c, F.relu6(b))
        c += torch.clamp(a, min=0.0, max=2.0)
        c = c.clamp(-1.0, 1.0)
        d = F.hardtanh(self.dw(c), 0.0, 3.0)
        e = torch.cat([d, F.max_pool2d(c, 2)], 1)
        e = F.avg_pool2d(self.avg(self.pool(e)), 2, 1)
        g = F.adaptive_avg_pool2d(e, (2, 2)).contiguous()
        pooled = torch.flatten(e.mean((2, 3), keepdim=True), 1)
        h = self.fc_bn(self.fc(self.drop(self.flat(g))))
        flat = F.dropout(g.view(g.size(0), -1), training=False)
        return h, pooled, flat.reshape(g.size(0) * 2 // 2, 8, 8)  # size arithmetic is skipped


def test_spellings_match_torch():
    model = randomize_batchnorm(SpellingsOk(), seed=3).eval()
    g = verify(from_torch(model, torch.randn(4, 3, 10, 10)))
    ops = [n.op for n in g.nodes]
    for op in ("conv2d", "batchnorm", "relu", "clip", "add", "concat", "maxpool", "avgpool",
               "adaptive_avgpool", "flatten", "dropout", "linear", "reshape"):
        assert op in ops, op
    assert g.node("same").attrs["pad"] == (2, 2, 2, 2)
    assert g.node("dw").attrs["groups"] == 8
    assert {(n.attrs["min"], n.attrs["max"]) for n in g.by_op("clip")} == {
        (0.0, 6.0), (-0.5, 0.5), (0.0, 2.0), (-1.0, 1.0), (0.0, 3.0)}
    assert g.input_nodes()[0].shape == (1, 3, 10, 10)  # batch 1 whatever the example's
    assert parse(print_ir(g)) == g
    report = check_equivalence(g, model, torch.randn(4, 3, 10, 10))
    assert report.ok, str(report)


def test_model_state_untouched():
    model = randomize_batchnorm(SpellingsOk(), seed=3).train()
    before = model.bn.running_mean.clone()
    from_torch(model, input_shape=(3, 10, 10))
    assert model.training and model.bn.training
    assert torch.equal(model.bn.running_mean, before)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Conv2d(3, 3, 1), _DataDependent())

    def forward(self, x):
        return self.inner(x)


class _DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


def test_control_flow_names_the_module():
    with pytest.raises(ImportFailed, match=r"(?s)model Branchy: torch\.fx cannot trace the "
                                           r"forward of 'inner\.1'.*data-dependent control "
                                           r"flow.*leaf"):
        from_torch(Branchy(), input_shape=(3, 4, 4))


class Exotic(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.gelu = nn.GELU()
        self.hs = nn.Hardswish()
        self.lstm = nn.LSTM(8, 8, batch_first=True)
        self.gru = nn.GRU(8, 8, batch_first=True)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        y = self.hs(self.gelu(self.conv(x)))
        y = y * torch.sigmoid(y)
        y = F.silu(y)
        seq = y.flatten(2).transpose(1, 2)
        seq, _ = self.lstm(seq)
        seq, _ = self.gru(seq)
        seq, _ = self.attn(seq, seq, seq)
        return seq


def test_unsupported_all_listed_at_once():
    with pytest.raises(UnsupportedOp) as err:
        from_torch(Exotic(), input_shape=(3, 4, 4))
    msg = str(err.value)
    for what in ("module 'gelu' (GELU)", "module 'hs' (Hardswish)", "module 'lstm' (LSTM)",
                 "module 'gru' (GRU)", "module 'attn' (MultiheadAttention)", "sigmoid",
                 "silu", "node 'mul'", "transpose"):
        assert what in msg, what
    assert msg.startswith("model Exotic: 9 node(s) cannot be imported")
    assert "@fx_converter" in msg


def test_missing_input_shape():
    with pytest.raises(ImportFailed, match=r"(?s)model Sequential: no input shape.*input_shape="
                                           r"\(3, 32, 32\)"):
        from_torch(nn.Sequential(nn.Conv2d(3, 4, 3)))


def test_wrong_input_shape():
    with pytest.raises(ImportFailed, match=r"example input.*\[1, 5, 8, 8\].*failed"):
        from_torch(nn.Sequential(nn.Conv2d(3, 4, 3)), input_shape=(5, 8, 8))


class MyConv(nn.Conv2d):
    """A user subclass of a supported module is converted like its base class."""

    def forward(self, x):
        return super().forward(x)


def test_subclass_of_supported_module_is_a_leaf():
    model = nn.Sequential(MyConv(3, 4, 3, padding=1), nn.ReLU()).eval()
    g = from_torch(model, input_shape=(3, 6, 6))
    assert [n.op for n in g.nodes] == ["input", "conv2d", "relu"]
    assert check_equivalence(g, model, torch.randn(2, 3, 6, 6)).ok


def test_same_padding_even_kernel_is_asymmetric():
    """padding='same' with k=4, dilation 1: torch pads 1 at top/left and 2 at bottom/right."""
    model = nn.Sequential(nn.Conv2d(2, 3, 4, padding="same")).eval()
    g = from_torch(model, input_shape=(2, 7, 7))
    assert g.node("n0").attrs["pad"] == (1, 1, 2, 2)
    assert check_equivalence(g, model, torch.randn(2, 2, 7, 7)).ok
