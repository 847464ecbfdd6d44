"""Adversarial training methods (issue 5): registry and options, the step contract of every
method, FGSM-LAW's loss checked by hand, the random starts and step sizes, TRADES with
β = 0, the auto-weight-averaging gate, catastrophic-overfitting detection, the feature
hook, the LR schedules and a 3-epoch training that learns. Tiny models, CPU, seconds."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from trustflow.errors import ConfigError
from trustflow.tasks.robustness.perturb import random_start
from trustflow.tasks.robustness.training import (
    TRAINING_METHODS,
    AutoWeightAveraging,
    CatastrophicOverfittingDetector,
    PerStepLR,
    TrainState,
    features_and_logits,
    lr_schedule_cyclic,
    lr_schedule_piecewise,
    make_method,
    robust_accuracy_probe,
    train_one_epoch,
)

METHODS = ["standard", "pgd_at", "trades", "fgsm_rs", "fgsm_law"]
EPS = 8 / 255


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_cnn(classes: int = 3) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, classes),
    )


def batch(n: int = 6, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand((n, 3, 8, 8), generator=g), torch.randint(0, classes, (n,), generator=g)


def linear2(weights: list[list[float]], bias: list[float]) -> nn.Sequential:
    """A 2-class linear model on 1×2×2 images, float64, fixed weights."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(len(weights[0]), 2)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(weights, dtype=torch.float64))
        model[1].bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return model


# -- registry and options ------------------------------------------------------------------


def test_registry_lists_the_five_methods_and_rejects_unknown_names():
    assert TRAINING_METHODS.names() == sorted(METHODS)
    with pytest.raises(ConfigError, match="unknown training method 'fgsm_lol'.*fgsm_law"):
        make_method("fgsm_lol")


def test_unknown_option_and_bad_value_name_method_and_option():
    with pytest.raises(ConfigError, match=r"training method 'fgsm_law': unknown option 'lamda'"):
        make_method("fgsm_law", lamda=3)
    with pytest.raises(ConfigError, match=r"training method 'pgd_at': option 'steps'"):
        make_method("pgd_at", steps=0)
    with pytest.raises(ConfigError, match=r"training method 'trades': option 'eps'"):
        make_method("trades", eps=-0.1)
    with pytest.raises(ConfigError, match=r"'standard': unknown option 'beta'"):
        make_method("standard", beta=1.0)


def test_defaults_presets_and_step_sizes():
    assert make_method("pgd_at").options.model_dump(include={"eps", "alpha", "steps", "random_start"}) == {
        "eps": EPS,
        "alpha": 2 / 255,
        "steps": 10,
        "random_start": True,
    }
    trades = make_method("trades").options
    assert (trades.beta, trades.steps, trades.alpha, trades.init_std, trades.attack_mode) == (
        6.0,
        10,
        2 / 255,
        0.001,
        "eval",
    )
    assert make_method("fgsm_rs").step_size == pytest.approx(1.25 * EPS)
    assert make_method("fgsm_rs", eps=0.1).step_size == pytest.approx(0.125)
    assert make_method("fgsm_law", eps=0.1).step_size == pytest.approx(0.1)
    c10 = make_method("fgsm_law").options
    assert (c10.lam, c10.smoothing, c10.threshold, c10.eps) == (12.0, 0.7, 0.82, EPS)
    c100 = make_method("fgsm_law", preset="cifar100").options
    assert (c100.lam, c100.smoothing, c100.threshold) == (42.0, 0.5, 0.55)
    assert make_method("fgsm_law", preset="cifar100", lam=5).options.lam == 5.0  # explicit wins


# -- the step contract ---------------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
def test_step_gives_finite_scalar_loss_with_grads_and_bounded_perturbation(name):
    model = tiny_cnn()
    model.train()
    method = make_method(name, steps=2) if name in ("pgd_at", "trades") else make_method(name)
    state = method.init_state(model, seed=0)
    x, y = batch()
    out = method.step(model, x, y, state)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert all(m.training for m in model.modules())  # mode restored after an eval-mode attack
    if name == "standard":
        assert out.x_adv is None and out.logits_adv is None and out.logits_clean is not None
        return
    assert out.x_adv is not None and out.logits_adv is not None
    assert (out.x_adv - x).abs().max() <= EPS + 1e-6
    assert out.x_adv.min() >= 0.0 and out.x_adv.max() <= 1.0
    assert (out.x_adv - x).abs().max() > EPS / 4  # it did perturb
    assert all(math.isfinite(v) for v in out.stats.values())


def test_track_clean_adds_clean_logits_without_touching_batchnorm():
    x, y = batch()
    plain, tracked = tiny_cnn(), tiny_cnn()
    expected = copy.deepcopy(tracked).eval()(x)  # with an eval-mode attack only the loss forward moves BN
    assert (
        make_method("pgd_at", steps=1, attack_mode="eval").step(plain, x, y, TrainState.create()).logits_clean is None
    )
    out = make_method("pgd_at", steps=1, attack_mode="eval", track_clean=True).step(tracked, x, y, TrainState.create())
    assert torch.allclose(out.logits_clean, expected)  # eval-mode clean logits
    assert torch.equal(plain[1].running_mean, tracked[1].running_mean)  # the extra pass left BN alone


def test_random_starts_are_reproducible_from_the_state_generator():
    model = tiny_cnn()
    x, y = batch()
    for name in ("pgd_at", "fgsm_rs", "fgsm_law", "trades"):
        method = make_method(name, steps=1) if name in ("pgd_at", "trades") else make_method(name)
        # a fresh model per call: a loss forward in train mode moves BatchNorm's running stats
        a = method.step(tiny_cnn(), x, y, method.init_state(model, seed=5)).x_adv
        b = method.step(tiny_cnn(), x, y, method.init_state(model, seed=5)).x_adv
        c = method.step(tiny_cnn(), x, y, method.init_state(model, seed=6)).x_adv
        assert torch.equal(a, b), name
        assert not torch.equal(a, c), name


# -- FGSM-LAW ------------------------------------------------------------------------------

W = [[0.5, -0.3, 0.2, 0.1], [-0.2, 0.4, -0.1, 0.3]]
B = [0.05, -0.05]


def test_fgsm_law_loss_matches_a_hand_computation():
    eps, lam, s = 0.1, 12.0, 0.7
    model = linear2(W, B)
    x = torch.tensor([[[[0.2, 0.5], [0.7, 0.4]]], [[[0.6, 0.3], [0.45, 0.8]]]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    method = make_method("fgsm_law", eps=eps, lam=lam, smoothing=s, ema=False)
    out = method.step(model, x, y, method.init_state(model, seed=7))

    # the start: x + eps/2 * sign(U(-1, 1)), drawn from a generator seeded like the state's
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(7)).flatten(1).tolist()
    xs = x.flatten(1).tolist()
    x_adv = []
    for i in range(2):
        other = 1 - y[i].item()
        row = []
        for j in range(4):
            start = xs[i][j] + (eps / 2) * (-1.0 if u[i][j] < 0.5 else 1.0)
            # d CE / dx_j = p_other * (w_other_j - w_y_j): its sign does not depend on the point
            g = 1.0 if W[other][j] - W[y[i].item()][j] > 0 else -1.0
            v = min(max(start + eps * g, xs[i][j] - eps), xs[i][j] + eps)
            row.append(min(max(v, 0.0), 1.0))
        x_adv.append(row)
    assert torch.allclose(out.x_adv.flatten(1), torch.tensor(x_adv, dtype=torch.float64), atol=1e-12)

    def softmax(v):
        e = [math.exp(t - max(v)) for t in v]
        return [t / sum(e) for t in e]

    def logits(v):
        return [sum(W[k][j] * v[j] for j in range(4)) + B[k] for k in range(2)]

    ce = 0.0
    mse_out = mse_feat = mse_x = 0.0
    for i in range(2):
        pa, pc = softmax(logits(x_adv[i])), softmax(logits(xs[i]))
        yi = y[i].item()
        ce += -(s * math.log(pa[yi]) + (1 - s) * math.log(pa[1 - yi])) / 2  # K = 2: (1-s)/(K-1) = 1-s
        mse_out += sum((pc[k] - pa[k]) ** 2 for k in range(2)) / 4  # mean over 2 x 2
        fa, fc = softmax(x_adv[i]), softmax(xs[i])  # features = flattened input (Flatten then Linear)
        mse_feat += sum((fc[j] - fa[j]) ** 2 for j in range(4)) / 8  # mean over 2 x 4
        mse_x += sum((x_adv[i][j] - xs[i][j]) ** 2 for j in range(4)) / 8
    lip = (mse_out + mse_feat) / (mse_x + 0.125)
    expected = ce + lam * lip
    assert out.stats["ce"] == pytest.approx(ce, rel=1e-9)
    assert out.stats["lipschitz"] == pytest.approx(lip, rel=1e-9)
    assert out.loss.item() == pytest.approx(expected, rel=1e-9)


def test_fgsm_law_random_start_is_half_eps_sign_and_step_is_eps():
    eps = 0.1
    method = make_method("fgsm_law", eps=eps, ema=False)
    x = torch.full((8, 1, 2, 2), 0.5, dtype=torch.float64)
    start = method.random_start(x, TrainState.create(seed=3))
    delta = (start - x).flatten()
    assert torch.allclose(delta.abs(), torch.full_like(delta, eps / 2))
    assert 8 <= int((delta > 0).sum()) <= 24  # both signs, roughly balanced over 32 pixels
    # after the step: a pixel whose start agrees with the gradient sign ends at ±eps (clipped
    # from 1.5 eps), one that disagrees at ±eps/2 (-eps/2 + eps)
    model = linear2(W, B)
    y = torch.zeros(8, dtype=torch.long)
    out = method.step(model, x, y, TrainState.create(seed=3))
    g = torch.sign(torch.tensor(W[1]) - torch.tensor(W[0])).double().expand(8, 4)
    d0 = delta.view(8, 4)
    expected = torch.where(torch.sign(d0) == g, eps * g, eps / 2 * g)
    assert torch.allclose((out.x_adv - x).flatten(1), expected)


def test_fgsm_rs_takes_one_step_of_1_25_eps_from_a_uniform_start():
    eps = 0.1
    model = linear2(W, B)
    x = torch.full((16, 1, 2, 2), 0.5, dtype=torch.float64)
    y = torch.randint(0, 2, (16,), generator=torch.Generator().manual_seed(0))
    method = make_method("fgsm_rs", eps=eps)
    out = method.step(model, x, y, method.init_state(model, seed=11))
    start = random_start(x, eps, "linf", torch.Generator().manual_seed(11))
    w = torch.tensor(W, dtype=torch.float64)
    g = torch.sign(w[1 - y] - w[y]).view_as(x)

    def after(alpha):
        return torch.minimum(torch.maximum(start + alpha * g, x - eps), x + eps)

    assert torch.allclose(out.x_adv, after(1.25 * eps))
    assert not torch.allclose(after(1.25 * eps), after(eps))  # the check can tell the step sizes apart


def test_trades_with_beta_zero_is_clean_cross_entropy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3))
    x, y = batch()
    out = make_method("trades", beta=0.0, steps=2).step(model, x, y, TrainState.create())
    assert out.loss.item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)
    assert make_method("trades", steps=2).step(model, x, y, TrainState.create()).loss.item() > out.loss.item()


# -- auto weight averaging -----------------------------------------------------------------


def test_ema_gate_updates_only_below_threshold():
    torch.manual_seed(0)
    ema = AutoWeightAveraging(nn.Linear(2, 2), threshold=0.82)
    y = torch.zeros(4, dtype=torch.long)
    right, wrong = torch.tensor([5.0, 0.0]), torch.tensor([0.0, 5.0])
    clean = torch.stack([right] * 4)
    assert ema.ratio(clean, torch.stack([right] * 3 + [wrong]), y) == 0.75
    assert ema.should_update(clean, torch.stack([right] * 3 + [wrong]), y)  # 3/4 < 0.82
    assert not ema.should_update(clean, clean, y)  # 4/4: FGSM no longer hurts, CO-like
    assert ema.should_update(torch.stack([wrong] * 4), torch.stack([wrong] * 4), y)  # 0 / max(0, 1)
    assert not AutoWeightAveraging(nn.Linear(2, 2), threshold=0.75).should_update(
        clean, torch.stack([right] * 3 + [wrong]), y
    )  # strict <


def test_ema_decay_warm_up_moves_toward_model_and_copies_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = AutoWeightAveraging(model, decay_max=0.5)
    assert all(not p.requires_grad for p in ema.model.parameters()) and not ema.model.training
    decays = []
    for _ in range(10):
        before = ema.model[0].weight.clone()
        with torch.no_grad():
            model[0].weight.add_(1.0)
            model[1].running_mean.normal_()
        d = ema.update(model)
        decays.append(d)
        target = model[0].weight.detach()
        assert torch.allclose(ema.model[0].weight, d * before + (1 - d) * target)
        assert (ema.model[0].weight - target).abs().max() < (before - target).abs().max()
        assert torch.equal(ema.model[1].running_mean, model[1].running_mean)
    assert decays == pytest.approx([min(0.5, (1 + n) / (10 + n)) for n in range(10)])
    assert decays[0] == pytest.approx(0.1) and decays[-1] == 0.5 and ema.n_updates == 10


def test_fgsm_law_reports_ema_updated_and_updates_after_the_optimizer_step():
    x, y = batch()
    for threshold, expected in ((10.0, 1.0), (0.0, 0.0)):  # every ratio < 10; no ratio < 0
        model = tiny_cnn()
        method = make_method("fgsm_law", threshold=threshold)
        state = method.init_state(model, seed=0)
        out = method.step(model, x, y, state)
        assert out.stats["ema_updated"] == expected
        assert state.ema.n_updates == 0  # not before the update
        method.after_optimizer_step(model, state)
        assert state.ema.n_updates == int(expected)


# -- catastrophic overfitting --------------------------------------------------------------


def test_co_flags_pgd_collapse_at_the_right_epoch():
    fgsm = [0.30, 0.38, 0.42, 0.45, 0.47, 0.80, 0.85]
    pgd = [0.22, 0.30, 0.34, 0.37, 0.38, 0.05, 0.02]
    det = CatastrophicOverfittingDetector(drop_threshold=0.2, ratio_threshold=0.5, policy="stop")
    verdicts = [det.check(e, f, p) for e, (f, p) in enumerate(zip(fgsm, pgd, strict=True))]
    assert [v.co for v in verdicts] == [False] * 5 + [True, True]
    v = verdicts[5]
    assert v.rule == "pgd_drop" and v.reason.startswith("pgd_drop") and v.action == "stop" and v.rollback_to == 4
    assert verdicts[0].action == "none" and verdicts[0].reason == "ok"
    assert det.first_co == 5
    table = det.history_table()
    assert table["at"] == list(range(7)) and table["co"][5] is True and table["pgd_acc"][5] == 0.05


def test_co_flags_pgd_far_below_fgsm_and_follows_the_policy():
    det = CatastrophicOverfittingDetector(policy="rollback")
    verdicts = [
        det.check(e, f, p) for e, (f, p) in enumerate(zip([0.4, 0.5, 0.6, 0.7], [0.30, 0.32, 0.31, 0.30], strict=True))
    ]
    assert [v.co for v in verdicts] == [False, False, False, True]
    assert verdicts[3].rule == "pgd_fgsm_gap" and verdicts[3].action == "rollback" and verdicts[3].rollback_to == 1
    assert CatastrophicOverfittingDetector(policy="continue").check(0, 0.8, 0.1).action == "continue"
    with pytest.raises(ConfigError):
        CatastrophicOverfittingDetector(policy="explode")  # type: ignore[arg-type]


def test_co_never_flags_a_healthy_or_an_untrained_model():
    det = CatastrophicOverfittingDetector()
    for e in range(20):
        f = 0.2 + 0.02 * e
        dip = 0.05 if e % 4 == 3 else 0.0
        assert not det.check(e, f, 0.8 * f - dip).co, e
    untrained = CatastrophicOverfittingDetector()
    for e, (f, p) in enumerate([(0.10, 0.0), (0.12, 0.01), (0.11, 0.0)]):
        assert not untrained.check(e, f, p).co


def test_robust_accuracy_probe_restores_mode_and_matches_clean_at_eps_zero():
    model = tiny_cnn()
    model.train()
    x, y = batch(12)
    fgsm_acc, pgd_acc = robust_accuracy_probe(model, x, y, EPS, pgd_steps=3, generator=torch.Generator().manual_seed(0))
    assert 0.0 <= pgd_acc <= 1.0 and 0.0 <= fgsm_acc <= 1.0
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    clean = (model.eval()(x).argmax(1) == y).float().mean().item()
    assert robust_accuracy_probe(model, x, y, 0.0, pgd_steps=2) == (clean, clean)
    assert not model.training  # eval stays eval


# -- features, schedules, loop -------------------------------------------------------------


class _Normalize(nn.Module):
    def forward(self, x):
        return (x - 0.5) / 0.25


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU())
        self.fc = nn.Linear(5, 2)

    def forward_features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.fc(self.forward_features(x))


class _Wrapper(nn.Module):  # stands in for DDP: forward delegates to .module
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)


def test_features_are_the_penultimate_layer_for_sequential_nested_and_wrapped_models():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 2, 2)
    net = _Net()
    expected_feats = net.forward_features(x)
    for model in (net, nn.Sequential(_Normalize(), net), _Wrapper(nn.Sequential(_Normalize(), net))):
        feats, logits = features_and_logits(model, x)
        inp = (x - 0.5) / 0.25 if model is not net else x
        assert torch.allclose(feats, net.forward_features(inp)) and torch.allclose(logits, model(x))
    seq = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 2))
    feats, _ = features_and_logits(seq, x)
    assert torch.allclose(feats, seq[:-1](x))
    feats, _ = features_and_logits(net, x, feature_module="body.1")
    assert feats.shape == (3, 5) and not torch.allclose(feats, expected_feats)  # before the ReLU
    with pytest.raises(ConfigError, match="feature_module 'nope'"):
        features_and_logits(net, x, feature_module="nope")


def test_lr_schedules():
    pw = lr_schedule_piecewise(110, 0.1)
    assert pw(0) == 0.1 and pw(98.9) == 0.1 and pw(99) == pytest.approx(0.01) and pw(104.5) == pytest.approx(0.001)
    cyc = lr_schedule_cyclic(10, 0.2, peak_frac=0.4)
    assert cyc(0) == 0.0 and cyc(4) == pytest.approx(0.2) and cyc(2) == pytest.approx(0.1) and cyc(10) == 0.0
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)
    sched = PerStepLR(opt, lr_schedule_piecewise(2, 0.1, milestones_frac=(0.5,)), steps_per_epoch=4)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(4):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01])


def separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.35 + 0.3 * y.view(-1, 1, 1, 1).float() + (torch.rand((n, 1, 8, 8), generator=g) - 0.5) * 0.2
    return x.clamp(0, 1), y


@pytest.mark.parametrize("name", ["standard", "fgsm_law"])
def test_three_epochs_on_separable_data_improve_clean_accuracy(name):
    torch.manual_seed(0)
    model = nn.Sequential(_Normalize(), nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2))
    x, y = separable(256, 0)
    xt, yt = separable(128, 1)

    def acc():
        model.eval()
        with torch.no_grad():
            return (model(xt).argmax(1) == yt).float().mean().item()

    before = acc()
    method = make_method(name)
    state = method.init_state(model, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    if name == "standard":  # dict batches work too
        loader = [{"image": a, "label": b} for a, b in loader]
    sched = PerStepLR(opt, lr_schedule_piecewise(3, 0.05), steps_per_epoch=len(loader))
    results = [train_one_epoch(model, method, loader, opt, sched.step, state, "cpu") for _ in range(3)]
    after = acc()
    assert before < 0.7 and after >= 0.95, (before, after, results)
    assert state.epoch == 3 and state.step == 24
    r = results[-1]
    assert r["samples"] == 256 and r["steps"] == 8 and r["seconds"] > 0 and r["samples_per_s"] > 0
    assert r["clean_acc"] > 0.9
    if name == "fgsm_law":
        assert r["adv_acc"] > 0.5 and 0.0 <= r["stat_ema_updated"] <= 1.0 and "stat_lipschitz" in r
        assert state.ema.n_updates > 0
        ema_model = state.ema.model
        with torch.no_grad():
            assert (ema_model(xt).argmax(1) == yt).float().mean().item() > 0.9
    else:
        assert math.isnan(r["adv_acc"])
