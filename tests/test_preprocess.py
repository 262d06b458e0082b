import numpy as np
import pytest

from ktp_tflite.train.preprocess import resize_rgb, tf_resize_rgb, to_model_input

tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize("size", [(300, 300), (320, 320), (960, 1280)])
def test_numpy_and_tensorflow_resize_agree(size):
    yy, xx = np.mgrid[0:480, 0:640]
    smooth = ((np.sin(xx / 7.0) + np.cos(yy / 5.0)) * 60 + 128).clip(0, 255).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, size=(480, 640), dtype=np.uint8)
    for channel in (smooth, noise):
        image = np.stack([channel] * 3, axis=-1)
        ours = resize_rgb(image, *size).astype(np.float32)
        theirs = tf_resize_rgb(image, *size).numpy()
        assert ours.shape == theirs.shape == (*size, 3)
        assert np.abs(ours - theirs).max() <= 1.0
        assert np.abs(ours - theirs).mean() < 0.4


def test_model_input_range():
    values = to_model_input(np.array([[[0, 127, 255]]], dtype=np.uint8))
    np.testing.assert_allclose(values, [[[-1.0, -0.003921569, 1.0]]], atol=1e-6)
    with pytest.raises(ValueError, match="RGB"):
        resize_rgb(np.zeros((4, 4), np.uint8), 2, 2)
