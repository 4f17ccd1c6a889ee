"""Helpers shared by the test folders and by ``benchmarks/`` (import as ``tests.support.X``; the
repository root is on sys.path: pytest's ``pythonpath`` setting, ``python -m benchmarks.X``).

One module per job:

* ``tiny_models`` - the tiny random CLIP settings and weight files every test runs on;
* ``phantoms`` - small synthetic studies as NIfTI files and in-memory volumes;
* ``dicom_studies`` - DICOM export trees with the awkward things departments send (batch, node, PACS);
* ``toy_methods`` - a deterministic method that sees the phantom's lesions (triage);
* ``triage`` - lesion hits and a bank of normal phantoms;
* ``naive`` - the naive fp32 AdaptCLIP path the optimised one is checked and timed against;
* ``scored_demo`` - the demo lesion study scored for review (browser test and benchmark).

Fixtures stay in the ``conftest.py`` files; plain functions and constants live here."""
