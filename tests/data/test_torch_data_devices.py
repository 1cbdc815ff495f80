"""Data users have, and where work runs (docs/pytorch-backend.md "Data" and "Devices"): torch
Datasets/DataLoaders as input, --device resolution (CPU-only CI: auto is the CPU, cuda is a
clean exit 2), module paths that create no tensor off their input's device, the search's
split sizes that fit the dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader, TensorDataset

from snnc.compiler.errors import SnncError
from snnc.data import load_dataset
from snnc.data.device import resolve_device
from snnc.search.evaluate import split_sizes

HAS_CUDA = torch.cuda.is_available()


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    assert resolve_device(None).type == resolve_device("auto").type
    with pytest.raises(SnncError, match="--device tpu: use cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(SnncError, match="cuda or cuda:N"):
        resolve_device("cuda:x")


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_user_error():
    with pytest.raises(SnncError, match="torch sees no CUDA GPU.*--device cpu"):
        resolve_device("cuda")


def test_torch_dataset_and_dataloader_follow_the_npz_rules():
    x = torch.zeros(10, 6, 5, 3, dtype=torch.uint8)  # NHWC uint8
    x[..., 2] = 255
    y = torch.arange(10) % 4
    ds = load_dataset(TensorDataset(x, y), "train")
    assert ds.x.shape == (10, 3, 6, 5) and ds.x.dtype == torch.float32
    assert ds.x[:, 2].min() == 1 and ds.x[:, :2].max() == 0  # /255, channel moved
    assert torch.equal(ds.y, y) and ds.classes == 4
    f = torch.rand(7, 1, 4, 4) * 0.5  # float images: kept as they are
    dl = load_dataset(DataLoader(TensorDataset(f, torch.arange(7)), batch_size=3), limit=5)
    assert torch.equal(dl.x, f[:5])


def test_torch_data_errors_name_the_problem():
    class Triples(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.zeros(1, 2, 2), 0, "extra"

    with pytest.raises(SnncError, match=r"Triples \(Python\).*\(x, y\) pairs"):
        load_dataset(Triples())
    with pytest.raises(SnncError, match="labels are float32, not integer"):
        load_dataset(TensorDataset(torch.zeros(2, 1, 2, 2), torch.tensor([0.5, 1.0])))


def test_search_split_sizes_fit_the_dataset():
    assert split_sizes(60000, None, None) == (2000, 1000)
    assert split_sizes(1437, None, None) == (958, 479)  # digits' training split
    assert split_sizes(1437, 500, None) == (500, 937)
    assert split_sizes(1437, None, 200) == (1237, 200)
    with pytest.raises(SnncError, match="has 1437 training samples; --train 2000 plus --val "
                                        "1000 need 3000"):
        split_sizes(1437, 2000, 1000, "dataset 'digits'")
    with pytest.raises(SnncError, match="--val 1437 leaves none"):
        split_sizes(1437, None, 1437)


@pytest.mark.parametrize("residual", ["s2s", "s2m", "v2v"])
def test_module_paths_create_nothing_on_the_cpu(residual):
    """Forward and backward on the 'meta' device: any tensor made on the CPU inside the module
    (a factory without device=) would fail to mix with the meta input. Covers direct encoding,
    BNTT, lif scans, every residual kind and the readout."""
    from snnc.compiler import compile as snnc_compile
    from snnc.search.nets import SingleBlockNet

    torch.manual_seed(0)
    net = SingleBlockNet(channels=4, in_channels=1, input_size=8).eval()
    m = snnc_compile(net, timesteps=2, input_shape=(1, 8, 8), residual=residual).to_torch()
    m.to("meta").train()
    y = m(torch.zeros(3, 1, 8, 8, device="meta"))
    y.sum().backward()
    assert y.device.type == "meta" and y.shape == (3, 10)
    assert all(p.grad is None or p.grad.device.type == "meta" for p in m.parameters())


def test_search_reads_a_torch_dataset_once():
    from snnc.data import Dataset
    from snnc.search.evaluate import EvalSettings, _split
    from snnc.search.prepare import resolve_data

    x = torch.randint(0, 256, (30, 1, 8, 8), dtype=torch.uint8)
    s = resolve_data(EvalSettings(data=TensorDataset(x, torch.arange(30) % 10)))
    assert isinstance(s.data, Dataset) and (s.train, s.val) == (20, 10)
    xt, yt, xv, yv = _split(s.data, s.train, s.val, 8, 1)
    assert torch.equal(xt, x[:20].float() / 255) and torch.equal(yv, torch.arange(20, 30) % 10)


def test_search_refuses_gpus_per_task_with_cpu(tmp_path):
    from snnc.compiler.cli import cli

    r = CliRunner().invoke(cli, ["search", "single-block", "--data", "digits",
                                 "--gpus-per-task", "1", "--device", "cpu", "-o",
                                 str(tmp_path / "s")])
    assert r.exit_code == 2 and "--device cpu keeps the work off it" in r.output
    if not HAS_CUDA:
        r = CliRunner().invoke(cli, ["search", "single-block", "--data", "digits", "--device",
                                     "cuda", "-o", str(tmp_path / "t")])
        assert r.exit_code == 2 and "torch sees no CUDA GPU" in r.output


def test_calibration_of_an_events_graph_takes_a_data_spec():
    """`snnc cost --calibrate digits` passes a DataSpec: an events-encoded graph gets the
    -events set, as snnc train feeds it."""
    from snnc.backends.pytorch.activity import calibration_samples
    from snnc.compiler import compile as snnc_compile
    from snnc.data.files import DataSpec
    from snnc.search.nets import SingleBlockNet

    torch.manual_seed(0)
    net = SingleBlockNet(channels=4, in_channels=2, input_size=8).eval()
    g = snnc_compile(net, timesteps=3, input_shape=(2, 8, 8), encoder="events").graph
    x, what = calibration_samples(DataSpec("digits"), g, 4)
    assert x.shape == (3, 4, 2, 8, 8) and "digits-events" in what
