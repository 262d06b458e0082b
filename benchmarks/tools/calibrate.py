"""Calibrate the device profiles against the published Pixel latencies.

Usage (from a checkout; ``--out`` is required, nothing is written into the
installed package)::

    python -m ktp_tflite.benchmarks.tools.calibrate --out benchmarks/profiles  # refit from the stored op costs
    python -m ktp_tflite.benchmarks.tools.calibrate --rebuild --out DIR        # rebuild the reference models first

``--out`` receives the five profile JSONs (and, with ``--rebuild``,
``reference_costs.json``); give ``benchmarks/profiles`` of a checkout to
update what the project ships. Without ``--rebuild`` the op costs are read
from ``--costs`` (default: the bundled ``profiles/reference_costs.json``).

``--rebuild`` builds the reference architectures with random weights (latency
does not depend on weight values) and converts them to .tflite: MobileNet v1
1.0 224 and MobileNet v2 1.0 224 (``keras.applications``), EfficientNet-Lite0
(built here from the paper's block table: no SE, ReLU6, 407 M MACs), SSD
MobileNet v1 300 (MobileNet v1 backbone at 300x300, the OD API's four extra
layers, 1x1 box predictors, 1917 anchors, 90 classes, fused post-process)
in float and full-int8 (2 random calibration samples). It also builds the
default KTP int8 model (``ktp`` preset) and, as a held-out sanity check for
the derived Pixel 6 profile, SSD MobileNet v2 256x256 float with 90 classes.
Every model's per-op costs are stored in ``profiles/reference_costs.json``
so the fit (and its test) can be rerun without TensorFlow.

The fit and its leave-one-out errors (:mod:`ktp_tflite.benchmarks.tools.latency_fit`)
are written into every profile JSON with the device facts (:data:`DEVICES`)
and sources.
EfficientDet-Lite0/1/2 (Pixel 4 int8 rows in
docs/REFERENCES.md, 'Pixel CPU latency, TFLite benchmark_model') are not
built: BiFPN is out of scope here, so those rows are not used.

Why one file: one offline flow (reference models -> op costs in ``reference_costs.json`` -> fit
-> profile JSONs); ``REFERENCE_ROWS`` and ``PIXEL6_CHECK`` pick both what is built and what is fitted.
If it grows, the model builders (``_efficientnet_lite0``, ``_ssd_mobilenet_v1_300``,
``_classifier_tflite``, ``_ssd_tflite``, :func:`build_reference`) could move to reference_models.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

from ktp_tflite.benchmarks.profiles import (
    PARAMETER_NAMES,
    CoreCluster,
    DeviceProfile,
    Parameter,
    profile_from_dict,
)
from ktp_tflite.benchmarks.projection import PARAMETER_UNITS, project, project_rows
from ktp_tflite.benchmarks.tools.latency_fit import (
    OD_NO_DOTPROD,
    PRIOR_SIGMA,
    PRIORS,
    REFERENCE_ROWS,
    ReferenceRow,
    fit_with_loo,
)

COSTS_FILE = "reference_costs.json"
TARGET_LOO_PERCENT = 25.0  # the target for every reference row
DERIVED_EXTRA_BAND = 15.0  # points added to the LOO band for devices without published rows
CORES_SOURCE = (
    "docs/REFERENCES.md, 'Pixel CPU cores' (clusters, clocks; SIMD pipes: 'A76 and A78: 2x128-bit "
    "NEON pipes with int8 dot product; X1: 4x128-bit pipes')"
)


@dataclasses.dataclass(frozen=True)
class DeviceFacts:
    """What is known of a phone before the fit: its CPU and where that comes from.

    Attributes:
      display_name: e.g. "Pixel 4 (Snapdragon 855)".
      soc: the system on chip.
      cores: the CPU clusters.
      status: "fitted" (its published rows are in the fit) or "derived" (core facts only).
      facts_source: where the core facts come from.
      notes: caveats copied into the profile.
    """

    display_name: str
    soc: str
    cores: tuple[CoreCluster, ...]
    status: str
    facts_source: str
    notes: tuple[str, ...] = ()


DEVICES: dict[str, DeviceFacts] = {
    "pixel3": DeviceFacts(
        display_name="Pixel 3 (Snapdragon 845)",
        soc="Snapdragon 845",
        cores=(
            CoreCluster("Kryo 385 Gold (Cortex-A75)", count=4, ghz=2.80, neon_pipes_128b=1.0, dotprod=False),
            CoreCluster("Kryo 385 Silver (Cortex-A55)", count=4, ghz=1.77, neon_pipes_128b=0.5, dotprod=False),
        ),
        status="fitted",
        facts_source=(
            "NOT in docs/REFERENCES.md (general knowledge, uncertain): Snapdragon 845 = 4x A75-class 2.8 GHz + "
            "4x A55-class 1.77 GHz; A75 SIMD taken as 2x64-bit (one 128-bit pipe equivalent). No dot "
            "product: SDOT/UDOT raise 'illegal instruction' on the Snapdragon 845, which does not support "
            "them, the 855 does (gemmlowp maintainer, github.com/google/gemmlowp/issues/175); consistent "
            "with the published int8/float ratio of 1.8x on Pixel 3 against 2.8x on Pixel 4"
        ),
        notes=("Kept as a calibration device: its 5 published rows double the reference set.",),
    ),
    "pixel4": DeviceFacts(
        display_name="Pixel 4 (Snapdragon 855)",
        soc="Snapdragon 855",
        cores=(
            CoreCluster("Cortex-A76 prime", count=1, ghz=2.84, neon_pipes_128b=2.0, dotprod=True),
            CoreCluster("Cortex-A76", count=3, ghz=2.42, neon_pipes_128b=2.0, dotprod=True),
            CoreCluster("Cortex-A55", count=4, ghz=1.80, neon_pipes_128b=0.5, dotprod=True),
        ),
        status="fitted",
        facts_source=CORES_SOURCE,
    ),
    "pixel6": DeviceFacts(
        display_name="Pixel 6 (Google Tensor G1)",
        soc="Tensor G1",
        cores=(
            CoreCluster("Cortex-X1", count=2, ghz=2.80, neon_pipes_128b=4.0, dotprod=True),
            CoreCluster("Cortex-A76", count=2, ghz=2.25, neon_pipes_128b=2.0, dotprod=True),
            CoreCluster("Cortex-A55", count=4, ghz=1.80, neon_pipes_128b=0.5, dotprod=True),
        ),
        status="derived",
        facts_source=CORES_SOURCE,
        notes=(
            "No published benchmark_model rows: numbers follow from the core facts with the shared fit.",
            (
                "Assumes the 4 threads land on 2x X1 + 2x A76 and that XNNPACK's dynamic work split "
                "uses their summed throughput."
            ),
        ),
    ),
    "pixel7": DeviceFacts(
        display_name="Pixel 7 (Google Tensor G2)",
        soc="Tensor G2",
        cores=(
            CoreCluster("Cortex-X1", count=2, ghz=2.85, neon_pipes_128b=4.0, dotprod=True),
            CoreCluster("Cortex-A78", count=2, ghz=2.35, neon_pipes_128b=2.0, dotprod=True),
            CoreCluster("Cortex-A55", count=4, ghz=1.80, neon_pipes_128b=0.5, dotprod=True),
        ),
        status="derived",
        facts_source=CORES_SOURCE,
        notes=("No published rows: derived from core facts (A78 treated like A76 per clock).",),
    ),
    "pixel8": DeviceFacts(
        display_name="Pixel 8 (Google Tensor G3)",
        soc="Tensor G3",
        cores=(
            CoreCluster("Cortex-X3", count=1, ghz=2.91, neon_pipes_128b=4.0, dotprod=True),
            CoreCluster("Cortex-A715", count=4, ghz=2.37, neon_pipes_128b=2.0, dotprod=True),
            CoreCluster("Cortex-A510", count=4, ghz=1.70, neon_pipes_128b=0.5, dotprod=True),
        ),
        status="derived",
        facts_source=(
            "Clusters and clocks: docs/REFERENCES.md, 'Pixel CPU cores'. NOT in docs/REFERENCES.md: X3 "
            "taken as 4x128-bit and A715 as 2x128-bit SIMD pipes (Arm's public core descriptions); the "
            "int8 matrix-multiply (i8mm) extension of these Armv9 cores is not modelled, so int8 may be "
            "underestimated"
        ),
        notes=("No published rows: derived from core facts; A715 treated like A76 per clock and pipe.",),
    ),
}
# A published latency kept out of the fit: the held-out check of the derived Pixel 6 profile.
PIXEL6_CHECK = ReferenceRow(
    model="ssd_mobilenet_v2_256",
    precision="float",
    device="pixel6",
    ms=36.3,
    source="MediaPipe object detector, SSD MobileNetV2 256x256 fp32, Pixel 6 CPU, whole task "
    "(ai.google.dev mediapipe object_detector page; "
    "docs/REFERENCES.md, 'MediaPipe object detector, Pixel 6 CPU')",
)


def device_profile(name: str, params: dict[str, float] | None = None, band: float = 100.0) -> DeviceProfile:
    """A profile from :data:`DEVICES` with given (or prior) parameter values."""
    facts = DEVICES[name]
    params = params or {n: PRIORS[n][0] for n in PARAMETER_NAMES}
    return DeviceProfile(
        name=name,
        display_name=facts.display_name,
        soc=facts.soc,
        threads=4,
        status=facts.status,
        cores=facts.cores,
        facts_source=facts.facts_source,
        parameters={n: Parameter(params[n], PARAMETER_UNITS[n], "prior") for n in PARAMETER_NAMES},
        error_band_percent=band,
        error_band_source="",
        notes=facts.notes,
    )


# ----------------------------------------------------------------------------- reference models


def _efficientnet_lite0():
    """EfficientNet-Lite0: B0's block table without squeeze-excite, ReLU6, fixed stem and head."""
    import keras

    layers = keras.layers

    def conv_bn(x, depth, kernel, stride):
        x = layers.Conv2D(depth, kernel, stride, padding="same", use_bias=False)(x)
        return layers.ReLU(6.0)(layers.BatchNormalization()(x))

    inputs = keras.Input((224, 224, 3), batch_size=1)
    x = conv_bn(inputs, 32, 3, 2)
    depth = 32
    # (expansion, kernel, stride, output depth, repeats)
    for expand, kernel, stride, out, repeats in (
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 5, 2, 40, 2),
        (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3),
        (6, 5, 2, 192, 4),
        (6, 3, 1, 320, 1),
    ):
        for r in range(repeats):
            block_in = x
            y = conv_bn(x, depth * expand, 1, 1) if expand != 1 else x
            y = layers.DepthwiseConv2D(kernel, stride if r == 0 else 1, padding="same", use_bias=False)(y)
            y = layers.ReLU(6.0)(layers.BatchNormalization()(y))
            y = layers.BatchNormalization()(layers.Conv2D(out, 1, use_bias=False)(y))
            x = layers.Add()([block_in, y]) if (r > 0 and depth == out) else y
            depth = out
    x = conv_bn(x, 1280, 1, 1)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(1000)(x), name="efficientnet_lite0")


def _ssd_mobilenet_v1_300():
    """SSD MobileNet v1 300 as in the OD API's ssd_mobilenet_v1_coco: outputs (box encodings, logits)."""
    import keras

    layers = keras.layers
    backbone = keras.applications.MobileNet(input_shape=(300, 300, 3), alpha=1.0, include_top=False, weights=None)
    features = [backbone.get_layer("conv_pw_11_relu").output, backbone.get_layer("conv_pw_13_relu").output]
    x = features[-1]
    for depth in (512, 256, 256, 128):
        x = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(depth // 2, 1, use_bias=False)(x)))
        x = layers.Conv2D(depth, 3, 2, padding="same", use_bias=False)(x)
        x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
        features.append(x)
    boxes, logits = [], []
    for k, feature in enumerate(features):
        anchors = 3 if k == 0 else 6
        boxes.append(layers.Reshape((-1, 4))(layers.Conv2D(anchors * 4, 1)(feature)))
        logits.append(layers.Reshape((-1, 91))(layers.Conv2D(anchors * 91, 1)(feature)))
    outputs = [layers.Concatenate(axis=1)(boxes), layers.Concatenate(axis=1)(logits)]
    return keras.Model(backbone.input, outputs, name="ssd_mobilenet_v1_300")


def _random_calibration(height: int, width: int, samples: int = 2):
    import numpy as np

    def generate():
        rng = np.random.default_rng(0)
        for _ in range(samples):
            yield [rng.uniform(-1, 1, (1, height, width, 3)).astype(np.float32)]

    return generate


def _classifier_tflite(model, precision: str) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        height, width = model.input_shape[1:3]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _random_calibration(height, width)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    return converter.convert()


def _ssd_tflite(keras_model, model_config, precision: str, work: Path) -> bytes:
    """Through the project's own export (fused post-process) and converter.

    Deliberately the converter alone, not
    :func:`~ktp_tflite.convert.quantize_flow.quantize_detector`: only the
    graph's op costs are read (they depend on neither weights nor calibration),
    so it calibrates on two random-noise inputs instead of a representative set
    of cards, and the 90-class reference SSDs get no KTP metadata.
    """
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model
    from ktp_tflite.train.export import ExportConfig, save_serving

    folder = save_serving(keras_model, model_config, ExportConfig(), Path(tempfile.mkdtemp(dir=work)) / "saved_model")
    source = detect_model_source(folder)
    height, width = model_config.input_size
    result = convert_model(
        source,
        QuantizeConfig(mode=precision),
        _random_calibration(height, width) if precision == "int8" else None,
    )
    return result.model


def build_reference(key: str, work: Path) -> bytes:
    """The .tflite of one reference model ("mobilenet_v1_1.0_224/int8", ...)."""
    import keras

    from ktp_tflite.train.config import ModelConfig, preset
    from ktp_tflite.train.model import build_model

    name, precision = key.split("/")
    keras.utils.set_random_seed(0)
    if name == "mobilenet_v1_1.0_224":
        return _classifier_tflite(keras.applications.MobileNet(input_shape=(224, 224, 3), weights=None), precision)
    if name == "mobilenet_v2_1.0_224":
        return _classifier_tflite(keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None), precision)
    if name == "efficientnet_lite0":
        return _classifier_tflite(_efficientnet_lite0(), precision)
    if name == "ssd_mobilenet_v1_300":
        config = dataclasses.replace(ModelConfig(), num_classes=90)
        return _ssd_tflite(_ssd_mobilenet_v1_300(), config, precision, work)
    if name == "ssd_mobilenet_v2_256":
        config = dataclasses.replace(ModelConfig(), num_classes=90, input_size=(256, 256))
        return _ssd_tflite(build_model(config), config, precision, work)
    if name == "ktp_default":
        config = preset("ktp").model
        return _ssd_tflite(build_model(config), config, precision, work)
    raise ValueError(f"unknown reference model {key!r}")


def reference_keys() -> list[str]:
    """Every model whose costs the calibration stores."""
    keys = list(dict.fromkeys(row.key for row in REFERENCE_ROWS))
    return keys + [PIXEL6_CHECK.key, "ktp_default/int8", "ktp_default/float"]


def build_costs(work: Path) -> dict:
    """Build every reference model and return the costs document."""
    from ktp_tflite.benchmarks.graph_cost import graph_cost

    models = {}
    for key in reference_keys():
        print(f"building {key}", file=sys.stderr, flush=True)
        model = build_reference(key, work)
        (work / f"{key.replace('/', '_')}.tflite").write_bytes(model)
        cost = graph_cost(model, key)
        models[key] = {
            "size_bytes": len(model),
            "total_macs": cost.total_macs,
            "ops": [[op.op_class, op.dtype, op.macs, op.bytes_moved] for op in cost.runtime_ops],
        }
        print(f"  {key}: {cost.total_macs / 1e6:.0f} M MACs, {len(cost.runtime_ops)} ops", file=sys.stderr)
    return {
        "schema": 1,
        "note": "per-op (class, dtype, MACs, bytes) of random-weight reference models "
        "built by `python -m ktp_tflite.benchmarks.tools.calibrate --rebuild`",
        "models": models,
    }


def load_costs(path: Path | None = None) -> dict:
    """The stored costs document (package data by default)."""
    if path is None:
        return json.loads(files("ktp_tflite.benchmarks").joinpath("profiles", COSTS_FILE).read_text())
    return json.loads(Path(path).read_text())


def cost_rows(costs: dict) -> dict[str, list[tuple]]:
    """{model key: op rows} from the costs document."""
    return {key: [tuple(op) for op in entry["ops"]] for key, entry in costs["models"].items()}


# ----------------------------------------------------------------------------- fitting and profiles


def fit_document(costs: dict) -> dict:
    """Fit the shared parameters; LOO errors; error bands; checks. JSON-ready."""
    rows = cost_rows(costs)
    devices = {name: device_profile(name) for name in ("pixel3", "pixel4")}
    fit = fit_with_loo(REFERENCE_ROWS, rows, devices).to_dict()
    worst = fit["leave_one_out"]["worst_abs_percent"]
    band_fitted = float(math.ceil(worst))
    fit["band_fitted_percent"] = band_fitted
    fit["band_derived_percent"] = band_fitted + DERIVED_EXTRA_BAND
    pixel6 = device_profile("pixel6", fit["params"])
    check = PIXEL6_CHECK
    if check.key in rows:
        projected = project_rows(rows[check.key], pixel6)["total"]
        fit["pixel6_check"] = {
            "model": check.key,
            "published_ms": check.ms,
            "projected_ms": round(projected, 2),
            "error_percent": round(100 * (projected - check.ms) / check.ms, 1),
            "source": check.source,
            "used_in_fit": False,
        }
    return fit


def profile_documents(fit: dict) -> dict[str, dict]:
    """Every bundled profile's JSON document from a fit."""
    loo = fit["leave_one_out"]
    over = [
        f"{r['model']} {r['precision']} {r['device']}: {r['error_percent']:+.1f} %"
        for r in loo["rows"]
        if abs(r["error_percent"]) > TARGET_LOO_PERCENT
    ]
    docs = {}
    for name in DEVICES:
        profile = device_profile(name, fit["params"])
        fitted = profile.status == "fitted"
        band = fit["band_fitted_percent"] if fitted else fit["band_derived_percent"]
        band_source = (
            f"worst leave-one-out error over the {len(loo['rows'])} published reference rows "
            f"(mean {loo['mean_abs_percent']:.1f} %, worst {loo['worst_abs_percent']:.1f} %)"
        )
        if not fitted:
            band_source += (
                f", plus {DERIVED_EXTRA_BAND:.0f} points (judgement) because no published "
                "benchmark_model row exists for this device"
            )
        doc = profile.to_dict()
        doc["notes"] = [*doc["notes"], OD_NO_DOTPROD]
        if over:
            doc["notes"].append(
                f"Leave-one-out error above {TARGET_LOO_PERCENT:.0f} % on: {'; '.join(over)}. "
                "The published tables disagree with each other beyond what one set of shared "
                "parameters can absorb: on Pixel 3, MobileNet v1 int8 (benchmarks.md, 569 M MACs) is "
                "published at 13.4 ms and MobileNet v2 int8 (hosted_models.md, 301 M MACs) at 12.0 ms, "
                "1.9x the MACs for 1.1x the time (float: 1.4x), so with either row held out the other "
                "one mispredicts it. The pages were written for different TFLite releases. Only "
                "measurements of all models on one phone with one runtime (`ktpconvert benchmark "
                "--adb`) can narrow the band."
            )
        doc.update(
            error_band_percent=band,
            error_band_source=band_source,
            parameters={
                n: {
                    "value": round(fit["params"][n], 6),
                    "unit": PARAMETER_UNITS[n],
                    "source": (
                        f"least-squares fit on log latency over REFERENCE_ROWS "
                        f"(benchmarks/tools/latency_fit.py), shared by all profiles; prior "
                        f"{PRIORS[n][0]} (sigma x{math.exp(PRIOR_SIGMA):.0f}): {PRIORS[n][1]}"
                    ),
                }
                for n in PARAMETER_NAMES
            },
            fit={
                "reference_rows": [r for r in loo["rows"]],
                "leave_one_out_mean_abs_percent": round(loo["mean_abs_percent"], 2),
                "leave_one_out_worst_abs_percent": round(loo["worst_abs_percent"], 2),
                "in_sample_worst_abs_percent": round(fit["in_sample"]["worst_abs_percent"], 2),
                "rows_on_this_device": sum(r["device"] == name for r in loo["rows"]),
                "rows_over_target": over,
                "target_abs_percent": TARGET_LOO_PERCENT,
                **({"pixel6_check": fit["pixel6_check"]} if name == "pixel6" and "pixel6_check" in fit else {}),
            },
        )
        profile_from_dict(doc, f"{name}.json")  # what we write must load
        docs[name] = doc
    return docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit the device profiles to published Pixel latencies.")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the reference models (slow)")
    parser.add_argument("--work", type=Path, help="keep the built .tflite files here")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder to write the profile JSONs (and, with --rebuild, reference_costs.json) into; "
        "benchmarks/profiles of a checkout updates the shipped ones",
    )
    parser.add_argument(
        "--costs",
        type=Path,
        default=None,
        help=f"op costs to fit on, without --rebuild [default: the bundled profiles/{COSTS_FILE}]",
    )
    args = parser.parse_args(argv)
    if args.rebuild and args.costs is not None:
        parser.error("--costs and --rebuild exclude each other (--rebuild writes OUT/" + COSTS_FILE + ")")
    from ktp_tflite.train.atomic_files import atomic_write_bytes

    args.out.mkdir(parents=True, exist_ok=True)
    if args.rebuild:
        work = args.work or Path(tempfile.mkdtemp(prefix="ktp_calibrate_"))
        work.mkdir(parents=True, exist_ok=True)
        costs = build_costs(work)
        atomic_write_bytes(args.out / COSTS_FILE, (json.dumps(costs, separators=(",", ":")) + "\n").encode())
    else:
        costs = load_costs(args.costs)
    fit = fit_document(costs)
    for name, doc in profile_documents(fit).items():
        atomic_write_bytes(args.out / f"{name}.json", (json.dumps(doc, indent=2) + "\n").encode())
    rows = cost_rows(costs)
    summary = {
        "params": fit["params"],
        "leave_one_out": {k: v for k, v in fit["leave_one_out"].items() if k != "rows"},
        "rows": [
            {k: r[k] for k in ("model", "precision", "device", "published_ms", "projected_ms", "error_percent")}
            for r in fit["leave_one_out"]["rows"]
        ],
        "pixel6_check": fit.get("pixel6_check"),
    }
    if "ktp_default/int8" in rows:
        from ktp_tflite.benchmarks.profiles import load_profile_file

        summary["ktp_default"] = [
            project(rows[key], load_profile_file(args.out / f"{name}.json"), key).text()
            for key in ("ktp_default/int8", "ktp_default/float")
            for name in DEVICES
        ]
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
