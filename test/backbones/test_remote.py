"""The out-of-process backbone protocol (used by openvla_oft): a real server process serving
the tiny PI0, a real client; results equal the in-process adapter's."""
import socket
import subprocess
import sys

import numpy as np
import pytest

from aura_ros.backbones import build_backbone
from aura_ros.params import backbone_block, read_params_file


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def server(tiny_models):
    port = free_port()
    proc = subprocess.Popen([sys.executable, '-m', 'aura_ros.backbones.remote_server',
                             '--params', str(tiny_models['params_pi0']), '--port', str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_remote_equals_local(server, tiny_models):
    params, base_dir = read_params_file(tiny_models['params_pi0'], 'policy_node')
    block = backbone_block(params)
    local = build_backbone(block, base_dir=base_dir)
    remote = build_backbone(dict(block, adapter='remote',
                                 options=dict(block['options'], port=server)))
    try:
        image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        state = np.array([0.1, -0.2, 0.3], np.float32)
        enc_r = remote.encode(image, state, 'reach the marked pad')
        enc_l = local.encode(image, state, 'reach the marked pad')
        np.testing.assert_allclose(enc_r.features.numpy(), enc_l.features.numpy(), atol=1e-5)
        assert remote.feature_dim == 128 and remote.server_adapter == 'hf_pi0'
        assert remote.act(enc_r).shape == (8, 3)
        with pytest.raises(RuntimeError, match='64x64'):   # errors cross the wire as text
            remote.encode(np.zeros((8, 8, 3), np.uint8), state)
    finally:
        remote.close()


def test_mismatched_server_refused(server, tiny_models):
    params, _ = read_params_file(tiny_models['params_pi0'], 'policy_node')
    block = backbone_block(params)
    with pytest.raises(ValueError, match='does not match'):
        build_backbone(dict(block, adapter='remote', action_dim=3, chunk_size=4,
                            steps_per_chunk=2, options=dict(block['options'], port=server)))


def test_no_server_is_a_clear_error():
    with pytest.raises(ConnectionError, match='no backbone server'):
        build_backbone(dict(adapter='openvla_oft', action_dim=3, chunk_size=8,
                            options=dict(port=free_port(), connect_timeout_s=0.5)))
