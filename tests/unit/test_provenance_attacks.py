"""Every ownership attack of the registry on a tiny fingerprinted CNN: each returns a valid,
new model; the function-preserving ones leave the logits unchanged and ρ at 1.00; the
fingerprint training option composes with every training method."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from trustflow.data.vision.datasets import ArrayDataset
from trustflow.models.fingerprint.module import extract_fingerprint, insert_fingerprint, pseudo_class
from trustflow.models.vision import build_classifier
from trustflow.tasks.provenance.attacks.base import OWNERSHIP_ATTACKS, AttackContext, make_attack
from trustflow.tasks.provenance.train import FingerprintObjective
from trustflow.tasks.provenance.verify import fingerprint_score
from trustflow.tasks.robustness.training import TRAINING_METHODS, make_method
from trustflow.tasks.robustness.training.loop import train_one_epoch

SIZE = 12


def _data(n: int = 48, seed: int = 0) -> ArrayDataset:
    g = np.random.default_rng(seed)
    x = g.random((n, 1, SIZE, SIZE), dtype=np.float32)
    return ArrayDataset("toy", "train", x, (np.arange(n) % 10).astype(np.int64), 10, (0.5,), (0.3,))


def _model(seed: int = 0, filters: int | None = None) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = build_classifier("small_cnn?width=4", 10, 1, (0.5,), (0.3,))
    insert_fingerprint(m, {"layer": "net.3", "seed": seed, "filters": filters})
    m.train()
    with torch.no_grad():
        m(torch.rand(8, 1, SIZE, SIZE))  # records the grid, moves BN statistics off their init
    for bn in m.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            with torch.no_grad():
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.normal_(0, 0.2)
    return m.eval()


CTX = AttackContext(image_size=SIZE, loader=lambda spec, split, size: _data())
FAST = {"dataset": "toy", "epochs": 1, "max_steps": 2, "batch_size": 16}


def _attack(name: str):  # noqa: ANN202
    fields = OWNERSHIP_ATTACKS.entry(name).options.model_fields
    return make_attack(name, **{k: v for k, v in FAST.items() if k in fields})


@pytest.mark.parametrize("name", OWNERSHIP_ATTACKS.names())
@pytest.mark.parametrize("filters", [None, 6])
def test_every_attack_returns_a_new_valid_model(name: str, filters: int | None) -> None:
    model = _model(filters=filters)
    before = copy.deepcopy(model.state_dict())
    x = torch.rand(5, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y0 = model(x)
    attacked = _attack(name).apply(model, CTX)
    assert attacked is not model
    for k, v in model.state_dict().items():  # the input model is untouched
        assert torch.equal(v, before[k]), k
    with torch.no_grad():
        y1 = attacked(x)
    assert y1.shape == y0.shape and torch.isfinite(y1).all()
    assert not attacked.training
    fp = extract_fingerprint(attacked)
    assert np.isfinite(fp.values).all()
    attack = _attack(name)
    if attack.function_preserving:
        assert float((y1 - y0).abs().max() / y0.abs().max()) <= 1e-5
        assert fingerprint_score(extract_fingerprint(model), fp).rho == 1.0
        changed = any(not torch.equal(v, attacked.state_dict()[k]) for k, v in model.state_dict().items())
        assert changed, f"{name} left every weight as it was"


def test_the_registry_holds_the_seven_attacks() -> None:
    assert set(OWNERSHIP_ATTACKS.names()) >= {
        "fine_tune", "permute", "scale", "combined", "prune", "overwrite", "distill"
    }  # fmt: skip
    assert {n for n in OWNERSHIP_ATTACKS.names() if OWNERSHIP_ATTACKS.get(n).function_preserving} == {
        "permute",
        "scale",
    }


def test_fingerprint_is_read_from_a_differently_initialised_model_as_unrelated() -> None:
    a, b = _model(0), _model(1)
    assert fingerprint_score(extract_fingerprint(a), extract_fingerprint(b)).rho < 0.05


@pytest.mark.parametrize("method", TRAINING_METHODS.names())
def test_fingerprint_training_option_composes_with_every_method(method: str) -> None:
    model = _model().train()
    options = {"steps": 1} if "steps" in TRAINING_METHODS.entry(method).options.model_fields else {}
    trainer = make_method(method, **options)
    state = trainer.init_state(model, seed=0)
    data = _data(32)
    loader = [(torch.from_numpy(data.x[i : i + 16]), torch.from_numpy(data.y[i : i + 16])) for i in (0, 16)]
    w0 = model.net[3].fingerprint.weight.detach().clone()
    head0 = model.net[-1].weight[-1].detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    objective = FingerprintObjective.for_model(model)
    assert objective is not None and objective.weight == 5e-4
    metrics = train_one_epoch(model, trainer, loader, opt, None, state, "cpu", extra_loss=objective)
    assert metrics["stat_anti_overwrite"] > 0
    assert not torch.equal(model.net[3].fingerprint.weight, w0)
    assert not torch.equal(model.net[-1].weight[-1], head0)  # the pseudo-class row is trained
    assert pseudo_class(model) == 10
