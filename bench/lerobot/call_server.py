"""Call a backbone server from the robot side (the `remote` adapter, aura_ros's own venv): print
the widths Info reports, one chunk and the features; a state of the wrong width is refused.

    python bench/lerobot/call_server.py PARAMS.yaml
"""
import sys

import numpy as np

from aura_ros.backbones import build_backbone
from aura_ros.params import backbone_block, read_params_file

params, base_dir = read_params_file(sys.argv[1], 'policy_node')
remote = build_backbone(backbone_block(params), base_dir=base_dir)
print('adapter', remote.config.adapter, '-> server', remote.server_adapter, remote.server_model)
print('feature_dim', remote.feature_dim, 'action_dim', remote.config.action_dim,
      'chunk_size', remote.config.chunk_size, 'state_dim', remote.state_dim,
      'image_size', remote.image_size)
rng = np.random.default_rng(0)
image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
state = np.array([0.1, 0.4, -0.6, 1.2, 0.0], np.float32)
enc, chunk = remote.infer(image, state, 'pick up the cube')
np.set_printoptions(precision=3, suppress=True, linewidth=100)
print('chunk', chunk.shape)
print(chunk[:4], '...')
print('chunk mean per joint', chunk.mean(0))
print('features', tuple(enc.features.shape), enc.features[:8].numpy(), '...')
enc2, chunk2 = remote.infer(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), state, 'x')
print('another frame: |features change|', float((enc2.features - enc.features).norm()),
      '|chunk change|', float(np.abs(chunk2 - chunk).max()))
try:
    remote.infer(image, state[:3], 'x')
except RuntimeError as exc:
    print('3-value state:', exc)
remote.close()
