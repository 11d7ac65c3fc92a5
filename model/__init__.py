"""model: the MODNet network, its checkpoints and the built-in weights -- what every stage runs.

Training (``train/``) produces checkpoints of this network; exporters, runtimes, parity and
benchmarks load them from here.  It sits just above the core and imports no stage.
"""
