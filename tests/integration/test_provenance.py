"""End to end on real data: embed a fingerprint into two small Fashion-MNIST sources, run the
combined attack (permute + scale + fine-tune on digits) on one, trace the pool on Ray: the
attacked model is traced to its source and an independent model to none."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trustflow.data.vision.datasets import FASHION_MNIST_DIR, load_dataset
from trustflow.models.fingerprint.checkpoint import load_model, save_model
from trustflow.models.fingerprint.module import insert_fingerprint
from trustflow.models.vision import build_classifier
from trustflow.tasks.provenance.attacks.base import AttackContext, make_attack
from trustflow.tasks.provenance.train import train_classifier
from trustflow.tasks.provenance.verify import score_pool, trace

pytestmark = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST not installed (make datasets)",
)
ARCH = "small_cnn?width=8"


def test_combined_attack_is_traced_to_its_source(tmp_path: Path, ray_cluster: None) -> None:
    torch.set_num_threads(2)
    train = load_dataset("fashion-mnist", "train").subset(2000)

    def fingerprinted(seed: int) -> Path:
        torch.manual_seed(seed)
        m = build_classifier(ARCH, 10, 1, train.mean, train.std)
        insert_fingerprint(m, {"layer": "net.3", "seed": seed})
        train_classifier(m, train, epochs=1, lr=0.05, seed=seed)
        return save_model(tmp_path / f"m{seed}.pt", m, ARCH)

    src_a, src_b, independent = fingerprinted(1), fingerprinted(2), fingerprinted(3)
    attacked = make_attack("combined?lr=0.01&epochs=1&limit=600", seed=0).apply(
        load_model(src_a), AttackContext(image_size=28)
    )
    suspect = save_model(tmp_path / "suspect.pt", attacked, ARCH)
    assert load_model(suspect).net[3].fingerprint.weight.shape == (16, 8, 3, 3)

    probe = load_dataset("fashion-mnist", "test").x[:128]
    rows, _ = score_pool([str(src_a), str(src_b)], [str(suspect), str(independent)], probe, use_ray=True)
    by = {(r["source"], r["suspect"]): r["fingerprint"] for r in rows}
    assert by[("m1", "suspect")] > 0.5 > by[("m2", "suspect")]
    assert max(by[("m1", "m3")], by[("m2", "m3")]) < 0.1
    result = trace(rows, {"suspect": "m1", "m3": None}, {"suspect": "combined", "m3": "independent"}, "fingerprint")
    assert result.per_group == {"combined": 1.0, "independent": 1.0}
