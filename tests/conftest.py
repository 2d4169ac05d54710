import os

# scikit-learn's estimator checks include "array API dispatch with NumPy
# inputs does not change results"; it only runs when SciPy's array API mode is
# on, which must be set before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

# Under pytest-xdist every worker is its own process: one torch thread each
# keeps two workers from oversubscribing two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    """The first 200 digits scaled to [0, 1]: a quick training set."""
    X, y = load_digits(return_X_y=True)
    return X[:200] / 16, y[:200]
