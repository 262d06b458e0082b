"""Reading OD API pipeline.config files without the OD API."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktp_tflite.train.pipeline_config import (
    AnchorConfig,
    PipelineConfigError,
    load_ssd_config,
    parse_text_proto,
)

SAMPLE = Path(__file__).parent / "data" / "ssd_mobilenet_v2_ktp.config"


def test_sample_config_fields():
    config = load_ssd_config(SAMPLE)
    assert config.num_classes == 5
    assert (config.height, config.width) == (300, 300)
    assert config.feature_extractor.type == "ssd_mobilenet_v2"
    assert config.feature_extractor.depth_multiplier == 1.0
    assert config.feature_extractor.min_depth == 16
    assert config.feature_extractor.use_depthwise is False
    assert config.box_predictor.kernel_size == 1
    assert config.box_predictor.box_code_size == 4
    assert config.anchors == AnchorConfig(
        num_layers=6, min_scale=0.2, max_scale=0.95, aspect_ratios=(1.0, 2.0, 0.5, 3.0, 0.3333),
        reduce_boxes_in_lowest_layer=True, interpolated_scale_aspect_ratio=1.0,
    )
    coder = config.box_coder
    assert (coder.y_scale, coder.x_scale, coder.height_scale, coder.width_scale) == (10, 10, 5, 5)
    post = config.post_processing
    assert post.score_threshold == pytest.approx(1e-8)
    assert post.iou_threshold == pytest.approx(0.6)
    assert (post.max_detections_per_class, post.max_total_detections) == (100, 100)
    assert post.score_converter == "SIGMOID"
    assert (config.input_mean, config.input_std) == (127.5, 127.5)
    assert config.source == str(SAMPLE)


def test_text_format_features():
    text = """
    # a comment
    a: 1  b: -2.5e-1, c: 'single' "double" ; d: [1, 2, 3]
    e { f: true g: ENUM_VALUE h < i: "x\\"y" > }
    e: { f: false }
    j: - 4
    k: 1.0f
    """
    message = parse_text_proto(text)
    assert message["a"] == [1] and isinstance(message["a"][0], int)
    assert message["b"] == [-0.25]
    assert message["c"] == ["singledouble"]
    assert message["d"] == [1, 2, 3]
    assert message["e"][0] == {"f": [True], "g": ["ENUM_VALUE"], "h": [{"i": ['x"y']}]}
    assert message["e"][1] == {"f": [False]}
    assert message["j"] == [-4]
    assert message["k"] == [1.0]


def test_other_sections_are_parsed():
    message = parse_text_proto(SAMPLE.read_text())
    train = message["train_config"][0]
    assert train["batch_size"] == [24]
    assert len(train["data_augmentation_options"]) == 2
    assert message["eval_input_reader"][0]["shuffle"] == [False]


@pytest.mark.parametrize("text,line", [("a: 1\nb {\n c: 2\n", None), ("a: 1\n b c\n", 2),
                                       ("a: 1\n$ 2", 2)])
def test_syntax_errors_name_the_line(text, line):
    with pytest.raises(PipelineConfigError) as caught:
        parse_text_proto(text, "my.config")
    assert "my.config" in str(caught.value)
    if line is not None:
        assert f"my.config:{line}:" in str(caught.value)


def _variant(tmp_path, old: str, new: str) -> Path:
    text = SAMPLE.read_text()
    assert old in text
    path = tmp_path / "pipeline.config"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old,new,field", [
    ("ssd_anchor_generator {", "multiscale_anchor_generator {",
     "anchor_generator.multiscale_anchor_generator"),
    ("fixed_shape_resizer {\n        height: 300",
     "keep_aspect_ratio_resizer {\n        height: 300", "image_resizer.keep_aspect_ratio_resizer"),
    ("type: 'ssd_mobilenet_v2'", "type: 'ssd_resnet50_v1_fpn'", "feature_extractor.type"),
    ("score_converter: SIGMOID", "score_converter: IDENTITY", "post_processing.score_converter"),
    ("faster_rcnn_box_coder {", "keypoint_box_coder {", "box_coder.keypoint_box_coder"),
    ("convolutional_box_predictor {", "weight_shared_convolutional_box_predictor {",
     "box_predictor.weight_shared_convolutional_box_predictor"),
    ("box_code_size: 4", "box_code_size: 6", "box_code_size"),
    ("width: 300", "width: 300\n        convert_to_grayscale: true", "convert_to_grayscale"),
    ("num_classes: 5\n    box_coder", "num_classes: 0\n    box_coder", "num_classes"),
    ("min_scale: 0.2", "min_scale: 0.99", "min_scale"),
    ("iou_threshold: 0.6", "iou_threshold: 1.5", "iou_threshold"),
])
def test_unsupported_values_name_field_and_file(tmp_path, old, new, field):
    path = _variant(tmp_path, old, new)
    with pytest.raises(PipelineConfigError) as caught:
        load_ssd_config(path)
    message = str(caught.value)
    assert str(path) in message and field in message


def test_not_an_ssd(tmp_path):
    path = tmp_path / "faster.config"
    path.write_text("model { faster_rcnn { num_classes: 5 } }")
    with pytest.raises(PipelineConfigError, match="only SSD models"):
        load_ssd_config(path)


def test_repeated_singular_field(tmp_path):
    path = _variant(tmp_path, "num_classes: 5\n", "num_classes: 5\n    num_classes: 6\n")
    with pytest.raises(PipelineConfigError, match="num_classes: set 2 times"):
        load_ssd_config(path)


def test_defaults_when_fields_are_omitted(tmp_path):
    path = tmp_path / "minimal.config"
    path.write_text("""
    model { ssd {
      num_classes: 5
      image_resizer { fixed_shape_resizer { height: 320 width: 320 } }
      feature_extractor { type: "ssd_mobilenet_v2_keras" use_depthwise: true }
      box_predictor { convolutional_box_predictor { kernel_size: 3 use_depthwise: true } }
      anchor_generator { ssd_anchor_generator { aspect_ratios: [1.0, 4.0] } }
      box_coder { faster_rcnn_box_coder {} }
      post_processing { batch_non_max_suppression { score_threshold: 0.3 } score_converter: SIGMOID }
    } }""")
    config = load_ssd_config(path)
    assert (config.height, config.width) == (320, 320)
    assert config.feature_extractor.use_depthwise and config.box_predictor.use_depthwise
    assert config.box_predictor.kernel_size == 3
    assert config.anchors.aspect_ratios == (1.0, 4.0) and config.anchors.num_layers == 6
    assert config.box_coder.y_scale == 10.0
    assert config.post_processing.max_total_detections == 100


def test_unreadable_file(tmp_path):
    with pytest.raises(PipelineConfigError, match="cannot read"):
        load_ssd_config(tmp_path / "missing.config")
