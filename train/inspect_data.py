"""Statistics and problems of a data set, for ``ktpconvert data inspect``.

Reports counts and box geometry only: never image content or field text.
"""

from __future__ import annotations

import dataclasses
import statistics

from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.records import Dataset, Problem


@dataclasses.dataclass(frozen=True)
class SizeStats:
    """min / median / max of one quantity."""

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> SizeStats | None:
        if not values:
            return None
        return cls(min(values), statistics.median(values), max(values))


@dataclasses.dataclass(frozen=True)
class ClassStats:
    boxes: int
    images_without: int
    height_px: SizeStats | None
    width_px: SizeStats | None
    height_fraction: SizeStats | None  # box height / image height
    aspect: SizeStats | None  # width / height


@dataclasses.dataclass(frozen=True)
class DatasetReport:
    source: str
    format: str
    images: int
    image_sizes: dict[str, int]  # "640x480" -> count
    classes: dict[str, ClassStats]
    problems: list[str]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_text(self) -> str:
        lines = [
            f"data set: {self.source} ({self.format})",
            f"images: {self.images}",
            "image sizes: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.image_sizes.items())),
            "",
            (
                f"{'class':<18} {'boxes':>6} {'missing':>7}  {'height px min/med/max':>22}  "
                f"{'width px min/med/max':>22}  {'h/img med':>9}  {'w/h med':>7}"
            ),
        ]
        for name, c in self.classes.items():

            def triple(s: SizeStats | None) -> str:
                return "-" if s is None else f"{s.min:.1f}/{s.median:.1f}/{s.max:.1f}"

            frac = "-" if c.height_fraction is None else f"{100 * c.height_fraction.median:.1f}%"
            aspect = "-" if c.aspect is None else f"{c.aspect.median:.1f}"
            lines.append(
                f"{name:<18} {c.boxes:>6} {c.images_without:>7}  {triple(c.height_px):>22}  "
                f"{triple(c.width_px):>22}  {frac:>9}  {aspect:>7}"
            )
        lines.append("")
        if self.problems:
            lines.append(f"problems ({len(self.problems)}):")
            lines.extend(f"  {p}" for p in self.problems)
        else:
            lines.append("problems: none")
        return "\n".join(lines)


def inspect_dataset(dataset: Dataset) -> DatasetReport:
    """Count boxes per class, measure their sizes, and list problems.

    Problems are the records the reader skipped, plus images with no box and
    images with more than one box of a class (a KTP shows each field once).
    """
    problems: list[Problem] = list(dataset.skipped)
    sizes: dict[str, int] = {}
    per_class: dict[str, dict[str, list[float]]] = {
        name: {"h": [], "w": [], "frac": [], "aspect": []} for name in CLASSES
    }
    missing = {name: 0 for name in CLASSES}
    for example in dataset.examples:
        key = f"{example.width}x{example.height}"
        sizes[key] = sizes.get(key, 0) + 1
        if not example.boxes:
            problems.append(Problem(example.image_id, "no boxes"))
        counts: dict[str, int] = {}
        for box in example.boxes:
            counts[box.label] = counts.get(box.label, 0) + 1
            h = (box.ymax - box.ymin) * example.height
            w = (box.xmax - box.xmin) * example.width
            stats = per_class[box.label]
            stats["h"].append(h)
            stats["w"].append(w)
            stats["frac"].append(box.ymax - box.ymin)
            stats["aspect"].append(w / h if h > 0 else float("inf"))
        for name in CLASSES:
            if counts.get(name, 0) == 0:
                missing[name] += 1
            elif counts[name] > 1:
                problems.append(Problem(example.image_id, f"{counts[name]} boxes of class {name}"))
    classes = {
        name: ClassStats(
            boxes=len(per_class[name]["h"]),
            images_without=missing[name],
            height_px=SizeStats.of(per_class[name]["h"]),
            width_px=SizeStats.of(per_class[name]["w"]),
            height_fraction=SizeStats.of(per_class[name]["frac"]),
            aspect=SizeStats.of(per_class[name]["aspect"]),
        )
        for name in CLASSES
    }
    return DatasetReport(
        source=dataset.source,
        format=dataset.format,
        images=len(dataset.examples),
        image_sizes=sizes,
        classes=classes,
        problems=[str(p) for p in problems],
    )
