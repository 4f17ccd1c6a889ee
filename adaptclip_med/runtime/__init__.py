"""Inference runtimes for the frozen vision tower (``--runtime torch|onnxruntime|openvino|auto``).

Light on purpose: the CLI imports :mod:`.measured` for its ``--help`` text before any model code,
so this package imports nothing heavy.  Entry points: :func:`.choice.configure_vision` (attach the
chosen runtime to a built model) and :func:`.choice.resolve_runtime` (what ``auto`` picks here).
"""
