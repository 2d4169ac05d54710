import os

# scikit-learn's estimator checks include "array API dispatch with NumPy
# inputs does not change results"; it only runs when SciPy's array API mode is
# on, which must be set before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import torch  # noqa: E402

# Under pytest-xdist every worker is its own process: one torch thread each
# keeps two workers from oversubscribing two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
