"""Operating points: thresholds chosen on val, applied to test; n/a where undefined."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iadbench.metrics.operating import at_threshold, threshold_for_recall, threshold_max_f1


def test_max_f1_threshold_and_counts_on_a_hand_made_case():
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.7, 0.8, 0.3, 0.9])
    # t=0.8: TP 2, P 2 -> F1 0.8; t=0.7: TP 2, P 3 -> 0.667; t=0.3: TP 3, P 4 -> 0.857
    assert threshold_max_f1(labels, scores) == pytest.approx(0.3)
    point = at_threshold(labels, scores, 0.3)
    assert point["precision"] == pytest.approx(0.75) and point["recall"] == 1.0
    assert point["accuracy"] == pytest.approx(0.8) and point["f1"] == pytest.approx(6 / 7)


def test_threshold_for_recall_is_the_highest_reaching_it():
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.7, 0.8, 0.3, 0.9])
    assert threshold_for_recall(labels, scores, 0.6) == pytest.approx(0.8)
    assert threshold_for_recall(labels, scores, 0.7) == pytest.approx(0.3)


def test_all_anomalous_set_reports_recall_and_accuracy_and_nan_auroc_elsewhere():
    labels = np.ones(4, dtype=int)
    point = at_threshold(labels, np.array([0.2, 0.6, 0.7, 0.9]), 0.5)
    assert point["recall"] == 0.75 and point["accuracy"] == 0.75 and point["precision"] == 1.0
    normal = at_threshold(np.zeros(3, dtype=int), np.array([0.2, 0.6, 0.1]), 0.5)
    assert math.isnan(normal["recall"]) and normal["accuracy"] == pytest.approx(2 / 3)
    assert math.isnan(threshold_max_f1(np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.3])))


def test_no_threshold_gives_nan_everywhere():
    point = at_threshold(np.array([0, 1]), np.array([0.1, 0.9]), float("nan"))
    assert all(math.isnan(v) for v in point.values())
