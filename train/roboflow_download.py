"""Download a Roboflow data set version (optional extra: ``pip install ktp-tflite[roboflow]``).

The API key is read from the ``ROBOFLOW_API_KEY`` environment variable only;
it is never written anywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ktp_tflite.train.errors import KtpError

API_KEY_VARIABLE = "ROBOFLOW_API_KEY"
# our format name -> Roboflow's export format name
FORMATS = {"tfrecord": "tfrecord", "coco": "coco", "voc": "voc"}


class DownloadError(KtpError):
    """The download cannot start or failed."""


def parse_reference(reference: str) -> tuple[str, str, int]:
    """Split "WORKSPACE/PROJECT/VERSION" into (workspace, project, version)."""
    match = re.fullmatch(r"([\w.-]+)/([\w.-]+)/(\d+)", reference.strip())
    if not match:
        raise DownloadError(
            f"--roboflow {reference!r}: expected WORKSPACE/PROJECT/VERSION, e.g. ktp-2wl90/final-ktp-od-v2/1"
        )
    return match.group(1), match.group(2), int(match.group(3))


def download(reference: str, out_dir: Path, fmt: str = "tfrecord") -> Path:
    """Download a data set version into ``out_dir``; returns the folder it was written to."""
    workspace, project, version = parse_reference(reference)
    if fmt not in FORMATS:
        raise DownloadError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    api_key = os.environ.get(API_KEY_VARIABLE, "").strip()
    if not api_key:
        raise DownloadError(
            f"{API_KEY_VARIABLE} is not set; export your Roboflow API key in that environment "
            "variable (never pass it on the command line or commit it)"
        )
    try:
        from roboflow import Roboflow
    except ImportError as error:
        raise DownloadError(
            "the roboflow package is not installed; install the extra: pip install 'ktp-tflite[roboflow]'"
        ) from error
    try:
        dataset = (
            Roboflow(api_key=api_key)
            .workspace(workspace)
            .project(project)
            .version(version)
            .download(FORMATS[fmt], location=str(out_dir))
        )
    except Exception as error:  # the client raises plain Exceptions and HTTP errors
        raise DownloadError(f"Roboflow download of {workspace}/{project}/{version} failed: {error}") from error
    return Path(getattr(dataset, "location", out_dir))
