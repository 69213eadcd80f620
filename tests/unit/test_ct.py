import numpy as np
import pytest

from helpers import ct


def test_window_maps_level_to_half_and_clips():
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 1000.0])
    out = ct.window(hu, 40, 80)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_window_rejects_non_positive_width():
    with pytest.raises(ValueError):
        ct.window(np.zeros(3), 40, 0)


def test_named_windows_are_level_width_pairs():
    assert ct.WINDOWS["brain"] == (40.0, 80.0)
    for _level, width in ct.WINDOWS.values():
        assert width > 0
    assert ct.named_window(np.array([600.0]), "bone")[0] == pytest.approx(0.5)
    with pytest.raises(KeyError):
        ct.named_window(np.zeros(2), "lung-ish")


def test_window_stack_shape_and_channel_order():
    hu = np.linspace(-100, 200, 12, dtype=np.float32).reshape(3, 4)
    stack = ct.window_stack(hu, ("brain", "subdural", "bone"))
    assert stack.shape == (3, 4, 3)
    np.testing.assert_allclose(stack[..., 0], ct.window(hu, 40, 80))
    np.testing.assert_allclose(stack[..., 2], ct.window(hu, 600, 2800))
    assert stack.min() >= 0 and stack.max() <= 1
    quantised = ct.window_stack_uint8(hu, ("brain", "subdural", "bone"))
    assert quantised.dtype == np.uint8 and quantised.shape == stack.shape
    assert np.abs(quantised / 255.0 - stack).max() <= 0.5 / 255 + 1e-7  # rounded, not truncated


def test_freqhist_bins_equal_counts_and_unique_edges():
    rng = np.random.default_rng(0)
    values = np.concatenate([np.full(5000, -1000.0), rng.normal(30, 5, 5000)])
    edges = ct.freqhist_bins(values, 20)
    assert np.all(np.diff(edges) > 0)               # duplicates from the air plateau removed
    assert edges[0] == values.min() and edges[-1] == values.max()
    counts, _ = np.histogram(values[values > -1000], edges[1:])
    assert counts.std() / counts.mean() < 0.2        # roughly equal counts per bin


def test_hist_scaled_is_roughly_uniform_and_monotonic():
    rng = np.random.default_rng(1)
    hu = rng.normal(30, 10, (64, 64)).astype(np.float32)
    scaled = ct.hist_scaled(hu)
    assert scaled.shape == hu.shape and scaled.dtype == np.float32
    assert 0 <= scaled.min() and scaled.max() <= 1
    hist, _ = np.histogram(scaled, bins=10, range=(0, 1))
    assert hist.min() > 0.7 * hist.mean()
    order = np.argsort(hu.ravel())
    assert np.all(np.diff(scaled.ravel()[order]) >= -1e-6)


def test_hist_scaled_with_given_bins_and_constant_image():
    bins = ct.freqhist_bins(np.arange(100.0), 10)
    assert ct.hist_scaled(np.array([0.0, 99.0, 500.0]), bins).tolist() == [0.0, 1.0, 1.0]
    assert ct.freqhist_bins(np.zeros(10)).size == 2
    with pytest.raises(ValueError):
        ct.freqhist_bins(np.array([np.nan]))
