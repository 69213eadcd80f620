import numpy as np
import pytest

from helpers import detection


def blob(shape, centre, half, value=0.9, out=None):
    out = np.zeros(shape) if out is None else out
    box = tuple(slice(c - h, c + h + 1) for c, h in zip(centre, half))
    out[box] = value
    return out


def test_candidates_are_3d_components_in_mm():
    prob = blob((10, 20, 20), (3, 5, 5), (1, 1, 1), 0.8)
    prob[3, 5, 5] = 0.95
    blob((10, 20, 20), (7, 15, 14), (0, 1, 1), 0.6, out=prob)
    c = detection.candidates(prob, spacing_zyx=(2.0, 0.5, 0.5))
    assert len(c["scores"]) == 2
    np.testing.assert_allclose(c["scores"], [0.95, 0.6], atol=1e-5)    # max probability, best first
    np.testing.assert_allclose(c["centres_mm"][0], [6.0, 2.5, 2.5])    # centroid × spacing
    np.testing.assert_allclose(c["sizes"], [27, 9])
    # two touching slices make ONE 3-D component; below the threshold, none
    prob2 = blob((4, 8, 8), (1, 3, 3), (0, 1, 1)) + blob((4, 8, 8), (2, 4, 4), (0, 1, 1))
    assert len(detection.candidates(prob2)["scores"]) == 1
    assert len(detection.candidates(prob * 0.5)["scores"]) == 0


def test_candidates_tied_at_a_saturated_maximum_are_ordered_by_their_mean():
    prob = blob((6, 20, 20), (2, 4, 4), (1, 1, 1), 0.7)
    prob[2, 4, 4] = 1.0                                              # a false positive's single hot voxel
    blob((6, 20, 20), (2, 14, 14), (1, 1, 1), 1.0, out=prob)         # a nodule confidently 1.0 throughout
    c = detection.candidates(prob)
    assert c["scores"][0] > c["scores"][1] and c["scores"][1] >= 1.0
    np.testing.assert_allclose(c["centres_mm"][0], [2, 14, 14])
    assert c["scores"][0] - c["scores"][1] < 1e-6                     # below float32 resolution of a probability
    # the FROC reads the tie apart: at the first operating point the nodule is found without the FP
    m = detection.match(c, np.array([[2.0, 14, 14]]), np.array([3.0]))
    curve = detection.froc([m])
    assert curve["sensitivity_curve"][0] == 1.0 and curve["fps_per_scan"][0] == 0.0


def test_match_hit_inside_radius_miss_outside_each_nodule_once():
    cands = {"centres_mm": np.array([[10, 10, 10], [10, 10, 13.9], [10, 10, 11], [50, 50, 50.0]]),
             "scores": np.array([0.9, 0.8, 0.7, 0.6])}
    nodules, radii = np.array([[10, 10, 10.0], [10, 30, 10]]), np.array([4.0, 2.0])
    m = detection.match(cands, nodules, radii)
    np.testing.assert_array_equal(m["hit"], [0, 0, 0, -1])
    np.testing.assert_allclose(m["nodule_scores"], [0.9, -np.inf])    # best hit; second nodule missed
    np.testing.assert_allclose(m["fp_scores"], [0.6])                  # extra hits are not FPs
    miss = detection.match({"centres_mm": np.array([[10, 10, 14.1]]), "scores": np.array([0.9])}, nodules, radii)
    assert miss["hit"][0] == -1 and len(miss["fp_scores"]) == 1       # 4.1 mm > radius 4 mm
    empty = detection.match({"centres_mm": np.zeros((0, 3)), "scores": np.zeros(0)}, nodules, radii)
    assert np.isneginf(empty["nodule_scores"]).all() and len(empty["fp_scores"]) == 0


def result(nodule_scores, fp_scores):
    return {"nodule_scores": np.asarray(nodule_scores, float), "fp_scores": np.asarray(fp_scores, float)}


def test_froc_counts_fps_per_scan_and_uses_the_step_rule():
    # 4 scans, 4 nodules; thresholds in score order: 0.9 (TP), 0.8 (FP), 0.7 (TP), 0.6 (FP) ...
    scans = [result([0.9, 0.7], [0.8]), result([-np.inf], [0.6, 0.5]), result([0.4], []), result([], [0.3])]
    f = detection.froc(scans, fp_rates=(0.125, 0.25, 0.5, 1.0, 2.0))
    assert f["n_nodules"] == 4 and f["n_scans"] == 4
    # fps/scan: 0 FPs -> sens 1/4; 1 FP (0.25/scan) -> 2/4; 3 FPs (0.75) -> 3/4; 4 FPs (1.0) -> 3/4
    np.testing.assert_allclose(f["sensitivity"], [0.25, 0.5, 0.5, 0.75, 0.75])
    assert np.all(np.diff(f["sensitivity"]) >= 0)
    # a scan without nodules and without candidates still counts in the per-scan FP rate
    g = detection.froc(scans + [result([], [])], fp_rates=(0.2,))
    assert g["n_scans"] == 5 and g["sensitivity"] == [0.5]
    assert detection.recall(scans) == pytest.approx(0.75)


def test_cpm_perfect_detector_is_one_and_no_detections_zero():
    perfect = [result([0.9, 0.8], []), result([0.7], [])]
    assert detection.cpm(perfect) == pytest.approx(1.0)
    none = [result([-np.inf, -np.inf], []), result([-np.inf], [])]
    assert detection.cpm(none) == 0.0
    # only false positives above every nodule: a detector drowned in FPs scores low
    noisy = [result([0.1], [0.9] * 20)]
    assert detection.cpm(noisy) == 0.0
    assert np.isnan(detection.cpm([result([], [0.5])]))               # no nodules: undefined


def test_end_to_end_and_plot():
    prob = blob((12, 24, 24), (4, 6, 6), (1, 2, 2), 0.9)
    blob((12, 24, 24), (9, 18, 18), (0, 1, 1), 0.7, out=prob)
    spacing = np.array([2.0, 1.0, 1.0])
    m = detection.match(detection.candidates(prob, spacing), [[8.0, 6.0, 6.0]], [3.0])
    assert np.isfinite(m["nodule_scores"]).all() and len(m["fp_scores"]) == 1
    f = detection.froc([m])
    fig = detection.plot_froc(f, label="toy")
    assert fig.axes[0].get_xlabel() == "false positives per scan"
    import matplotlib.pyplot as plt

    plt.close(fig)
