"""Class-balanced batches: m samples of each of a few classes per batch."""

from collections import Counter

import numpy as np
import pytest

from sklearn_dml.samplers import MPerClassSampler


def _labels(sizes):
    return np.repeat(np.arange(len(sizes)), sizes)


def test_each_batch_holds_m_samples_of_each_chosen_class():
    labels = _labels([20] * 10)
    sampler = MPerClassSampler(
        labels, batch_size=16, samples_per_class=4, random_state=0
    )
    batches = list(sampler)
    assert len(batches) == len(sampler) == 13  # ceil(200 / 16)
    n_classes = []
    for batch in batches:
        counts = Counter(labels[batch])
        n_classes.append(len(counts))
        assert set(counts.values()) == {4}
        assert len(set(batch.tolist())) == len(batch)  # no index twice in a batch
    # Four classes a batch, but where the shuffled rounds of classes join a
    # class may come up twice and is drawn once.
    assert set(n_classes) <= {3, 4} and n_classes.count(4) >= len(batches) - 3


def test_an_epoch_visits_the_classes_about_equally():
    labels = _labels([30] * 12)
    sampler = MPerClassSampler(
        labels, batch_size=12, samples_per_class=3, random_state=1
    )
    seen = Counter(labels[np.concatenate(list(sampler))])
    assert max(seen.values()) - min(seen.values()) <= 3 * 2


def test_samples_of_a_class_are_drawn_without_repetition_until_used_up():
    labels = _labels([8, 8])
    sampler = MPerClassSampler(
        labels, batch_size=4, samples_per_class=2, n_batches=4, random_state=0
    )
    drawn = np.concatenate(list(sampler))
    assert sorted(drawn.tolist()) == list(range(16))


def test_few_classes_fill_the_batch_with_more_samples_each():
    labels = _labels([50, 50])
    batch = next(iter(MPerClassSampler(labels, batch_size=32, samples_per_class=4)))
    assert len(batch) == 32
    assert Counter(labels[batch]) == {0: 16, 1: 16}


def test_a_small_class_contributes_all_its_samples_once():
    labels = _labels([2, 10, 10])
    sampler = MPerClassSampler(
        labels, batch_size=12, samples_per_class=4, random_state=0
    )
    for batch in sampler:
        counts = Counter(labels[batch])
        assert counts.get(0, 0) in (0, 2)


@pytest.mark.parametrize("labels", [["a", "b", "a", "b"], [3.5, 1.0, 3.5, 1.0]])
def test_any_hashable_labels(labels):
    batch = next(iter(MPerClassSampler(labels, batch_size=4, samples_per_class=2)))
    assert sorted(batch.tolist()) == [0, 1, 2, 3]


def test_same_seed_same_batches_other_seed_other_batches():
    labels = _labels([10] * 6)

    def run(seed):
        return [b.tolist() for b in MPerClassSampler(labels, 8, 2, random_state=seed)]

    assert run(0) == run(0)
    assert run(0) != run(1)
