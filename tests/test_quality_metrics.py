import pytest

from rbft import quality
from rbft.evaluate import metrics


def test_metrics_on_a_known_confusion():
    m = metrics(["a", "a", "a", "b"], ["a", "a", "b", "b"], ["a", "b", "c"])
    assert m["accuracy"] == 0.75
    assert m["confusion"] == [[2, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert m["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["b"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)  # classes absent from the data do not count


def test_leakage_counts_the_reasoning_not_the_classification_line():
    assert quality.leaks_label("The person falls down. Classification: fall", "fall")
    assert not quality.leaks_label("The shape drops quickly.\nClassification: fall", "fall")
    assert quality.leaks_label("This is a near miss event.", "near_miss")


def test_repetition_and_diversity():
    assert quality.repetition("the cat sat the cat sat the cat sat") > 0.5
    assert quality.repetition("a red ball rolls left across the floor") == 0
    assert quality.distinct_n(["a b", "a b"], 1) == 0.5


def test_filters():
    rows = [{"status": "generated", "support_ok": 1}, {"status": "rejected", "support_ok": 1},
            {"status": "generated", "support_ok": 0}, {"status": "accepted", "support_ok": 0}]
    assert len(quality.select(rows, "all")) == 4
    assert len(quality.select(rows, "not_rejected")) == 3
    assert quality.select(rows, "supported") == [rows[0], rows[3]]
    with pytest.raises(ValueError, match="not been scored"):
        quality.select([{"status": "generated", "support_ok": None}], "supported")
