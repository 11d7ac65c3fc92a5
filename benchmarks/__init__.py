"""benchmarks: speed against device targets, results from boards and phones, the report and the pipeline.

Modules are imported on use (``modnet_edge.benchmark`` / ``modnet_edge.pipeline`` or the CLI), so
importing the package costs nothing; ``edge_runner.py`` is a standalone script for edge boards.
"""
