"""Few-shot evaluation: episodes, the two classifiers, the interval, the scorer."""

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV

from sklearn_dml.metrics import _few_shot, few_shot_accuracy, make_few_shot_scorer
from sklearn_dml.model_selection import ClassDisjointKFold


def _recorded_episodes(monkeypatch):
    """Record every index array the episode sampler returns."""
    drawn = []
    original = _few_shot._draw_episodes

    def recording(*args):
        index = original(*args)
        drawn.append(index)
        return index

    monkeypatch.setattr(_few_shot, "_draw_episodes", recording)
    return drawn


def numpy_episode_accuracy(X, y, episode, n_shot, classifier, metric):
    """Accuracy of one episode, query by query (episode: (n_way, n_take) indices)."""

    def distance(a, b):
        if metric == "cosine":
            return 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        return np.linalg.norm(a - b)

    correct = []
    for true_way, row in enumerate(episode):
        for q in row[n_shot:]:
            if classifier == "prototype":
                scores = [
                    distance(X[q], X[support[:n_shot]].mean(axis=0))
                    for support in episode
                ]
                predicted = int(np.argmin(scores))
            else:
                best = min(
                    (distance(X[q], X[s]), way)
                    for way, support in enumerate(episode)
                    for s in support[:n_shot]
                )
                predicted = best[1]
            correct.append(predicted == true_way)
    return np.mean(correct)


@pytest.fixture(scope="module")
def noisy_blobs():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(8), [12, 9, 10, 30, 9, 11, 8, 15])
    centres = rng.normal(size=(8, 4))
    return centres[y] + rng.normal(scale=0.9, size=(y.size, 4)), y


@pytest.mark.parametrize("classifier", ["prototype", "nearest_neighbor"])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_accuracy_matches_a_query_by_query_computation(
    noisy_blobs, monkeypatch, classifier, metric
):
    X, y = noisy_blobs
    drawn = _recorded_episodes(monkeypatch)
    result = few_shot_accuracy(
        X, y, n_way=3, n_shot=3, n_query=4, n_episodes=40,
        classifier=classifier, metric=metric, random_state=0,
    )  # fmt: skip
    episodes = np.concatenate(drawn)
    assert episodes.shape == (40, 3, 7)
    expected = [
        numpy_episode_accuracy(X, y, e, 3, classifier, metric) for e in episodes
    ]
    np.testing.assert_allclose(result.episode_accuracies, expected)
    assert result.accuracy == pytest.approx(np.mean(expected))
    assert result.ci95 == pytest.approx(1.96 * np.std(expected) / np.sqrt(40))
    assert 0.3 < result.accuracy < 1.0  # neither trivial nor perfect


def test_episodes_hold_distinct_classes_and_distinct_samples(noisy_blobs, monkeypatch):
    X, y = noisy_blobs
    drawn = _recorded_episodes(monkeypatch)
    few_shot_accuracy(
        X, y, n_way=4, n_shot=2, n_query=7, n_episodes=300, random_state=1
    )
    episodes = np.concatenate(drawn)
    classes = y[episodes]
    # One class per row of an episode, n_way distinct classes per episode.
    assert (classes == classes[..., :1]).all()
    assert all(len(set(c[:, 0])) == 4 for c in classes)
    assert all(len(set(e.ravel())) == e.size for e in episodes)
    # Classes with fewer than n_shot + n_query = 9 samples never appear
    # (class 6 has 8); every other class does, the sampling is uniform-ish.
    counts = np.bincount(classes[..., 0].ravel(), minlength=8)
    assert counts[6] == 0
    assert counts[[0, 1, 2, 3, 4, 5, 7]].min() > 0.6 * 300 * 4 / 7


def test_episodes_are_seeded_and_do_not_depend_on_the_chunk_size(
    noisy_blobs, monkeypatch
):
    X, y = noisy_blobs
    kwargs = dict(n_way=3, n_shot=1, n_query=5, n_episodes=70)
    a = few_shot_accuracy(X, y, random_state=3, **kwargs).episode_accuracies
    b = few_shot_accuracy(X, y, random_state=3, **kwargs).episode_accuracies
    c = few_shot_accuracy(X, y, random_state=4, **kwargs).episode_accuracies
    monkeypatch.setattr(_few_shot, "_CHUNK_ENTRIES", 1)  # one block per chunk
    d = few_shot_accuracy(X, y, random_state=3, **kwargs).episode_accuracies
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, d)
    assert not np.array_equal(a, c)


def test_separated_classes_score_one_and_random_labels_chance():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(6), 20)
    separated = 100.0 * np.eye(6)[y] + rng.normal(size=(120, 6))
    perfect = few_shot_accuracy(separated, y, n_episodes=50, random_state=0)
    assert perfect.accuracy == 1.0 and perfect.ci95 == 0.0
    shuffled = few_shot_accuracy(
        separated, rng.permutation(y), n_episodes=400, random_state=0
    )
    assert abs(shuffled.accuracy - 1 / 5) < 3 * shuffled.ci95 + 0.01


def test_prototype_and_nearest_neighbour_differ_only_with_several_shots(noisy_blobs):
    X, y = noisy_blobs

    def accuracies(classifier, n_shot):
        return few_shot_accuracy(
            X, y, n_way=3, n_shot=n_shot, n_query=4, n_episodes=64,
            classifier=classifier, random_state=0,
        ).episode_accuracies  # fmt: skip

    np.testing.assert_array_equal(
        accuracies("prototype", 1), accuracies("nearest_neighbor", 1)
    )
    assert not np.array_equal(
        accuracies("prototype", 4), accuracies("nearest_neighbor", 4)
    )


def test_cosine_ignores_the_norm_that_the_euclidean_distance_sees():
    # Two classes along two directions with wildly different norms: the
    # cosine separates them, the Euclidean distance confuses the short ones.
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 30)
    directions = np.array([[1.0, 0.1], [0.1, 1.0]])[y]
    X = directions * rng.choice([0.1, 10.0], size=(60, 1))
    cosine = few_shot_accuracy(
        X, y, n_way=2, n_shot=1, n_query=5, n_episodes=100, metric="cosine",
        random_state=0,
    )  # fmt: skip
    euclidean = few_shot_accuracy(
        X, y, n_way=2, n_shot=1, n_query=5, n_episodes=100, random_state=0
    )
    assert cosine.accuracy == 1.0
    assert euclidean.accuracy < 0.9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_way": 9}, "needs 9 classes"),
        ({"n_shot": 10, "n_query": 10}, "at least 20 samples"),
        ({"n_way": 1}, "n_way"),
        ({"n_shot": 0}, "n_shot"),
        ({"classifier": "svm"}, "classifier"),
        ({"metric": "manhattan"}, "metric"),
        ({"n_episodes": 2.5}, "n_episodes"),
    ],
)
def test_few_shot_errors(noisy_blobs, kwargs, message):
    X, y = noisy_blobs
    with pytest.raises(ValueError, match=message):
        few_shot_accuracy(X, y, **{"n_query": 5, **kwargs})


def test_labels_must_match_the_embeddings(noisy_blobs):
    X, y = noisy_blobs
    with pytest.raises(ValueError, match="labels has"):
        few_shot_accuracy(X, y[:-1])


def test_scorer_in_grid_search_with_class_disjoint_folds():
    X, y = load_digits(return_X_y=True)
    scorer = make_few_shot_scorer(n_way=5, n_shot=1, n_query=10, n_episodes=100)
    cv = ClassDisjointKFold(n_splits=2, shuffle=True, random_state=0)
    search = GridSearchCV(PCA(), {"n_components": [1, 16]}, scoring=scorer, cv=cv)
    search.fit(X, y)
    assert search.best_params_ == {"n_components": 16}
    # Each fold's score is the few-shot accuracy on that fold's unseen classes.
    train, test = next(cv.split(X, y))
    assert not set(y[train]) & set(y[test])
    model = PCA(n_components=16).fit(X[train])
    expected = few_shot_accuracy(
        model.transform(X[test]), y[test], n_way=5, n_shot=1, n_query=10,
        n_episodes=100, random_state=0,
    ).accuracy  # fmt: skip
    assert search.cv_results_["split0_test_score"][1] == pytest.approx(expected)


def test_scorer_repr_pickle_and_errors():
    scorer = make_few_shot_scorer(n_shot=5)
    assert "make_few_shot_scorer(n_way=5, n_shot=5" in repr(scorer)
    assert repr(pickle.loads(pickle.dumps(scorer))) == repr(scorer)
    with pytest.raises(ValueError, match="n_way"):
        make_few_shot_scorer(n_way=0)
    with pytest.raises(TypeError, match="no transform"):
        scorer(object(), np.ones((4, 2)), [0, 0, 1, 1])
