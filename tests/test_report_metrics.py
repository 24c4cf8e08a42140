"""Per-class accuracy is keyed by class index with the name beside it: two classes of one name
(ImageNet's two "crane"s) stay two entries."""

from __future__ import annotations

import numpy as np

from upt.engine.evaluate import classification_metrics


def test_per_class_accuracy_keeps_classes_that_share_a_name():
    names = ["crane", "dog", "crane", "absent"]
    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    preds = np.array([0, 0, 0, 2, 1, 0, 2])
    metrics = classification_metrics(preds, labels, names)
    assert metrics["per_class_accuracy"] == [
        {"index": 0, "class": "crane", "accuracy": 75.0, "n_images": 4},
        {"index": 1, "class": "dog", "accuracy": 100.0, "n_images": 1},
        {"index": 2, "class": "crane", "accuracy": 50.0, "n_images": 2},
    ]  # class 3 has no test image: left out, as before
    assert metrics["n_images"] == 7 and metrics["accuracy"] == 100.0 * 5 / 7
