"""The MNIST CNN both fedchain and the Flower app train."""

from __future__ import annotations

import sys
from typing import Any

from lib.paths import FLOWER_APP


def build_mnist_cnn() -> Any:
    """fedchain's MNIST CNN (``fedchain.shared.fl.models``) when its FL core is there, else the
    identical definition shipped with the Flower app (conv32-pool-conv64-pool-FC512-FC10)."""
    try:
        from fedchain.shared.fl.models import build_model  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        if str(FLOWER_APP) not in sys.path:
            sys.path.insert(0, str(FLOWER_APP))
        from fcbench.task import MnistCNN  # type: ignore[import-not-found,unused-ignore]

        return MnistCNN()
    return build_model("mnist-cnn", "mnist")
