"""The uncertainty metrics, checked against values worked out by hand on tiny inputs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
import torch
from torchmetrics import Metric, MetricCollection

from zoo import metrics
from zoo.errors import InvalidInputError
from zoo.prediction import Prediction

CLASSIFIER_METRICS: dict[str, Callable[[int], Metric]] = {
    "acc": metrics.Accuracy,
    "nll": lambda c: metrics.NegativeLogLikelihood(),
    "brier": lambda c: metrics.BrierScore(),
    "entropy": lambda c: metrics.PredictiveEntropy(),
    "mi": lambda c: metrics.MutualInformation(),
    "ece": metrics.ExpectedCalibrationError,
    "aece": lambda c: metrics.AdaptiveCalibrationError(),
    "mce": metrics.MaximumCalibrationError,
    "aurc": lambda c: metrics.AURC(),
    "augrc": lambda c: metrics.AUGRC(),
    "cov@5risk": lambda c: metrics.CoverageAtRisk(0.05),
    "risk@80cov": lambda c: metrics.RiskAtCoverage(0.8),
}
OOD_METRICS: dict[str, Callable[[str], Metric]] = {
    "auroc": metrics.OODAUROC,
    "aupr": metrics.OODAveragePrecision,
    "fpr95": metrics.OODFalsePositiveRate,
}
OWN_METRICS = ["nll", "brier", "entropy", "mi", "aece", "aurc", "augrc", "cov@5risk", "risk@80cov"]


def deterministic(rows: Sequence[Sequence[float]]) -> torch.Tensor:
    """(B, 1, C) sample probabilities of a model whose p̄ has the given rows."""
    return torch.tensor(rows, dtype=torch.float64).unsqueeze(1)


def top_label(confidences: Sequence[float], classes: int = 10) -> torch.Tensor:
    """(B, 1, C) probabilities that put each confidence on class 0, the rest spread evenly."""
    rows = [[c] + [(1 - c) / (classes - 1)] * (classes - 1) for c in confidences]
    return deterministic(rows)


def value(metric: Metric, *batch: torch.Tensor, **kwargs: torch.Tensor) -> float:
    metric.update(*batch, **kwargs)
    result = metric.compute()
    assert result.dtype == torch.float64 and result.dim() == 0
    return result.item()


def classifier_values(sample_probs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    classes = sample_probs.shape[2]
    return {
        key: value(build(classes), sample_probs, targets)
        for key, build in CLASSIFIER_METRICS.items()
    }


def test_every_metric_is_a_torchmetrics_metric_with_a_direction() -> None:
    built = [build(10) for build in CLASSIFIER_METRICS.values()]
    built += [build("entropy") for build in OOD_METRICS.values()]
    for metric in built:
        assert isinstance(metric, Metric)
        assert metric.is_differentiable is False
        assert metric.full_state_update is False
        assert metric.higher_is_better in (True, False), type(metric).__name__
    assert metrics.OODFalsePositiveRate().higher_is_better is False


def test_a_perfect_classifier() -> None:
    # Four images, all right, confidences each alone in an equal-width bin:
    # 0.95 in [14/15, 1), 0.85 in [12/15, 13/15), 0.75 in [11/15, 12/15), 0.65 in [9/15, 10/15).
    sample_probs = top_label([0.95, 0.85, 0.75, 0.65])
    got = classifier_values(sample_probs, torch.zeros(4, dtype=torch.long))
    assert got["acc"] == 1.0
    # Every image right: each bin's gap is 1 - its confidence, so ECE = mean(1 - confidence).
    assert got["ece"] == pytest.approx((0.05 + 0.15 + 0.25 + 0.35) / 4)
    assert got["aece"] == pytest.approx(0.2)
    assert got["mce"] == pytest.approx(0.35)
    assert got["nll"] == pytest.approx(-sum(map(math.log, [0.95, 0.85, 0.75, 0.65])) / 4)
    assert got["aurc"] == got["augrc"] == got["risk@80cov"] == 0.0
    assert got["cov@5risk"] == 1.0
    assert got["mi"] == 0.0


def test_a_constant_uniform_predictor() -> None:
    # p̄ = (1/4, 1/4, 1/4, 1/4) for every image, one image of each class; S = 3 equal samples.
    sample_probs = torch.full((4, 3, 4), 0.25, dtype=torch.float64)
    got = classifier_values(sample_probs, torch.arange(4))
    assert got["entropy"] == pytest.approx(math.log(4))
    assert got["nll"] == pytest.approx(math.log(4))
    # (1 - 1/4)^2 + 3 (1/4)^2 = 9/16 + 3/16 = 1 - 1/4.
    assert got["brier"] == pytest.approx(0.75)
    assert got["mi"] == 0.0
    # argmax of a tie is the first class, so only the image of class 0 is right: acc 1/4,
    # which is also the confidence, hence calibrated.
    assert got["acc"] == 0.25
    assert got["ece"] == pytest.approx(0.0)
    # One tie group holding 3 errors in 4: r(k) = 3/4 at every k.
    assert got["aurc"] == pytest.approx(0.75)


def test_calibration_with_two_occupied_bins() -> None:
    # Four images at confidence 0.6 (3 right) and six at 0.9 (3 right), C = 2.
    sample_probs = top_label([0.6] * 4 + [0.9] * 6, classes=2)
    targets = torch.tensor([0, 0, 0, 1, 0, 0, 0, 1, 1, 1])  # 0 = right
    got = classifier_values(sample_probs, targets)
    # Bin of 0.6: |3/4 - 0.6| = 0.15, weight 4/10; bin of 0.9: |1/2 - 0.9| = 0.4, weight 6/10.
    assert got["ece"] == pytest.approx(0.4 * 0.15 + 0.6 * 0.4)
    assert got["mce"] == pytest.approx(0.4)
    # Ten images in 15 equal-mass groups: ten singletons, each counting with the accuracy of
    # its tie group, so aECE = (4 * |3/4 - 0.6| + 6 * |1/2 - 0.9|) / 10, the ECE again.
    assert got["aece"] == pytest.approx(0.3)


def test_ece_and_aece_agree_when_equal_width_and_equal_mass_bins_coincide() -> None:
    # Seven confidences, each alone in its own equal-width bin (bins 7, 8, 9, 10, 11, 12, 14 of
    # width 1/15). Seven images make 15 equal-mass groups of seven singletons and eight empty
    # groups: the same partition, so both are mean |correct - confidence|.
    confidences = [0.52, 0.58, 0.65, 0.71, 0.78, 0.85, 0.97]
    correct = [1, 0, 1, 1, 0, 1, 1]
    order = torch.tensor([3, 6, 0, 5, 1, 4, 2])  # the input order must not matter either
    sample_probs = top_label(confidences)[order]
    targets = torch.tensor([0 if right else 1 for right in correct])[order]
    ece = value(metrics.ExpectedCalibrationError(10), sample_probs, targets)
    aece = value(metrics.AdaptiveCalibrationError(), sample_probs, targets)
    # Gaps 0.48, 0.58, 0.35, 0.29, 0.78, 0.15, 0.03 sum to 2.66.
    assert ece == pytest.approx(2.66 / 7)
    assert aece == pytest.approx(ece, abs=1e-12)


def test_a_confidence_of_exactly_one_falls_in_the_last_of_15_bins() -> None:
    # 1.0 (wrong) and 0.95 (right) share the bin [14/15, 1]: accuracy 1/2, mean confidence
    # 0.975, so both ECE and MCE are 0.475 (a 16th bin for 1.0 would give 0.525 and 1).
    sample_probs, targets = top_label([1.0, 0.95]), torch.tensor([1, 0])
    assert value(metrics.ExpectedCalibrationError(10), sample_probs, targets) == (
        pytest.approx(0.475)
    )
    assert value(metrics.MaximumCalibrationError(10), sample_probs, targets) == (
        pytest.approx(0.475)
    )


def test_aece_does_not_depend_on_the_order_of_tied_confidences() -> None:
    # 16 images at confidence 0.5, 8 wrong: whatever their order, the equal-mass groups must
    # not split right from wrong images that confidence cannot tell apart. Each counts with the
    # tie group's accuracy 1/2, equal to its confidence, so aECE is 0 (as the one-bin ECE is).
    sample_probs = top_label([0.5] * 16, classes=2)
    for order in ([0] * 8 + [1] * 8, [1] * 8 + [0] * 8, [0, 1] * 8):
        targets = torch.tensor(order)
        assert value(metrics.AdaptiveCalibrationError(), sample_probs, targets) == 0.0


def test_non_finite_probabilities_are_rejected() -> None:
    sample_probs = top_label([0.9, 0.8])
    sample_probs[1, 0, 0] = math.nan
    with pytest.raises(InvalidInputError, match="NaN or infinity"):
        metrics.AURC().update(sample_probs, torch.tensor([0, 0]))


def test_aece_cuts_equal_mass_groups_of_near_equal_size() -> None:
    # 30 images, two at each of 15 confidences 0.53, 0.56, ..., 0.95, one right and one wrong:
    # 15 groups of two, each with accuracy 1/2, so aECE = mean(0.03 i for i = 1..15) = 0.24.
    confidences = [0.5 + 0.03 * i for i in range(1, 16) for _ in range(2)]
    targets = torch.tensor([0, 1] * 15)
    assert value(metrics.AdaptiveCalibrationError(), top_label(confidences), targets) == (
        pytest.approx(0.24)
    )
    # 16 images make one group of two (the least confident) and 14 singletons. The two least
    # confident, 0.3 (right) and 0.4 (wrong), share a group: |1/2 - 0.35| * 2/16. The other 14
    # are right with confidence 1, which adds nothing.
    sample_probs = top_label([1.0] * 7 + [0.4, 0.3] + [1.0] * 7)
    targets = torch.tensor([0] * 7 + [1, 0] + [0] * 7)
    assert value(metrics.AdaptiveCalibrationError(), sample_probs, targets) == (
        pytest.approx(0.15 * 2 / 16)
    )


def test_selective_metrics_by_hand() -> None:
    # Most confident first: errors 0, 0, 1, 0, 1, so errors among the top k are 0, 0, 1, 1, 2
    # and r(k) = 0, 0, 1/3, 1/4, 2/5. The images come in shuffled.
    confidences = [0.7, 0.95, 0.6, 0.9, 0.8]
    wrong = [0, 0, 1, 0, 1]
    sample_probs = top_label(confidences)
    targets = torch.tensor(wrong)
    got = classifier_values(sample_probs, targets)
    assert got["aurc"] == pytest.approx((0 + 0 + 1 / 3 + 1 / 4 + 2 / 5) / 5)
    assert got["augrc"] == pytest.approx((0 + 0 + 1 + 1 + 2) / 5 / 5)
    assert got["risk@80cov"] == pytest.approx(1 / 4)  # k = ceil(0.8 * 5) = 4
    assert got["cov@5risk"] == pytest.approx(2 / 5)  # r(k) <= 0.05 for k = 1, 2 only
    # The largest qualifying k, not the last k before the risk first exceeds the limit.
    assert value(metrics.CoverageAtRisk(0.25), sample_probs, targets) == pytest.approx(4 / 5)
    assert value(metrics.RiskAtCoverage(0.5), sample_probs, targets) == pytest.approx(1 / 3)


@pytest.mark.parametrize("wrong_image", [0, 3])
def test_equal_confidences_spread_their_errors_evenly(wrong_image: int) -> None:
    # Four equally confident images with one error: e(k) = k/4, so r(k) = 1/4 at every k and
    # AUGRC = mean(k/4/4) = (1 + 2 + 3 + 4)/64, wherever the error sits in the input.
    targets = torch.zeros(4, dtype=torch.long)
    targets[wrong_image] = 1
    got = classifier_values(top_label([0.7] * 4), targets)
    assert got["aurc"] == pytest.approx(0.25)
    assert got["augrc"] == pytest.approx(10 / 64)
    assert got["risk@80cov"] == pytest.approx(0.25)
    assert math.isnan(got["cov@5risk"])


@pytest.mark.parametrize("errors", [[0, 1, 0, 0], [0, 0, 1, 0]])
def test_risk_coverage_curve_splits_a_tie_group(errors: list[int]) -> None:
    # 0.9 first (right), then a tie group of two at 0.7 holding one error, then 0.5 (right):
    # errors among the top k = 0, 0 + 1/2, 0 + 2/2, 1, so r = 0, 1/4, 1/3, 1/4.
    confidence = torch.tensor([0.9, 0.7, 0.7, 0.5])
    coverage, risk = metrics.risk_coverage_curve(confidence, torch.tensor(errors).bool())
    assert coverage.dtype == risk.dtype == torch.float64
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert risk.tolist() == pytest.approx([0, 1 / 4, 1 / 3, 1 / 4])


def test_shuffling_the_images_leaves_the_selective_metrics_unchanged() -> None:
    generator = torch.Generator().manual_seed(5)
    # Confidences on a coarse grid, so that many images tie.
    confidences = torch.randint(5, 10, (60,), generator=generator) / 10
    targets = torch.randint(0, 2, (60,), generator=generator)
    sample_probs = top_label(confidences.tolist())
    shuffle = torch.randperm(60, generator=generator)
    selective = ["aurc", "augrc", "cov@5risk", "risk@80cov"]
    before = classifier_values(sample_probs, targets)
    after = classifier_values(sample_probs[shuffle], targets[shuffle])
    assert [after[key] for key in selective] == pytest.approx(
        [before[key] for key in selective], rel=1e-12, nan_ok=True
    )


def test_coverage_at_risk_is_nan_when_no_coverage_is_safe_enough() -> None:
    # The most confident image is wrong, the other nine right: r(k) = 1/k > 0.05 for k <= 10.
    confidences = [0.99] + [0.9] * 9
    targets = torch.tensor([1] + [0] * 9)
    assert math.isnan(value(metrics.CoverageAtRisk(0.05), top_label(confidences), targets))
    # With 19 right images after it, r(20) = 1/20 = 0.05 qualifies: full coverage.
    confidences = [0.99] + [0.9] * 19
    targets = torch.tensor([1] + [0] * 19)
    assert value(metrics.CoverageAtRisk(0.05), top_label(confidences), targets) == 1.0


def test_mutual_information() -> None:
    generator = torch.Generator().manual_seed(2)
    one_sample = torch.rand(8, 1, 5, generator=generator, dtype=torch.float64).softmax(dim=-1)
    targets = torch.zeros(8, dtype=torch.long)
    assert value(metrics.MutualInformation(), one_sample, targets) == 0.0
    # Two samples, (0.9, 0.1) and (0.1, 0.9): p̄ is uniform, so MI = log 2 - H(0.9, 0.1).
    disagreeing = torch.tensor([[[0.9, 0.1], [0.1, 0.9]]], dtype=torch.float64)
    h_sample = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    mi = value(metrics.MutualInformation(), disagreeing, torch.tensor([0]))
    assert mi == pytest.approx(math.log(2) - h_sample)
    assert value(metrics.PredictiveEntropy(), disagreeing, torch.tensor([0])) == (
        pytest.approx(math.log(2))
    )


def test_nll_from_log_probs_equals_nll_from_probabilities() -> None:
    generator = torch.Generator().manual_seed(3)
    logits = 3 * torch.randn(6, 4, 5, generator=generator)
    targets = torch.tensor([0, 1, 2, 3, 4, 0])
    prediction = Prediction.from_logits(logits)
    from_probs = value(metrics.NegativeLogLikelihood(), prediction.sample_probs, targets)
    from_logs = value(
        metrics.NegativeLogLikelihood(),
        prediction.sample_probs,
        targets,
        log_probs=prediction.log_probs,
    )
    mean = logits.double().softmax(dim=-1).mean(dim=1)
    by_hand = -mean[torch.arange(6), targets].log().mean().item()
    assert from_probs == pytest.approx(by_hand, rel=1e-5)
    assert from_logs == pytest.approx(by_hand, rel=1e-5)


def test_nll_stays_finite_with_log_probs_where_a_probability_underflows() -> None:
    # Target class 0 has logit gaps of 200 and 300: its float32 probability is 0 in both
    # samples, but log p̄[0] = logsumexp(-200, -300) - log 2 = -200 - log 2 (+ e^-100).
    logits = torch.tensor([[[0.0, 200.0], [0.0, 300.0]]])
    prediction = Prediction.from_logits(logits)
    targets = torch.tensor([0])
    assert prediction.sample_probs[0, :, 0].eq(0).all()
    nll = value(
        metrics.NegativeLogLikelihood(),
        prediction.sample_probs,
        targets,
        log_probs=prediction.log_probs,
    )
    assert nll == pytest.approx(200 + math.log(2), abs=1e-4)
    assert value(metrics.NegativeLogLikelihood(), prediction.sample_probs, targets) == math.inf


def test_a_collection_passes_log_probs_only_to_the_nll() -> None:
    logits = torch.tensor([[[0.0, 200.0]], [[5.0, 0.0]]])
    prediction = Prediction.from_logits(logits)
    targets = torch.tensor([0, 0])
    collection = MetricCollection(
        {key: CLASSIFIER_METRICS[key](2) for key in ("nll", "acc", "ece")},
        compute_groups=False,
    )
    collection.update(prediction.sample_probs, targets, log_probs=prediction.log_probs)
    got = collection.compute()
    # Image 1: -log p[0] = 200 + log(1 + e^-200); image 2: log(1 + e^-5).
    assert got["nll"].item() == pytest.approx((200 + math.log1p(math.exp(-5))) / 2, abs=1e-4)
    assert got["acc"].item() == 0.5


def random_batch(
    images: int, samples: int = 3, classes: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(images, samples, classes, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, classes, (images,), generator=generator)
    return logits.softmax(dim=-1), targets


def build(key: str, classes: int = 4) -> Metric:
    """A fresh metric by its report key, OOD metrics ranking by entropy."""
    if key in OOD_METRICS:
        return OOD_METRICS[key]("entropy")
    return CLASSIFIER_METRICS[key](classes)


@pytest.mark.parametrize("key", list(CLASSIFIER_METRICS) + list(OOD_METRICS))
def test_batch_by_batch_updates_equal_one_update(key: str) -> None:
    sample_probs, targets = random_batch(40)
    if key in OOD_METRICS:
        targets = targets % 2  # about half the images are OOD
    whole = value(build(key), sample_probs, targets)
    batched = build(key)
    for probs, labels in zip(sample_probs.split(13), targets.split(13), strict=True):
        batched.update(probs, labels)
    assert batched.compute().item() == pytest.approx(whole, rel=1e-12, nan_ok=True)
    if key != "cov@5risk":  # NaN is a legitimate Cov@5Risk of a poor random classifier
        assert math.isfinite(whole)


@pytest.mark.parametrize("key", OWN_METRICS)
def test_own_metrics_give_nan_for_no_images(key: str) -> None:
    empty = torch.empty(0, 2, 3, dtype=torch.float64)
    assert math.isnan(value(CLASSIFIER_METRICS[key](3), empty, torch.empty(0, dtype=torch.long)))


def msp_probs(scores: Sequence[float]) -> torch.Tensor:
    """(B, 1, 2) probabilities (1 - s, s): their MSP score 1 - max p̄ is s, for s <= 0.5."""
    return deterministic([[1 - s, s] for s in scores])


def test_ood_metrics_by_hand() -> None:
    # Ranked by score: OOD 0.4, in-dist 0.3, OOD 0.2, in-dist 0.1.
    sample_probs = msp_probs([0.4, 0.3, 0.2, 0.1])
    is_ood = torch.tensor([True, False, True, False])
    # OOD 0.4 beats both in-dist images, OOD 0.2 beats one: 3 of 4 pairs.
    assert value(metrics.OODAUROC("msp"), sample_probs, is_ood) == pytest.approx(3 / 4)
    # Precision 1/1 at recall 1/2, then 2/3 at recall 1.
    aupr = value(metrics.OODAveragePrecision("msp"), sample_probs, is_ood)
    assert aupr == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_fpr95_by_hand() -> None:
    # 20 OOD images, 19 scoring 0.45 and one 0.01. The highest threshold that flags >= 95% of
    # them is 0.45 (19/20 = 0.95 exactly), which flags one of the five in-distribution images
    # (0.46); every lower threshold flags more of them.
    ood_scores = [0.45] * 19 + [0.01]
    in_distribution = [0.1, 0.2, 0.3, 0.46, 0.02]
    sample_probs = msp_probs(ood_scores + in_distribution)
    is_ood = torch.tensor([1] * 20 + [0] * 5)
    assert value(metrics.OODFalsePositiveRate("msp"), sample_probs, is_ood) == pytest.approx(0.2)


def test_ood_scores_use_one_scale_across_batches() -> None:
    # C = 10, p̄ = (a, (1 - a)/9, ...). The first batch has entropies all below 1 nat, the
    # second all above; a per-batch sigmoid (what torchmetrics applies to values outside
    # [0, 1]) would rank them on different scales.
    first = top_label([0.8, 0.9, 0.85])  # H = 0.94, 0.55, 0.75 nats
    second = top_label([0.7, 0.75, 0.5])  # H = 1.27, 1.11, 1.79 nats
    first_ood, second_ood = torch.tensor([0, 0, 1]), torch.tensor([1, 0, 1])
    assert (metrics.ood_score(first, "entropy") < 1).all()
    assert (metrics.ood_score(second, "entropy") > 1).all()
    scores = metrics.ood_score(torch.cat([first, second]), "entropy")
    is_ood = torch.cat([first_ood, second_ood]).bool()
    pairs = scores[is_ood][:, None] - scores[~is_ood][None, :]
    brute_force = ((pairs > 0).double() + 0.5 * (pairs == 0).double()).mean().item()
    # OOD 1.27 and 1.79 beat all three in-dist images (0.94, 0.55, 1.11), OOD 0.75 one of them.
    assert brute_force == pytest.approx(7 / 9)
    auroc = metrics.OODAUROC("entropy")
    auroc.update(first, first_ood)
    auroc.update(second, second_ood)
    assert auroc.compute().item() == pytest.approx(7 / 9)


@pytest.mark.parametrize(("score", "expected"), [("entropy", 0.0), ("msp", 0.0), ("mi", 1.0)])
def test_the_score_decides_what_counts_as_ood(score: str, expected: float) -> None:
    # In-dist: two samples agreeing on (0.5, 0.5): highest entropy and MSP score, MI 0.
    # OOD: samples (1, 0) and (0.2, 0.8) disagree: p̄ = (0.6, 0.4), lower entropy and MSP
    # score, but MI = H(0.6, 0.4) - H(0.2, 0.8)/2 > 0.
    in_distribution = [[0.5, 0.5], [0.5, 0.5]]
    ood = [[1.0, 0.0], [0.2, 0.8]]
    sample_probs = torch.tensor([in_distribution, ood] * 2, dtype=torch.float64)
    is_ood = torch.tensor([0, 1, 0, 1])
    assert value(metrics.OODAUROC(score), sample_probs, is_ood) == pytest.approx(expected)


def test_ood_score_returns_the_raw_score() -> None:
    uniform = torch.full((3, 1, 4), 0.25, dtype=torch.float64)
    assert metrics.ood_score(uniform, "entropy").tolist() == pytest.approx([math.log(4)] * 3)
    assert metrics.ood_score(uniform, "msp").tolist() == pytest.approx([0.75] * 3)
    assert metrics.ood_score(uniform, "mi").tolist() == [0.0] * 3
    assert metrics.OOD_SCORES == ("entropy", "msp", "mi")


def test_unknown_ood_score_is_rejected_with_the_choices() -> None:
    with pytest.raises(InvalidInputError, match=r"'energy'.*entropy, msp, mi"):
        metrics.OODAUROC("energy")
    with pytest.raises(InvalidInputError, match="entropy, msp, mi"):
        metrics.ood_score(torch.full((1, 1, 2), 0.5), "energy")


GOOD_PROBS = torch.full((4, 2, 10), 0.1)
GOOD_TARGETS = torch.tensor([0, 1, 2, 9])


@pytest.mark.parametrize(
    ("sample_probs", "targets", "message"),
    [
        (torch.full((4, 10), 0.1), GOOD_TARGETS, r"\(B, S, C\).*got shape \(4, 10\)"),
        (torch.full((4, 0, 10), 0.1), GOOD_TARGETS, r"S >= 1.*got shape \(4, 0, 10\)"),
        (torch.ones(4, 2, 1), GOOD_TARGETS, r"C >= 2.*got shape \(4, 2, 1\)"),
        (torch.ones(4, 2, 10, dtype=torch.long), GOOD_TARGETS, "floating.*torch.int64"),
        ([[0.5, 0.5]], GOOD_TARGETS, "floating tensor.*list"),
        (GOOD_PROBS, torch.tensor([0, 1, 2]), r"\(B,\) = \(4,\), got shape \(3,\)"),
        (GOOD_PROBS, GOOD_TARGETS[:, None], r"\(B,\) = \(4,\), got shape \(4, 1\)"),
        (GOOD_PROBS, GOOD_TARGETS.float(), r"integer tensor.*torch.float32"),
        (GOOD_PROBS, torch.tensor([0, 1, 2, 10]), r"\[0, 10\), got values from 0 to 10"),
        (GOOD_PROBS, torch.tensor([-1, 1, 2, 3]), r"\[0, 10\)"),
    ],
)
@pytest.mark.parametrize("key", ["acc", "nll", "ece", "aurc"])
def test_bad_inputs_are_rejected(
    key: str, sample_probs: torch.Tensor, targets: torch.Tensor, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        CLASSIFIER_METRICS[key](10).update(sample_probs, targets)


def test_more_bad_inputs_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match=r"\(C = 10\).*got shape \(4, 2, 5\)"):
        metrics.Accuracy(10).update(torch.full((4, 2, 5), 0.2), GOOD_TARGETS % 5)
    with pytest.raises(InvalidInputError, match=r"log_probs.*\(4, 10\), got shape \(4, 9\)"):
        metrics.NegativeLogLikelihood().update(
            GOOD_PROBS, GOOD_TARGETS, log_probs=torch.zeros(4, 9)
        )
    with pytest.raises(InvalidInputError, match=r"is_ood must lie in \[0, 2\)"):
        metrics.OODAUROC().update(GOOD_PROBS, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(InvalidInputError, match=r"errors.*\(3,\), got \(4,\)"):
        metrics.risk_coverage_curve(torch.rand(3), torch.zeros(4))
    with pytest.raises(InvalidInputError, match=r"risk must be in \[0, 1\]"):
        metrics.CoverageAtRisk(1.5)
    with pytest.raises(InvalidInputError, match=r"coverage must be in \(0, 1\]"):
        metrics.RiskAtCoverage(0.0)


def test_every_ood_score_the_command_line_offers_is_computed() -> None:
    from zoo.metrics import ood as ood_module
    from zoo.options import OOD_SCORES

    assert tuple(ood_module._SCORES) == OOD_SCORES


def test_every_exported_metric_resolves_from_the_package() -> None:
    """`zoo.metrics` imports its modules on first use; each name it exports must be found."""
    import zoo.metrics

    for name in zoo.metrics.__all__:
        value = getattr(zoo.metrics, name)
        assert value is not None and name in dir(zoo.metrics), name
        if name != "OOD_SCORES":  # a tuple of names, from zoo.options
            assert value.__module__.startswith("zoo.metrics."), name
