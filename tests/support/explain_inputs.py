"""What every explanation method must refuse, whatever its family: `(model, images, targets)`
that do not fit together. Both contract tests (tests/unit/counterfactuals/test_contract.py,
tests/unit/attributions/test_contract.py) call it with their own model and images."""

import numpy as np
import pytest


def assert_rejects_malformed_inputs(method, model, images: np.ndarray, targets) -> None:
    """``method.explain`` raises ValueError for one image without its batch axis, uint8 pixels,
    a NaN pixel and a targets array of the wrong length; ``images`` (two images) and
    ``targets`` (one per image) are valid."""
    targets = list(targets)
    with pytest.raises(ValueError, match="shape"):
        method.explain(model, images[0], targets[:1])
    with pytest.raises(ValueError, match="dtype"):
        method.explain(model, (images * 255).astype(np.uint8), targets)
    with_nan = images.copy()
    with_nan[-1, images.shape[1] // 2, images.shape[2] // 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        method.explain(model, with_nan, targets)
    with pytest.raises(ValueError, match="targets"):
        method.explain(model, images, targets[:1])
    with pytest.raises(ValueError, match="targets"):
        method.explain(model, images, [*targets, targets[0]])
