"""Symmetric label noise: every class (the last included) is drawn, the rate is the asked one, noisy labels
are really wrong and uniform over the other classes, and the noise is seeded."""

from __future__ import annotations

import pytest
import torch

from gflowout.data.label_noise import symmetric_label_noise


def clean_labels(count: int = 20000, classes: int = 10) -> torch.Tensor:
    return torch.arange(count) % classes


def test_every_class_appears_as_a_noisy_label_at_the_asked_rate():
    labels = clean_labels()
    noisy = symmetric_label_noise(labels, 0.3, 10, seed=1)
    assert noisy.rate == pytest.approx(0.3, abs=1e-12)
    assert int(noisy.flipped.sum()) == 6000
    drawn = torch.bincount(noisy.labels[noisy.flipped], minlength=10)
    assert bool((drawn > 0).all()), f"a class is never drawn as a noisy label: {drawn.tolist()}"
    assert int(drawn[9]) > 0  # the official code's randint(min, max) never drew the last class
    assert bool((noisy.labels[noisy.flipped] != labels[noisy.flipped]).all())
    assert torch.equal(noisy.labels[~noisy.flipped], labels[~noisy.flipped])


def test_noisy_labels_are_uniform_over_the_other_classes():
    labels = torch.zeros(90000, dtype=torch.long)  # every clean label is 0: the noisy ones spread over 1..9
    noisy = symmetric_label_noise(labels, 0.5, 10, seed=2)
    counts = torch.bincount(noisy.labels[noisy.flipped], minlength=10)
    assert int(counts[0]) == 0
    assert counts[1:].tolist() == pytest.approx([5000] * 9, rel=0.06)  # 45000 / 9 each; SE about 1.4 %


def test_noise_is_seeded_and_leaves_its_input_alone():
    labels = clean_labels(1000)
    before = labels.clone()
    first = symmetric_label_noise(labels, 0.3, 10, seed=5)
    assert torch.equal(first.labels, symmetric_label_noise(labels, 0.3, 10, seed=5).labels)
    assert not torch.equal(first.labels, symmetric_label_noise(labels, 0.3, 10, seed=6).labels)
    assert torch.equal(labels, before)


def test_two_classes_and_bad_input():
    labels = torch.tensor([0, 1] * 50)
    noisy = symmetric_label_noise(labels, 1.0, 2, seed=0)
    assert torch.equal(noisy.labels, 1 - labels)
    with pytest.raises(ValueError, match="rate"):
        symmetric_label_noise(labels, 1.5, 2, seed=0)
    with pytest.raises(ValueError, match="0..1"):
        symmetric_label_noise(torch.tensor([0, 2]), 0.3, 2, seed=0)
    with pytest.raises(ValueError, match="num_classes"):
        symmetric_label_noise(labels, 0.3, 1, seed=0)
