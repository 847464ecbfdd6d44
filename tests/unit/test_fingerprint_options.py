"""Options of the fingerprint module beyond the paper (models/fingerprint/module.py):
``virtual_grid`` (the band conv), ``radius=0`` on a K-divisible grid (exact invariance
through a whole model's fine-tune), ``normalize`` (scale of the feeding layer not seen) and
``frequencies="cross"`` (U × V only)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trustflow.data.vision.datasets import ArrayDataset
from trustflow.errors import ConfigError
from trustflow.models.fingerprint.checkpoint import load_model, save_model
from trustflow.models.fingerprint.module import extract_fingerprint, fingerprint_layers, insert_fingerprint
from trustflow.models.fingerprint.transform import band_conv, invariant_frequencies, low_pass
from trustflow.models.vision import build_classifier
from trustflow.tasks.provenance.attacks.base import AttackContext, AttackOptions
from trustflow.tasks.provenance.attacks.permute import Permute
from trustflow.tasks.provenance.attacks.scale import scale_model
from trustflow.tasks.provenance.links import find_links, scale_link
from trustflow.tasks.provenance.train import train_classifier
from trustflow.tasks.provenance.verify import complex_cosine, fingerprint_score, prepare

SIZE = 12


def _data(n: int = 64, seed: int = 0) -> ArrayDataset:
    g = np.random.default_rng(seed)
    x = g.random((n, 1, SIZE, SIZE), dtype=np.float32)
    return ArrayDataset("toy", "train", x, (np.arange(n) % 10).astype(np.int64), 10, (0.5,), (0.3,))


def _model(seed: int = 0, **options: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = build_classifier("small_cnn?width=4", 10, 1, (0.5,), (0.3,))
    insert_fingerprint(m, {"layer": "net.3", "seed": seed, **options})
    m.train()
    with torch.no_grad():
        m(torch.rand(8, 1, SIZE, SIZE))  # records the grid
    return m.eval()


@pytest.mark.parametrize("radius", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_band_conv_on_the_input_grid_is_the_circular_conv_of_the_low_pass(radius: int, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(radius)
    x = torch.randn(2, 4, 14, 12, generator=g).to(dtype)
    w = torch.randn(5, 4, 3, 3, generator=g).to(dtype)
    ref = F.conv2d(F.pad(low_pass(x, radius), (1, 1, 1, 1), mode="circular"), w)
    out = band_conv(x, w, radius, (14, 12), 1)
    assert out.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert float((out - ref).abs().max() / ref.abs().max()) < tol


def test_module_with_virtual_grid_equal_to_the_map_computes_the_paper_module() -> None:
    paper, virtual = _model(3), _model(3, virtual_grid=SIZE)
    virtual.load_state_dict(paper.state_dict())
    x = torch.rand(4, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(paper(x), virtual(x), atol=1e-5)
    assert extract_fingerprint(virtual).grid == (SIZE, SIZE)
    assert extract_fingerprint(_model(3, virtual_grid=15)).grid == (15, 15)  # read on M′


def test_radius_zero_on_a_divisible_grid_keeps_the_fingerprint_exactly_through_a_combined_attack() -> None:
    """r = 0 and K | M′: the module sees only each channel's tap sum, so every gradient is a
    constant over the taps and S′ does not move, whatever the lr (momentum and weight decay
    included: they only add constants and scale). The paper's r = 1 module drifts under the
    same attack."""
    steps = {"epochs": 1, "lr": 0.5, "batch_size": 16, "fingerprint": False, "seed": 1, "max_steps": 3}
    rhos, cosines = {}, {}
    for label, opts in {"r0": {"radius": 0, "virtual_grid": 15}, "paper": {}}.items():
        source = _model(4, **opts)
        attacked = Permute(AttackOptions(seed=2)).apply(source, AttackContext(image_size=SIZE))
        scale_model(attacked, 0.1, 10.0, torch.Generator().manual_seed(5))
        w0 = fingerprint_layers(attacked)["net.3"].fingerprint.weight.detach().clone()
        train_classifier(attacked, _data(48), **steps)  # type: ignore[arg-type]
        w1 = fingerprint_layers(attacked)["net.3"].fingerprint.weight.detach()
        assert float((w1 - w0).abs().max()) > 1e-2 * float(w0.abs().max())  # the filters did move
        match = fingerprint_score(extract_fingerprint(source), extract_fingerprint(attacked))
        rhos[label], cosines[label] = match.rho, match.mean_cosine
    assert rhos["r0"] == 1.0 and cosines["r0"] > 1 - 1e-5
    assert cosines["paper"] < cosines["r0"]


def test_normalised_module_ignores_the_scale_of_its_input_and_the_scale_attack_leaves_it_alone() -> None:
    model = _model(5, normalize=True)
    fp = fingerprint_layers(model)["net.3"].fingerprint
    x = torch.rand(3, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert torch.allclose(fp(7.5 * x), fp(x), atol=1e-5)
    feeding = next(link for link in find_links(model) if "net.3" in link.consumers)
    w0 = fp.weight.detach().clone()
    xin = torch.rand(5, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y0 = model(xin)
    scaled = copy.deepcopy(model)
    scale_link(scaled, feeding, 8.0)
    with torch.no_grad():
        y1 = scaled(xin)
    assert float((y1 - y0).abs().max() / y0.abs().max()) <= 1e-5  # still function-preserving
    assert torch.equal(fingerprint_layers(scaled)["net.3"].fingerprint.weight, w0)
    plain = _model(5)  # without normalisation the module's filters take the reciprocal
    scale_link(plain, feeding, 8.0)
    assert not torch.equal(fingerprint_layers(plain)["net.3"].fingerprint.weight, fp.weight)


def test_cross_selection_is_u_times_v_and_travels_with_the_checkpoint(tmp_path: Path) -> None:
    freqs = invariant_frequencies(3, (28, 28), "cross")
    assert freqs.tolist() == [[9, 9], [9, 19], [19, 9], [19, 19]]
    paper = {tuple(f) for f in invariant_frequencies(3, (28, 28)).tolist()}
    assert {tuple(f) for f in freqs.tolist()} <= paper
    with pytest.raises(ConfigError):
        invariant_frequencies(3, (28, 28), "diagonal")
    with pytest.raises(ConfigError):
        insert_fingerprint(build_classifier("small_cnn?width=4", 10, 1), {"layer": "net.3", "frequencies": "x"})
    model = _model(6, frequencies="cross")
    fp = extract_fingerprint(model)
    assert fp.selection == "cross" and fp.values.shape[2] == 4
    back = load_model(save_model(tmp_path / "m.pt", model, "small_cnn?width=4"))
    assert extract_fingerprint(back).selection == "cross"
    assert fingerprint_score(fp, extract_fingerprint(back)).rho == 1.0
    # a suspect without a module is read at the source's layer, grid and selection
    probe = torch.rand(4, 1, SIZE, SIZE)
    plain = build_classifier("small_cnn?width=4", 10, 1, (0.5,), (0.3,))
    sus = prepare("plain", plain, probe, fp)
    assert sus.fingerprint is not None and sus.fingerprint.selection == "cross"
    assert sus.fingerprint.values.shape[2] == 4
    assert np.isfinite(complex_cosine(fp.values, sus.fingerprint.values, axis=1)).all()


def test_anti_overwrite_training_runs_with_every_new_option() -> None:
    for opts in ({"radius": 0, "virtual_grid": 15}, {"normalize": True}, {"virtual_grid": 24}):
        model = _model(7, **opts)
        w0 = fingerprint_layers(model)["net.3"].fingerprint.weight.detach().clone()
        history = train_classifier(model, _data(32), epochs=1, lr=0.05, batch_size=16, max_steps=2)
        assert history[-1]["stat_anti_overwrite"] > 0, opts
        assert not torch.equal(fingerprint_layers(model)["net.3"].fingerprint.weight, w0), opts


def test_a_fingerprinted_checkpoint_loads_through_the_classifier_spec(tmp_path: Path) -> None:
    """``robustness eval --model ckpt:…`` / ``run:…`` of a model trained with ``--fingerprint``:
    the generic loader re-inserts the module and pseudo-class head, same logits as the
    provenance loader (before: the state_dict did not fit the plain architecture)."""
    from trustflow.models.vision.spec import load_classifier

    model = _model(6)
    path = save_model(tmp_path / "fp.pt", model, "small_cnn?width=4")
    generic = load_classifier(f"ckpt:{path}", num_classes=None, in_channels=None)
    x = torch.rand(3, 1, SIZE, SIZE)
    with torch.no_grad():
        assert torch.allclose(generic(x), load_model(path)(x), atol=1e-6)
    assert fingerprint_score(extract_fingerprint(model), extract_fingerprint(generic)).rho == 1.0
