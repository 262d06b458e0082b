"""Maintainer tools and experiments, run as ``python -m ktp_tflite.benchmarks.tools.NAME``.

Nothing in ``ktpconvert`` imports this package: the product command
(``ktpconvert benchmark``) lives in :mod:`ktp_tflite.benchmarks`. Here:

- tools that produce what the project ships: ``calibrate`` (fits the device
  profiles; writes only into an explicit ``--out``), ``train_reference``
  (trains the bundled reference model);
- experiments and checks whose results the README and ``benchmarks/results/``
  quote: ``preset_sweep``, ``quantize_bench``, ``synth_throughput``,
  ``train_throughput``, ``reader_peers``, ``tf1_parity``, ``fuzz_readers``.

They may need what the product does not: hypothesis (the ``test`` extra),
the optional peer OCR engines, a TF1 checkpoint and its export, hours of CPU.
"""
