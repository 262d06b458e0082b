r"""Choose the ktp preset's input size and width: accuracy vs projected latency.

Usage::

    nohup python -m ktp_tflite.benchmarks.tools.preset_sweep --out runs/sweep \
        --variants 320x0.75,256x0.75,384x0.75,320x0.5,320x1.0,320x0.75@1 --steps 3000 \
        > runs/sweep.log 2>&1 &

Each variant is the ``ktp`` preset with another input size and width
multiplier (``@SEED``: trained again with another seed of the initial
weights, data order and augmentation, which measures run-to-run noise),
trained from scratch with the reference run's settings (IoU
matching 0.4/0.3, Adam 2e-3 cosine to ``--steps``, batch 8) on the same
rendered photos (``--train-images`` of ``--train-seed``), evaluated on
``--val-images`` of ``--val-seed`` (COCO mAP, float Keras model, after
batch-norm re-estimation), exported, and its float and int8 graphs projected
onto the bundled Pixel profiles (``ktpconvert benchmark``'s cost model; an
estimate with the profile's error band, not a measurement). The int8 graph
for the projection is calibrated on 8 rendered cards: its latency does not
depend on the calibration, its accuracy is not measured here.

Every variant trains in its own run folder and resumes from its newest
checkpoint, so the script can be stopped and re-run with the same arguments.
Writes ``OUT/sweep.json``, ``OUT/sweep.md`` (one row per variant, then the
choice by the rule of :func:`choose`) and ``OUT/sweep.png`` (mAP against
projected Pixel 4 int8 latency). All variants share one step budget: the
table compares architectures at equal training cost, which is what a user
with a CPU has.

Why one file: one experiment (train each variant at equal cost, export, evaluate, project,
write the table); the table writer could split off if another sweep reuses it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from ktp_tflite.train.run_folder import ExportFolder, RunFolder

PROFILES = ("pixel4", "pixel6")
BUDGET_PROFILE = "pixel4"
BUDGET_MS = 20.0  # the benchmark issue's target for the default int8 model on the pixel4 profile


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_variant(text: str) -> tuple[int, float, int]:
    """``"320x0.75"`` -> (320, 0.75, 0); ``"320x0.75@1"`` -> (320, 0.75, 1): size, width, seed."""
    architecture, _, seed = text.partition("@")
    size, _, width = architecture.partition("x")
    try:
        return int(size), float(width), int(seed or 0)
    except ValueError:
        raise SystemExit(f"variant {text!r}: write SIZExWIDTH[@SEED], e.g. 320x0.75 or 320x0.75@1") from None


def variant_name(size: int, width: float, seed: int = 0) -> str:
    """Run folder and table name: ``320x0.75``, or ``320x0.75@1`` for another seed."""
    return f"{size}x{width:g}" + (f"@{seed}" if seed else "")


def projections(model: bytes, name: str) -> dict[str, dict]:
    """Projected latency text per profile, e.g. "pixel4 CPU x4, int8: 9.2 ms, +-62 %, projected"."""
    from ktp_tflite.benchmarks.graph_cost import graph_cost
    from ktp_tflite.benchmarks.profiles import load_profile
    from ktp_tflite.benchmarks.projection import project, rows_from_cost

    rows = rows_from_cost(graph_cost(model, name))
    out = {}
    for profile_name in PROFILES:
        projection = project(rows, load_profile(profile_name), name)
        out[profile_name] = {
            "ms": round(projection.ms, 2),
            "band_percent": projection.band_percent,
            "text": projection.text(),
        }
    return out


def _median_rate(history: Path) -> float:
    """Median logged images/s of a run over all its sessions (0.0 without a log)."""
    import statistics

    if not history.is_file():
        return 0.0
    rates = [json.loads(line)["images_per_second"] for line in history.read_text().splitlines() if line.strip()]
    return statistics.median(rates) if rates else 0.0


def _int8_for_cost(saved_model: Path) -> bytes:
    """The int8 graph `ktpconvert quantize` makes (without metadata), on 8 cards: for its op costs."""
    from ktp_tflite.convert.quantize import QuantizeConfig
    from ktp_tflite.convert.quantize_flow import quantize_detector

    return quantize_detector(
        saved_model, QuantizeConfig(ranges="minmax"), representative="synth:8", num_samples=8, progress=False
    ).model


def _variant_config(size: int, width: float, seed: int, steps: int):
    from ktp_tflite.train import config as config_lib

    return config_lib.with_overrides(
        config_lib.preset("ktp"),
        input_size=size,
        width_multiplier=width,
        steps=steps,
        eval_every=0,
        checkpoint_every=250,
        matched_threshold=0.4,
        unmatched_threshold=0.3,
        seed=seed,
    )


def _model_columns(export: ExportFolder, name: str) -> dict:
    """Sizes and projected latencies of an exported variant."""
    float_model = export.float_tflite.read_bytes()
    int8_model = _int8_for_cost(export.saved_model)
    return {
        "float_bytes": len(float_model),
        "int8_bytes": len(int8_model),
        "projected_float": projections(float_model, f"{name} float"),
        "projected_int8": projections(int8_model, f"{name} int8"),
    }


def run_variant(out: Path, size: int, width: float, seed: int, args, train_data, val_data) -> dict:
    """Train (or resume), evaluate, export and project one variant."""
    from ktp_tflite.train.export import export_run
    from ktp_tflite.train.model import build_model, count_parameters
    from ktp_tflite.train.trainer import train

    name = variant_name(size, width, seed)
    run = RunFolder(out / name / "run")
    run.path.parent.mkdir(parents=True, exist_ok=True)
    config = _variant_config(size, width, seed, args.steps)
    result = train(config, train_data, run.path, val_data=val_data, resume=run.latest_checkpoint() is not None)
    # Already trained to the budget: the run folder holds the final evaluation.
    stored = result.metrics or run.read_metrics()
    export = ExportFolder(out / name / "export")
    if not export.float_tflite.is_file():
        export_run(run.path, export.path, force=True)
    return {
        "variant": name,
        "architecture": variant_name(size, width),
        "seed": seed,
        "input_size": size,
        "width": width,
        "parameters": count_parameters(build_model(config.model)),
        "steps": args.steps,
        "map": round(stored["map"], 4),
        "map50": round(stored["map50"], 4),
        "map75": round(stored["map75"], 4),
        **_model_columns(export, name),
        "training_images_per_second": round(_median_rate(run.history), 2),
    }


def project_variant(out: Path, size: int, width: float) -> dict:
    """Size and projected latency of an untrained variant (latency does not depend on the weights)."""
    from ktp_tflite.benchmarks.tools.train_reference import export_model
    from ktp_tflite.train.model import count_parameters
    from ktp_tflite.train.trainer import build_seeded_model

    name = variant_name(size, width)
    config = _variant_config(size, width, 0, 0)
    export = ExportFolder(out / name / "export-untrained")
    export.path.parent.mkdir(parents=True, exist_ok=True)
    model = build_seeded_model(config.model, 0)
    if not export.float_tflite.is_file():
        export_model(model, config.model, export.path)
    return {
        "variant": name,
        "architecture": name,
        "seed": 0,
        "input_size": size,
        "width": width,
        "parameters": count_parameters(model),
        "steps": 0,
        "map": None,
        "map50": None,
        "map75": None,
        **_model_columns(export, name),
        "training_images_per_second": None,
    }


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One size x width over the seeds it was trained with."""

    name: str
    maps: tuple[float, ...]
    ms: float  # projected int8 latency on the budget profile
    band_percent: float

    @property
    def mean_map(self) -> float:
        """Mean mAP@[.5:.95] over the seeds (NaN when not trained)."""
        return sum(self.maps) / len(self.maps) if self.maps else math.nan

    @property
    def worst_case_ms(self) -> float:
        """The projection at the upper edge of its error band."""
        return self.ms * (1 + self.band_percent / 100)


@dataclasses.dataclass(frozen=True)
class Choice:
    architecture: str
    sigma: float | None  # pooled standard deviation of mAP between seeds (None: one seed each)
    candidates: tuple[Architecture, ...]


def choose(rows: list[dict], budget_ms: float = BUDGET_MS, profile: str = BUDGET_PROFILE) -> Choice:
    """Pick the preset by the rule written in :data:`CHOICE_RULE`.

    Raises:
      ValueError: no architecture stays within the budget at its band's upper edge,
        or one that does was not trained (it could be the best).
    """
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["architecture"], []).append(row)
    candidates = tuple(
        Architecture(
            name,
            tuple(r["map"] for r in group if r["map"] is not None),
            group[0]["projected_int8"][profile]["ms"],
            group[0]["projected_int8"][profile]["band_percent"],
        )
        for name, group in grouped.items()
    )
    sigma = _pooled_sigma([a.maps for a in candidates])
    eligible = [a for a in candidates if a.worst_case_ms <= budget_ms]
    if not eligible:
        raise ValueError(f"no variant stays under {budget_ms:g} ms ({profile} int8) at its band's upper edge")
    untrained = [a.name for a in eligible if not a.maps]
    if untrained:
        raise ValueError(f"{', '.join(untrained)}: within the budget but not trained; train it to choose")
    best = max(eligible, key=lambda a: a.mean_map)

    def within_noise(a: Architecture) -> bool:
        if sigma is None:
            return a is best
        return best.mean_map - a.mean_map <= 2 * sigma * math.sqrt(1 / len(a.maps) + 1 / len(best.maps))

    return Choice(min(filter(within_noise, eligible), key=lambda a: a.ms).name, sigma, candidates)


def _pooled_sigma(groups: list[tuple[float, ...]]) -> float | None:
    """Pooled sample standard deviation over the groups with two or more values."""
    squares = sum(sum((x - sum(g) / len(g)) ** 2 for x in g) for g in groups if len(g) > 1)
    degrees = sum(len(g) - 1 for g in groups if len(g) > 1)
    return math.sqrt(squares / degrees) if degrees else None


CHOICE_RULE = (
    "Rule: among the architectures whose projected {profile} int8 latency stays within {budget:g} ms "
    "even at the upper edge of its error band, take the best mean mAP@[.5:.95] over its seeds; if a "
    "faster one trails it by no more than the run-to-run noise (twice the standard error of the "
    "difference of the two means, from the pooled spread between seeds), take the fastest such one."
)


def choice_markdown(rows: list[dict], budget_ms: float = BUDGET_MS, profile: str = BUDGET_PROFILE) -> str:
    choice = choose(rows, budget_ms, profile)
    lines = [
        "## Choice",
        "",
        CHOICE_RULE.format(profile=profile, budget=budget_ms),
        "",
        f"| architecture | seeds | mean mAP | {profile} int8 ms | upper edge ms | within budget |",
        "|---|---|---|---|---|---|",
    ]
    for a in sorted(choice.candidates, key=lambda a: a.ms):
        mean = f"{a.mean_map:.3f}" if a.maps else "not trained"
        lines.append(
            f"| {a.name} | {len(a.maps)} | {mean} | {a.ms:.1f} | {a.worst_case_ms:.1f} | "
            f"{'yes' if a.worst_case_ms <= budget_ms else 'no'} |"
        )
    noise = (
        f"run-to-run standard deviation {choice.sigma:.4f} mAP"
        if choice.sigma is not None
        else "run-to-run noise not measured (one seed per architecture)"
    )
    lines += ["", f"Chosen: **{choice.architecture}** ({noise})."]
    return "\n".join(lines) + "\n"


def markdown(rows: list[dict], args) -> str:
    lines = [
        (
            f"# ktp preset sweep: {args.steps} steps each, batch 8, "
            f"{args.train_images} training photos (seed {args.train_seed}), "
            f"{args.val_images} validation photos (seed {args.val_seed})"
        ),
        "",
        (
            "Accuracy: float Keras model, COCO metrics. Latency: projections from the per-op cost "
            "model onto the bundled profiles (estimates with their error band, not measurements)."
        ),
        "",
        "| variant | params | int8 size (of float) | mAP@[.5:.95] | mAP@.5 | mAP@.75 | "
        + " | ".join(f"{p} int8 / float ms" for p in PROFILES)
        + " | training img/s |",
        "|---|---|---|---|---|---|" + "---|" * len(PROFILES) + "---|",
    ]
    for row in rows:
        cells = [
            f"{row['projected_int8'][p]['ms']:.1f} / {row['projected_float'][p]['ms']:.1f} "
            f"(+-{row['projected_int8'][p]['band_percent']:.0f} %)"
            for p in PROFILES
        ]
        size = f"{row['int8_bytes'] / 1e6:.2f} MB ({100 * row['int8_bytes'] / row['float_bytes']:.1f} %)"
        trained = row["map"] is not None
        metrics = [f"{row[k]:.3f}" if trained else "not trained" for k in ("map", "map50", "map75")]
        rate = f"{row['training_images_per_second']:.1f}" if trained else "-"
        lines.append(
            f"| {row['variant']} | {row['parameters'] / 1e6:.2f} M | {size} | "
            + " | ".join(metrics)
            + " | "
            + " | ".join(cells)
            + f" | {rate} |"
        )
    table = "\n".join(lines) + "\n"
    try:
        return table + "\n" + choice_markdown(rows)
    except ValueError as error:
        return table + f"\n## Choice\n\n{error}\n"


def plot(rows: list[dict], profile: str = PROFILES[0]) -> bytes:
    """PNG: mAP@[.5:.95] against projected int8 latency on ``profile``, one point per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ktp_tflite.benchmarks.report import figure_png

    figure, axis = plt.subplots(figsize=(6, 3.6))
    for row in rows:
        if row["map"] is None:
            continue
        ms = row["projected_int8"][profile]["ms"]
        axis.scatter(ms, row["map"], color="tab:blue")
        axis.annotate(
            f"{row['variant']}\n{row['int8_bytes'] / 1e6:.1f} MB int8",
            (ms, row["map"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    band = rows[0]["projected_int8"][profile]["band_percent"] if rows else 0
    if profile == BUDGET_PROFILE and rows:
        axis.axvline(
            BUDGET_MS / (1 + band / 100),
            color="tab:red",
            linestyle="--",
            linewidth=1,
            label=f"{BUDGET_MS:g} ms budget at the band's upper edge",
        )
        axis.legend(fontsize=7, loc="lower right")
    axis.set_xlabel(f"{profile} CPU x4 int8 latency, projected (ms, +-{band:.0f} %)")
    axis.set_ylabel("mAP@[.5:.95], float, held-out photos")
    axis.grid(alpha=0.3)
    return figure_png(figure)


def _write(out: Path, rows: list[dict], args) -> None:
    from ktp_tflite.train.atomic_files import atomic_write_bytes

    atomic_write_bytes(out / "sweep.json", (json.dumps(rows, indent=2) + "\n").encode())
    atomic_write_bytes(out / "sweep.md", markdown(rows, args).encode())
    atomic_write_bytes(out / "sweep.png", plot(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--variants",
        default="320x0.75,256x0.75,384x0.75,320x0.5,320x1.0,320x0.75@1",
        help="SIZExWIDTH[@SEED], comma-separated",
    )
    parser.add_argument(
        "--project-only", default="", help="SIZExWIDTH variants only sized and projected, not trained (random weights)"
    )
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--train-images", type=int, default=8000)
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--val-images", type=int, default=500)
    parser.add_argument("--val-seed", type=int, default=1000)
    parser.add_argument("--render-workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.train_seed == args.val_seed:
        raise SystemExit("--val-seed must differ from --train-seed")

    from ktp_tflite.benchmarks.tools.train_reference import data_folder, rendered_dataset

    variants = [parse_variant(v) for v in args.variants.split(",") if v]
    untrained = [parse_variant(v) for v in args.project_only.split(",") if v]
    args.out.mkdir(parents=True, exist_ok=True)
    train_data = rendered_dataset(
        data_folder(args.out, "train", args.train_seed, args.train_images),
        args.train_images,
        args.train_seed,
        args.render_workers,
    )
    val_data = rendered_dataset(
        data_folder(args.out, "val", args.val_seed, args.val_images),
        args.val_images,
        args.val_seed,
        args.render_workers,
    )
    rows = []
    for size, width, seed in variants:
        _log(f"variant {variant_name(size, width, seed)}")
        rows.append(run_variant(args.out, size, width, seed, args, train_data, val_data))
        _write(args.out, rows, args)
    for size, width, _ in untrained:
        _log(f"variant {variant_name(size, width)}: projection only")
        rows.append(project_variant(args.out, size, width))
        _write(args.out, rows, args)
    print(markdown(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
