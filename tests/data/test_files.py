"""Users' own data (docs/pytorch-backend.md "Data"): npz scaling by dtype, layout detection,
--keys, mean/std, ImageFolder directories, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snnc.compiler.errors import SnncError
from snnc.data import load_dataset
from snnc.data.files import DataSpec
from snnc.data.options import data_options, spec_from


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_float_images_in_unit_range_are_untouched(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 5, 5)).astype(np.float32)
    p = _npz(tmp_path / "f.npz", x=x, y=np.arange(6) % 3)
    ds = load_dataset(p and str(p), "train")
    assert torch.equal(ds.x, torch.from_numpy(x))  # not divided by 255
    assert ds.classes == 3 and ds.y.dtype == torch.int64


def test_uint8_images_are_divided_by_255(tmp_path):
    x = np.array([[[[0, 255], [51, 102]]]], dtype=np.uint8).repeat(2, 0)
    p = _npz(tmp_path / "u.npz", x=x, y=np.array([0, 1]))
    ds = load_dataset(str(p), "test")
    assert torch.allclose(ds.x[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))


def test_nhwc_is_detected_and_layout_overrides(tmp_path):
    x = np.zeros((4, 6, 5, 3), dtype=np.uint8)
    x[..., 1] = 255  # channel 1 (green) full
    p = _npz(tmp_path / "nhwc.npz", x=x, y=np.zeros(4, dtype=np.int64))
    ds = load_dataset(str(p))
    assert ds.x.shape == (4, 3, 6, 5)
    assert ds.x[:, 1].min() == 1 and ds.x[:, 0].max() == 0
    # ambiguous [N, 3, 5, 3]: an error that asks for --layout, then --layout decides
    q = _npz(tmp_path / "amb.npz", x=np.zeros((2, 3, 5, 3), np.uint8), y=np.zeros(2))
    with pytest.raises(SnncError, match="--layout"):
        load_dataset(str(q))
    assert load_dataset(DataSpec(str(q), layout="NHWC")).x.shape == (2, 3, 3, 5)


def test_keys_and_four_way_split(tmp_path):
    p = _npz(tmp_path / "k.npz", a=np.zeros((3, 4, 4), np.uint8), b=np.arange(3),
             c=np.ones((2, 4, 4), np.uint8), d=np.arange(2))
    with pytest.raises(SnncError, match=r"k\.npz.*--keys"):
        load_dataset(str(p))
    spec = spec_from(str(p), keys="a,b,c,d")
    assert len(load_dataset(spec, "train")) == 3 and len(load_dataset(spec, "test")) == 2
    with pytest.raises(SnncError, match="no array named zz"):
        load_dataset(spec_from(str(p), keys="zz,b"))


def test_mean_std(tmp_path):
    p = _npz(tmp_path / "m.npz", x=np.full((2, 1, 2, 2), 0.75, np.float32), y=np.zeros(2))
    ds = load_dataset(spec_from(str(p), mean="0.5", std="0.25"))
    assert torch.allclose(ds.x, torch.ones_like(ds.x))
    with pytest.raises(SnncError, match="--mean and --std"):
        DataSpec(str(p), mean=(0.5,))


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((3, 4, 4), np.int32), np.arange(3), "dtype int32"),
    (np.zeros((3, 4, 4), np.uint8), np.arange(2), "do not match"),
    (np.full((2, 4, 4), np.nan, np.float32), np.arange(2), "NaN"),
    (np.zeros((2, 4, 4), np.uint8), np.array([0.5, 1.0]), "not integer"),
])
def test_bad_arrays_are_clear_errors(tmp_path, x, y, match):
    p = _npz(tmp_path / "bad.npz", x=x, y=y)
    with pytest.raises(SnncError, match=match):
        load_dataset(str(p))


def test_object_arrays_are_never_unpickled(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([object(), object()], dtype=object), y=np.arange(2))
    with pytest.raises(SnncError, match="never unpickles"):
        load_dataset(str(p))


def test_image_folder(tmp_path):
    from PIL import Image

    for split, n in (("train", 3), ("test", 2)):
        for cls, value in (("cat", 0), ("dog", 255)):
            d = tmp_path / "imgs" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((6, 7), value, np.uint8)).save(d / f"{i}.png")
    tr = load_dataset(str(tmp_path / "imgs"), "train")
    te = load_dataset(str(tmp_path / "imgs"), "test")
    assert tr.x.shape == (6, 1, 6, 7) and te.x.shape == (4, 1, 6, 7)
    assert tr.y.tolist() == [0, 0, 0, 1, 1, 1]  # classes in sorted order: cat, dog
    assert tr.x[tr.y == 1].min() == 1 and tr.x[tr.y == 0].max() == 0


def test_data_options_decorator_gives_one_spec(tmp_path):
    import click

    seen = {}

    @click.command()
    @data_options()
    def cmd(data):
        seen["data"] = data

    r = CliRunner().invoke(cmd, ["--data", "x.npz", "--keys", "a,b", "--layout", "nhwc",
                                 "--mean", "0.1,0.2,0.3", "--std", "1,1,1"])
    assert r.exit_code == 0, r.output
    assert seen["data"] == DataSpec("x.npz", ("a", "b"), "NHWC", (0.1, 0.2, 0.3), (1.0,) * 3)
