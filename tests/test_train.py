"""Training on a tiny synthetic set: loss goes down, resume continues, BN, augmentation."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktp_tflite.train import config as config_lib
from ktp_tflite.train.augment import augment_and_resize, crop_keeping_boxes, second_look, zoom_out
from ktp_tflite.train.card_layout import TEMPLATE, card_from_fields, zoom_crop
from ktp_tflite.train.config import AugmentConfig, ConfigError, preset, run_config_from_json
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.model import build_model
from ktp_tflite.train.run_folder import RunDirError, RunFolder
from ktp_tflite.train.trainer import (
    build_seeded_model,
    reestimate_batch_norm,
    restore_model,
    train,
)


def _history(run_dir):
    return [json.loads(line) for line in RunFolder(run_dir).history.read_text().splitlines()]


def test_loss_decreases_and_resume_continues_the_step_count(tmp_path, small_synth):
    run_dir = tmp_path / "run"
    config = config_lib.with_overrides(preset("tiny"), steps=20, checkpoint_every=10)
    logs: list[str] = []
    result = train(config, small_synth, run_dir, val_data=small_synth, log=logs.append)
    assert (result.first_step, result.last_step) == (0, 20)
    history = _history(run_dir)
    assert [h["step"] for h in history] == [5, 10, 15, 20]
    losses = [h["loss"] for h in history]
    assert np.mean(losses[-2:]) < 0.8 * losses[0], losses
    assert any(line.startswith("step 20/20") and "img/s" in line for line in logs)
    metrics = json.loads(RunFolder(run_dir).metrics.read_text())
    assert metrics["step"] == 20 and 0.0 <= metrics["map50"] <= 1.0
    assert set(metrics["per_class_ap"]) == set(config_lib.CLASSES)
    stored = run_config_from_json((run_dir / "config.json").read_text())
    assert stored == config

    with pytest.raises(RunDirError, match="--resume"):
        train(config, small_synth, run_dir, log=logs.append)

    longer = config_lib.with_overrides(config, steps=25)
    resumed = train(longer, small_synth, run_dir, resume=True, log=logs.append)
    assert (resumed.first_step, resumed.last_step) == (20, 25)
    assert any("resumed from" in line and "step 20" in line for line in logs)
    assert _history(run_dir)[-1]["step"] == 25
    assert tf.train.latest_checkpoint(str(RunFolder(run_dir).checkpoints)).endswith("ckpt-25")
    restored_config, model = restore_model(run_dir)
    assert restored_config.train.steps == 25
    assert model.outputs[0].shape[1:] == (150, 4)


def test_seed_fixes_the_initial_weights():
    config = preset("tiny").model

    def weights(seed):
        return [w.numpy() for w in build_seeded_model(config, seed).weights]

    first, again, other = weights(3), weights(3), weights(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    random_kernels = [k for k, w in enumerate(first) if w.ndim == 4 and np.std(w) > 0]
    assert random_kernels
    assert not any(np.array_equal(first[k], other[k]) for k in random_kernels)


def test_layers_of_one_shape_start_from_different_weights():
    # a Keras 3 initializer instance shared between layers returns the same values for one shape
    model = build_seeded_model(preset("ktp").model, 0)
    kernels = [w for w in model.weights if w.ndim == 4]
    by_shape = {}
    for kernel in kernels:
        by_shape.setdefault(tuple(kernel.shape), []).append(kernel.numpy())
    repeated = [group for group in by_shape.values() if len(group) > 1]
    assert len(repeated) >= 5  # the repeated MobileNetV2 blocks, extra layers and heads
    for group in repeated:
        for i in range(len(group)):
            for j in range(i):
                assert not np.array_equal(group[i], group[j])


def test_config_json_round_trip_and_errors():
    for name in config_lib.PRESETS:
        config = preset(name)
        assert run_config_from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("large")
    with pytest.raises(ConfigError, match="width multiplier"):
        config_lib.with_overrides(preset("ktp"), width_multiplier=1.4)
    with pytest.raises(ConfigError, match="config.json: unknown ModelConfig"):
        text = preset("tiny").to_json().replace('"num_classes"', '"num_clases"')
        run_config_from_json(text)


def test_cli_preset_list_matches_the_library():
    from ktp_tflite.convert.cli import train as cli_train

    assert cli_train._PRESETS == config_lib.PRESETS


def test_bn_reestimation_sets_population_statistics(small_synth):
    config = dataclasses.replace(preset("tiny"), train=dataclasses.replace(
        preset("tiny").train, batch_size=4))
    model = build_model(config.model)
    used = reestimate_batch_norm(model, config, small_synth, num_images=8)
    assert used == 8
    from ktp_tflite.train.input_pipeline import eval_dataset

    subset = dataclasses.replace(small_synth, examples=small_synth.examples[:8])
    images = np.concatenate([x.numpy() for x, _ in eval_dataset(subset, config.model, 8)])
    conv = keras.Model(model.input, model.get_layer("Conv").output)(images).numpy()
    bn = model.get_layer("Conv.BatchNorm")
    np.testing.assert_allclose(bn.moving_mean.numpy(), conv.mean(axis=(0, 1, 2)),
                               rtol=1e-3, atol=1e-5)
    # Pooled over the two batches of 4: the variance of all 8 images at once.
    np.testing.assert_allclose(bn.moving_variance.numpy(), conv.var(axis=(0, 1, 2)),
                               rtol=1e-3, atol=1e-5)
    assert model.get_layer("Conv.BatchNorm").momentum == config.model.bn_momentum


def _box_image(box_px, size=(120, 160)):
    image = np.zeros(size + (3,), np.float32)
    y0, x0, y1, x1 = box_px
    image[y0:y1, x0:x1] = 255.0
    boxes = np.array([[y0 / size[0], x0 / size[1], y1 / size[0], x1 / size[1]],
                      [0, 0, 0, 0]], np.float32)  # second row: padding
    return tf.constant(image), tf.constant(boxes)


def test_crop_keeps_every_box_whole():
    tf.random.set_seed(0)
    image, boxes = _box_image((30, 40, 50, 120))
    for _ in range(20):
        cropped, new_boxes = crop_keeping_boxes(image, boxes, tf.constant(1), 0.3)
        cropped = cropped.numpy()
        assert (cropped > 0).sum() == (image.numpy() > 0).sum()  # nothing of the box cut off
        h, w = cropped.shape[:2]
        y0, x0, y1, x1 = new_boxes.numpy()[0] * [h, w, h, w]
        np.testing.assert_allclose([y0, x0, y1, x1], [
            np.argmax(cropped[:, :, 0].any(1)), np.argmax(cropped[:, :, 0].any(0)),
            h - np.argmax(cropped[::-1, :, 0].any(1)), w - np.argmax(cropped[:, ::-1, 0].any(0)),
        ], atol=1e-3)


def test_zoom_out_moves_boxes_with_the_pixels():
    tf.random.set_seed(1)
    image, boxes = _box_image((30, 40, 50, 120))
    canvas, new_boxes = zoom_out(image, boxes, tf.constant(1.5))
    canvas = canvas.numpy()
    h, w = canvas.shape[:2]
    assert (h, w) == (180, 240)
    y0, x0, y1, x1 = np.round(new_boxes.numpy()[0] * [h, w, h, w]).astype(int)
    assert (canvas[y0:y1, x0:x1] == 255.0).all()
    assert (canvas > 200).sum() == 20 * 80 * 3


def _card_photo(scale, origin, size=(480, 640)):
    """A black photo with each field's value box, white, where the card template puts it."""
    image = np.zeros(size + (3,), np.float32)
    rows, fields = [], {}
    for name in CLASSES:
        left, top, bottom = TEMPLATE[name][:3]
        x0, y0 = round(origin[0] + scale * left), round(origin[1] + scale * top)
        x1, y1 = round(origin[0] + scale * (left + 300)), round(origin[1] + scale * bottom)
        image[y0:y1, x0:x1] = 255.0
        rows.append([y0 / size[0], x0 / size[1], y1 / size[0], x1 / size[1]])
        fields[name] = (x0, y0, x1, y1)
    rows.append([0, 0, 0, 0])  # padding
    classes = np.array(list(range(len(CLASSES))) + [0], np.int32)
    return image, np.array(rows, np.float32), classes, fields


def test_second_look_cuts_a_small_card_to_the_zooms_crop_and_keeps_its_boxes():
    image, boxes, classes, fields = _card_photo(0.25, (200, 150))  # card 214 px of 640
    expected = zoom_crop(card_from_fields(fields), (640, 480), margin=0.1)
    assert expected is not None
    cropped, moved, cut = second_look(
        tf.constant(image), tf.constant(boxes), tf.constant(classes), tf.constant(5), tf.constant(0.1, tf.float64)
    )
    cropped, moved = cropped.numpy(), moved.numpy()
    left, top, right, bottom = expected
    assert bool(cut) and cropped.shape == (bottom - top, right - left, 3)
    assert (cropped > 0).sum() == (image > 0).sum()  # every box whole
    h, w = cropped.shape[:2]
    for row, (x0, y0, x1, y1) in zip(moved, fields.values()):
        np.testing.assert_allclose(row * [h, w, h, w], [y0 - top, x0 - left, y1 - top, x1 - left], atol=1e-3)
    np.testing.assert_array_equal(moved[5], [0, 0, 0, 0])


def test_second_look_leaves_a_large_card_and_skips_zoom_out_and_crop_when_it_cuts():
    image, boxes, classes, _ = _card_photo(0.6, (60, 60))  # card 514 px of 640: no zoom
    same, moved, cut = second_look(
        tf.constant(image), tf.constant(boxes), tf.constant(classes), tf.constant(5), tf.constant(0.1, tf.float64)
    )
    assert not bool(cut) and same.shape == image.shape
    np.testing.assert_array_equal(moved.numpy(), boxes)
    small, small_boxes, small_classes, _ = _card_photo(0.25, (200, 150))
    config = AugmentConfig(
        second_look_probability=1.0, second_look_margin=(0.1, 0.1), zoom_out_probability=1.0,
        crop_probability=1.0, min_crop_fraction=0.3, max_rotation_degrees=0.0, blur_probability=0.0,
    )
    _, looked_boxes, _ = second_look(
        tf.constant(small), tf.constant(small_boxes), tf.constant(small_classes), tf.constant(5),
        tf.constant(0.1, tf.float64),
    )
    for seed in range(3):
        tf.random.set_seed(seed)
        _, out_boxes = augment_and_resize(
            tf.constant(small), tf.constant(small_boxes), tf.constant(5), (96, 96), config, tf.constant(small_classes)
        )
        np.testing.assert_allclose(out_boxes.numpy(), looked_boxes.numpy(), atol=1e-6)  # no zoom out, no crop
    with pytest.raises(ConfigError, match="second_look_probability"):
        AugmentConfig(second_look_probability=1.5)


def test_augment_outputs_model_sized_images_and_boxes_in_range(small_synth):
    example = small_synth.examples[0]
    image = tf.constant(example.load_rgb())
    boxes = tf.constant([[b.ymin, b.xmin, b.ymax, b.xmax] for b in example.boxes], tf.float32)
    for _ in range(5):
        out, new_boxes = augment_and_resize(image, boxes, tf.constant(len(example.boxes)),
                                            (96, 96), AugmentConfig())
        assert out.shape == (96, 96, 3)
        assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255.0
        b = new_boxes.numpy()
        assert ((b >= 0) & (b <= 1)).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
