"""The robot-side client of the backbone server (``remote`` / ``openvla_oft`` adapters): a real
server process serving the tiny PI0, a real client; results equal the in-process adapter's,
through the policy runner too; mismatches, a missing server, errors and TLS are clear."""
import signal
import time

import numpy as np
import pytest
from test_server import free_port, spawn_server

from aura_ros.backbones import BackboneUnavailable, build_backbone
from aura_ros.params import backbone_block, read_params_file


@pytest.fixture(scope='module')
def server(tiny_models):
    proc, port = spawn_server(tiny_models['params_pi0'])
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def blocks(tiny_models, port, **options):
    params, base_dir = read_params_file(tiny_models['params_pi0'], 'policy_node')
    block = backbone_block(params)
    remote = dict(block, adapter='remote', options=dict(block['options'], port=port, **options))
    return block, base_dir, remote


def test_remote_equals_local_through_the_runner(server, tiny_models):
    from aura_ros.policy import PolicyRunner
    from aura_ros.sim.rollout import sim_limits
    block, base_dir, remote_block = blocks(tiny_models, server)
    local = build_backbone(block, base_dir=base_dir)
    remote = build_backbone(remote_block)
    try:
        assert remote.feature_dim == local.feature_dim and remote.server_adapter == 'hf_pi0'
        image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        state = np.array([0.1, -0.2, 0.3], np.float32)
        enc_r, enc_l = remote.encode(image, state), local.encode(image, state)
        np.testing.assert_allclose(enc_r.features.numpy(), enc_l.features.numpy(), atol=1e-5)
        np.testing.assert_allclose(remote.act(enc_r, 5), local.act(enc_l, 5), atol=1e-5)
        # the runner: one Infer per step, the same features and base actions with a seed
        runs = []
        for backbone in (local, remote):
            runner = PolicyRunner(backbone, None, sim_limits())
            runner.reset(episode_seed=3)
            rng = np.random.default_rng(2)
            steps = [runner.step(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
                                 np.array([1.5, -2.4, 2.4])) for _ in range(6)]
            runs.append(steps)
        for a, b in zip(*runs):
            np.testing.assert_allclose(a.base_action, b.base_action, atol=1e-5)
            np.testing.assert_allclose(a.features.numpy(), b.features.numpy(), atol=1e-5)
        with pytest.raises(RuntimeError, match='INVALID_ARGUMENT: image is 8x8'):
            remote.encode(np.zeros((8, 8, 3), np.uint8), state)
    finally:
        remote.close()


def test_mismatched_server_refused(server, tiny_models):
    _, _, remote_block = blocks(tiny_models, server)
    with pytest.raises(ValueError, match='does not match'):
        build_backbone(dict(remote_block, chunk_size=4, steps_per_chunk=2))


def test_no_server_is_a_clear_error():
    with pytest.raises(ConnectionError, match='no backbone server'):
        build_backbone(dict(adapter='openvla_oft', action_dim=3, chunk_size=8,
                            options=dict(port=free_port(), connect_timeout_s=0.5)))


def answer_within(remote, seconds, *args, **kw):
    """The first answer once a server is reachable (gRPC reconnects with back-off meanwhile)
    and warm (a fresh server's first forward can outlast a short deadline on a loaded
    machine); raises what the first reachable server says, or the last error after
    ``seconds``."""
    end = time.monotonic() + seconds
    while True:
        try:
            return remote.infer(*args, **kw)
        except BackboneUnavailable as exc:
            if not any(code in str(exc) for code in ('UNAVAILABLE', 'DEADLINE_EXCEEDED')) \
                    or time.monotonic() > end:
                raise
            time.sleep(0.2)


@pytest.mark.slow
def test_server_killed_is_unavailable_then_answers_again_checked(tiny_models):
    """Hung past the deadline or killed: BackboneUnavailable (the caller holds). Another model
    on the port: refused until the right one is back (the memory was built for its features).
    Back: the same answers."""
    proc, port = spawn_server(tiny_models['params_pi0'])
    remote = build_backbone(blocks(tiny_models, port, timeout_s=2.0)[2])
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    state = np.array([0.1, -0.2, 0.3], np.float32)
    procs = [proc]
    try:
        enc, chunk = answer_within(remote, 60, image, state, noise_seed=7)   # up and warm
        proc.send_signal(signal.SIGSTOP)                  # hangs: the deadline (2 s) passes
        try:
            with pytest.raises(BackboneUnavailable, match='DEADLINE_EXCEEDED'):
                remote.infer(image, state, noise_seed=7)
        finally:
            proc.send_signal(signal.SIGCONT)
        enc1, _ = answer_within(remote, 30, image, state, noise_seed=7)   # back by itself
        np.testing.assert_allclose(enc1.features.numpy(), enc.features.numpy(), atol=1e-5)
        proc.kill()
        proc.wait(timeout=10)
        with pytest.raises(BackboneUnavailable, match='UNAVAILABLE'):
            remote.infer(image, state, noise_seed=7)
        procs.append(spawn_server(tiny_models['params_vision'], port=port)[0])
        with pytest.raises(BackboneUnavailable, match='chunk_size: server 4 != parameter file 8'):
            answer_within(remote, 60, image, state, noise_seed=7)
        procs[-1].kill()
        procs[-1].wait(timeout=10)
        procs.append(spawn_server(tiny_models['params_pi0'], port=port)[0])
        enc2, chunk2 = answer_within(remote, 60, image, state, noise_seed=7)
        np.testing.assert_allclose(enc2.features.numpy(), enc.features.numpy(), atol=1e-5)
        np.testing.assert_allclose(chunk2, chunk, atol=1e-5)
    finally:
        remote.close()
        for p in procs:
            p.kill()
            p.wait(timeout=10)
