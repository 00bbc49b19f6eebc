"""tgvc_export: torch model definitions, training and ONNX export of the tgvc-rt model set.

The only part of the project that imports torch. Run as ``python -m tgvc_export <command>`` from
``export/`` (or with ``export/`` on PYTHONPATH).
"""
