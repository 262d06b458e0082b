"""Device profiles: the facts of a phone's CPU and the fitted latency-model parameters.

A profile is a JSON file. The bundled ones (``pixel3``, ``pixel4``,
``pixel6``, ``pixel7``, ``pixel8``) live in ``benchmarks/profiles/`` as
package data; users pass their own with ``--profile PATH``. Every fact and
parameter carries its source; ``status`` says whether the device's own
published latencies were used in the fit ("fitted") or its numbers follow
from core facts only ("derived").

Format (schema 1)::

    {"schema": 1, "name": "pixel4", "display_name": "...", "soc": "...",
     "threads": 4, "status": "fitted" | "derived",
     "cores": [{"name": "A76", "count": 1, "ghz": 2.84,
                "neon_pipes_128b": 2, "dotprod": true}, ...],
     "facts_source": "...",
     "parameters": {"eff_dense_float": {"value": 0.3, "unit": "...", "source": "..."}, ...},
     "error_band_percent": 25, "error_band_source": "...",
     "fit": {...}, "notes": ["..."]}

The ``threads`` fastest cores run the model (the published tables pin 4
threads to the big cores).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ktp_tflite.train.errors import KtpError

SCHEMA = 1
BUNDLED = ("pixel3", "pixel4", "pixel6", "pixel7", "pixel8")
STATUSES = ("fitted", "derived")
# The latency model's parameters (see projection.py for their meaning).
PARAMETER_NAMES = (
    "eff_dense_float",
    "eff_dense_int8",
    "eff_depthwise",
    "bytes_per_cycle",
    "op_overhead_kcycles",
    "postprocess_cycles_per_score",
)


class ProfileError(KtpError, ValueError):
    """A device profile file is missing, not JSON, or lacks a valid field."""


@dataclasses.dataclass(frozen=True)
class CoreCluster:
    """Identical cores of one cluster."""

    name: str
    count: int
    ghz: float
    neon_pipes_128b: float  # 128-bit SIMD pipes (a pair of 64-bit pipes counts as 1)
    dotprod: bool  # int8 dot-product instructions used by the kernels


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A latency-model parameter with its unit and where its value comes from."""

    value: float
    unit: str
    source: str


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    """One phone: CPU facts, latency-model parameters and how sure they are."""

    name: str
    display_name: str
    soc: str
    threads: int
    status: str
    cores: tuple[CoreCluster, ...]
    facts_source: str
    parameters: dict[str, Parameter]
    error_band_percent: float
    error_band_source: str
    fit: dict = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()
    source: str = ""  # the file it was read from

    def used_cores(self) -> list[tuple[CoreCluster, int]]:
        """The ``threads`` fastest cores as (cluster, how many of it)."""
        used, left = [], self.threads
        for cluster in sorted(self.cores, key=lambda c: -c.ghz * c.neon_pipes_128b):
            take = min(cluster.count, left)
            if take:
                used.append((cluster, take))
                left -= take
        return used

    def value(self, name: str) -> float:
        return self.parameters[name].value

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("source")
        return {
            "schema": SCHEMA,
            **data,
            "cores": [dataclasses.asdict(c) for c in self.cores],
            "notes": list(self.notes),
        }


def _require(data: dict, key: str, kind, where: str):
    if key not in data:
        raise ProfileError(f"{where}: missing field {key!r}")
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProfileError(f"{where}: field {key!r} must be {expected}, got {value!r}")
    return value


def profile_from_dict(data: dict, source: str) -> DeviceProfile:
    """Validate and build a profile; every error names ``source`` and the field.

    Raises:
      ProfileError: a field is missing, has the wrong type or an impossible value.
    """
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a JSON object at the top level")
    schema = _require(data, "schema", int, source)
    if schema != SCHEMA:
        raise ProfileError(f"{source}: field 'schema' is {schema}; this version reads schema {SCHEMA}")
    threads = _require(data, "threads", int, source)
    if threads < 1:
        raise ProfileError(f"{source}: field 'threads' must be >= 1, got {threads}")
    status = _require(data, "status", str, source)
    if status not in STATUSES:
        raise ProfileError(f"{source}: field 'status' must be one of {', '.join(STATUSES)}, got {status!r}")
    cores = []
    for k, core in enumerate(_require(data, "cores", list, source)):
        where = f"{source}: cores[{k}]"
        if not isinstance(core, dict):
            raise ProfileError(f"{where}: expected an object")
        cluster = CoreCluster(
            name=_require(core, "name", str, where),
            count=_require(core, "count", int, where),
            ghz=_require(core, "ghz", float, where),
            neon_pipes_128b=_require(core, "neon_pipes_128b", float, where),
            dotprod=_require(core, "dotprod", bool, where),
        )
        if cluster.count < 1 or cluster.ghz <= 0 or cluster.neon_pipes_128b <= 0:
            raise ProfileError(f"{where}: count, ghz and neon_pipes_128b must be positive")
        cores.append(cluster)
    if sum(c.count for c in cores) < threads:
        raise ProfileError(
            f"{source}: field 'threads' is {threads} but 'cores' lists only {sum(c.count for c in cores)} cores"
        )
    raw = _require(data, "parameters", dict, source)
    parameters = {}
    for name in PARAMETER_NAMES:
        entry = _require(raw, name, dict, f"{source}: parameters")
        where = f"{source}: parameters.{name}"
        parameter = Parameter(
            value=_require(entry, "value", float, where),
            unit=_require(entry, "unit", str, where),
            source=_require(entry, "source", str, where),
        )
        if not parameter.value > 0:
            raise ProfileError(f"{where}: field 'value' must be > 0, got {parameter.value}")
        parameters[name] = parameter
    band = _require(data, "error_band_percent", float, source)
    if not 0 < band < 1000:
        raise ProfileError(f"{source}: field 'error_band_percent' must be in (0, 1000), got {band}")
    fit = data.get("fit", {})
    if not isinstance(fit, dict):
        raise ProfileError(f"{source}: field 'fit' must be an object")
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ProfileError(f"{source}: field 'notes' must be a list of strings")
    return DeviceProfile(
        name=_require(data, "name", str, source),
        display_name=_require(data, "display_name", str, source),
        soc=_require(data, "soc", str, source),
        threads=threads,
        status=status,
        cores=tuple(cores),
        facts_source=_require(data, "facts_source", str, source),
        parameters=parameters,
        error_band_percent=band,
        error_band_source=_require(data, "error_band_source", str, source),
        fit=fit,
        notes=tuple(notes),
        source=source,
    )


def load_profile_file(path: str | Path) -> DeviceProfile:
    """Read a profile JSON file.

    Raises:
      ProfileError: unreadable file, bad JSON (with line and column) or a bad field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ProfileError(f"{path}: cannot read the profile ({error.strerror or error})") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProfileError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from error
    return profile_from_dict(data, str(path))


def bundled_profile_text(name: str) -> str:
    """The JSON text of a bundled profile.

    Raises:
      ProfileError: no bundled profile of that name.
    """
    from importlib.resources import files

    if name not in BUNDLED:
        raise ProfileError(f"no bundled profile {name!r}; choose one of {', '.join(BUNDLED)} or pass a JSON file path")
    return files("ktp_tflite.benchmarks").joinpath("profiles", f"{name}.json").read_text(encoding="utf-8")


def load_profile(name_or_path: str) -> DeviceProfile:
    """A bundled profile by name ("pixel4") or a user's profile file by path.

    Raises:
      ProfileError: unknown name, unreadable file or invalid content.
    """
    if name_or_path in BUNDLED:
        text = bundled_profile_text(name_or_path)
        return profile_from_dict(json.loads(text), f"bundled profile {name_or_path}")
    if name_or_path.endswith(".json") or Path(name_or_path).exists():
        return load_profile_file(name_or_path)
    raise ProfileError(
        f"no bundled profile {name_or_path!r} and no such file; choose one of "
        f"{', '.join(BUNDLED)} or pass a JSON file path"
    )
