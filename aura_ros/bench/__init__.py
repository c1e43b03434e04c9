"""Benchmarks: ``python -m aura_ros.bench <name>`` (bench/README.md lists them and their results).

Why they ship in the installed package, not only in the repository: most of them measure a
deployment, not this repository -- ``latency`` runs the user's nodes with the user's parameter
file, ``realtime`` and ``reliability`` drive the same execution objects the policy node runs,
``train-from-recordings`` and ``closed-loop`` evaluate the user's own checkpoints -- so a robot
machine with the package installed (pip or colcon) must be able to run them against its own
config. They import their heavy parts lazily (importing the package costs nothing extra), add
about 250 KB of Python, and the published results are replayed by the tests from this very code
(what ships is what is published).
"""
