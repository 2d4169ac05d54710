import numpy as np
import pytest
import torch

from sklearn_dml._tuples import (
    convert_to_pairs,
    convert_to_triplets,
    get_all_pairs_indices,
    get_all_triplets_indices,
    label_masks,
)

LABELS = [0, 1, 0, 2, 1, 0, 3]  # class 2 and class 3 have a single sample


def _brute_pairs(labels):
    pos, neg = [], []
    for i in range(len(labels)):
        for j in range(len(labels)):
            if labels[i] == labels[j] and i != j:
                pos.append((i, j))
            elif labels[i] != labels[j]:
                neg.append((i, j))
    return pos, neg


def _brute_triplets(labels):
    out = []
    for a in range(len(labels)):
        for p in range(len(labels)):
            for n in range(len(labels)):
                if p != a and labels[p] == labels[a] and labels[n] != labels[a]:
                    out.append((a, p, n))
    return out


def _zip(*tensors):
    return list(zip(*(t.tolist() for t in tensors)))


def test_all_pairs_and_triplets_match_brute_force():
    labels = torch.tensor(LABELS)
    pos, neg = _brute_pairs(LABELS)
    a1, p, a2, n = get_all_pairs_indices(labels)
    assert _zip(a1, p) == pos and _zip(a2, n) == neg
    assert a1.dtype == torch.long
    assert _zip(*get_all_triplets_indices(labels)) == _brute_triplets(LABELS)
    assert _zip(*convert_to_triplets(None, labels)) == _brute_triplets(LABELS)
    a1, p, a2, n = convert_to_pairs(None, labels)
    assert _zip(a1, p) == pos and _zip(a2, n) == neg


def test_no_triplets_when_no_negatives():
    labels = torch.tensor([1, 1, 1])
    a, p, n = get_all_triplets_indices(labels)
    assert a.numel() == p.numel() == n.numel() == 0
    a1, p, a2, n = get_all_pairs_indices(torch.tensor([0, 1, 2]))
    assert a1.numel() == 0 and a2.numel() == 6


def test_pairs_to_triplets_matches_brute_force():
    rng = np.random.default_rng(0)
    pos, neg = _brute_pairs(LABELS)
    pos = [pos[i] for i in rng.choice(len(pos), 7, replace=False)]
    neg = [neg[i] for i in rng.choice(len(neg), 15, replace=False)] + [neg[0]]
    expected = [(a, p, n) for a, p in pos for b, n in neg if a == b]
    pairs = tuple(
        torch.tensor(v, dtype=torch.long)
        for v in (
            [a for a, _ in pos],
            [p for _, p in pos],
            [a for a, _ in neg],
            [n for _, n in neg],
        )
    )
    got = _zip(*convert_to_triplets(pairs, torch.tensor(LABELS)))
    assert got == expected  # same order: by positive pair, then negative pair


def test_pairs_to_triplets_empty():
    empty = torch.zeros(0, dtype=torch.long)
    pairs = (empty, empty, torch.tensor([0]), torch.tensor([1]))
    a, p, n = convert_to_triplets(pairs, torch.tensor([0, 1]))
    assert a.numel() == p.numel() == n.numel() == 0


def test_triplets_to_pairs_are_unique():
    triplets = (
        torch.tensor([0, 0, 2, 0]),
        torch.tensor([2, 2, 0, 5]),
        torch.tensor([1, 3, 1, 1]),
    )
    a1, p, a2, n = convert_to_pairs(triplets, torch.tensor(LABELS))
    assert _zip(a1, p) == sorted({(0, 2), (2, 0), (0, 5)})
    assert _zip(a2, n) == sorted({(0, 1), (0, 3), (2, 1)})


def test_tuples_pass_through_unchanged():
    labels = torch.tensor(LABELS)
    pairs = get_all_pairs_indices(labels)
    assert all(x is y for x, y in zip(convert_to_pairs(pairs, labels), pairs))
    triplets = get_all_triplets_indices(labels)
    assert all(x is y for x, y in zip(convert_to_triplets(triplets, labels), triplets))


def test_bad_tuple_length():
    with pytest.raises(ValueError, match="got a tuple of length 2"):
        convert_to_pairs((torch.tensor([0]), torch.tensor([1])), torch.tensor([0, 0]))


def test_label_masks_of_the_query_rows_are_the_first_rows_of_the_full_masks():
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    positive, negative = label_masks(labels)
    for n_queries in (1, 3, 6):
        pos_q, neg_q = label_masks(labels, n_queries)
        assert pos_q.shape == (n_queries, 6)
        assert torch.equal(pos_q, positive[:n_queries])
        assert torch.equal(neg_q, negative[:n_queries])
