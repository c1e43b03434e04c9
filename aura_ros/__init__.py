"""aura_ros: AURA-Mem (action-gated, constant-size memory) for ROS 2 robot policies.

Subpackages
-----------
core       pure torch/numpy: the gated memory, baselines, training, synthetic task (no rclpy)
backbones  frozen VLA adapters registered by name and built from a parameter-file block
sim        simulated camera arm (numpy renderer) and its scripted expert
nodes      thin rclpy shells: perception, policy, sim arm, recorder, monitor
bench      benchmarks that write JSON under bench/results/
tools      offline tools (bag report)
msg        generated ROS 2 messages (GateEvent, MemoryStatus, EpisodeResult)
"""

__version__ = '0.1.0'
