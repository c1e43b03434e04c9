"""The gRPC backbone server: a real server process serving the tiny PI0; answers equal the
in-process adapter's; bad requests refused with a status; non-loopback binds need TLS+token."""
import socket
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
import torch

from aura_ros.backbones import build_backbone
from aura_ros.backbones.proto import backbone_pb2 as pb
from aura_ros.backbones.proto import backbone_pb2_grpc as pb_grpc
from aura_ros.params import backbone_block, read_params_file


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def spawn_server(params, *args, port=None):
    """A server process for ``params`` on a loopback port (a free one by default):
    (process, port)."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, '-m', 'aura_ros.backbones.server', '--params',
                             str(params), '--bind', f'127.0.0.1:{port}', *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, port


@pytest.fixture(scope='module')
def served(tiny_models):
    proc, port = spawn_server(tiny_models['params_pi0'])
    channel = grpc.insecure_channel(f'127.0.0.1:{port}')
    grpc.channel_ready_future(channel).result(timeout=60)
    yield pb_grpc.BackboneStub(channel), channel
    channel.close()
    proc.terminate()
    proc.wait(timeout=10)


def local_backbone(tiny_models):
    params, base_dir = read_params_file(tiny_models['params_pi0'], 'policy_node')
    return build_backbone(backbone_block(params), base_dir=base_dir)


def request(image, state, **kw):
    return pb.InferRequest(image=image.tobytes(), height=image.shape[0], width=image.shape[1],
                           state=state.tolist(), instruction='reach the marked pad', **kw)


def test_info_and_health(served, tiny_models):
    stub, channel = served
    info = stub.Info(pb.InfoRequest(), timeout=10)
    local = local_backbone(tiny_models)
    assert (info.feature_dim, info.action_dim, info.chunk_size, info.adapter, info.image_size) \
        == (local.feature_dim, 3, 8, 'hf_pi0', 64)
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    status = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service='aura_ros.backbone.v1.Backbone'), timeout=10)
    assert status.status == health_pb2.HealthCheckResponse.SERVING


def test_features_and_seeded_chunk_equal_the_in_process_adapter(served, tiny_models):
    stub, _ = served
    local = local_backbone(tiny_models)
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    state = np.array([0.1, -0.2, 0.3], np.float32)
    reply = stub.Infer(request(image, state, want_chunk=True, has_seed=True, seed=42),
                       timeout=30)
    enc = local.encode(image, state, 'reach the marked pad')
    np.testing.assert_allclose(reply.features, enc.features.numpy(), rtol=1e-5, atol=1e-5)
    chunk = np.asarray(reply.chunk).reshape(8, 3)
    np.testing.assert_allclose(chunk, local.act(enc, 42), rtol=1e-5, atol=1e-5)
    other = stub.Infer(request(image, state, want_chunk=True, has_seed=True, seed=43), timeout=30)
    assert not np.allclose(np.asarray(other.chunk).reshape(8, 3), chunk)   # the seed matters
    plain = stub.Infer(request(image, state), timeout=30)
    assert len(plain.chunk) == 0 and len(plain.features) == local.feature_dim


@pytest.mark.parametrize('make, message', [
    (lambda img, st: request(img[:32], st), 'image is 32x64, the backbone takes 64x64'),
    (lambda img, st: pb.InferRequest(image=img.tobytes()[:100], height=64, width=64,
                                     state=st.tolist()), 'image has 100 bytes'),
    (lambda img, st: request(img, st[:2]), 'state has 2 values, the backbone takes 3'),
    (lambda img, st: request(img, np.array([np.nan, 0, 0], np.float32)), 'state is not finite'),
])
def test_malformed_requests_are_refused_and_the_server_keeps_serving(served, make, message):
    stub, _ = served
    image = np.zeros((64, 64, 3), np.uint8)
    state = np.zeros(3, np.float32)
    with pytest.raises(grpc.RpcError) as exc:
        stub.Infer(make(image, state), timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in exc.value.details()
    assert len(stub.Infer(request(image, state), timeout=30).features) > 0


def test_a_network_bind_needs_tls_and_a_token(tiny_models):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, '-m', 'aura_ros.backbones.server', '--params',
                           str(tiny_models['params_pi0']), '--bind', f'0.0.0.0:{free_port()}'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert 'is not a loopback address: it needs TLS' in proc.stderr
    assert time.monotonic() - t0 < 30      # refused before the model loads


@pytest.mark.parametrize('tls, token', [(False, False), (False, True), (True, False)])
def test_a_network_bind_without_both_tls_and_a_token_is_refused(tmp_path, tls, token):
    """Each missing half alone is refused (a token without TLS travels in the clear)."""
    from argparse import Namespace

    from aura_ros.backbones.server import security
    certs = make_certs(tmp_path) if tls else None
    args = Namespace(bind='0.0.0.0:5601', insecure=False, client_ca=None,
                     token_file=str(tmp_path / 'token') if token else None,
                     tls_cert=str(certs / 'server.pem') if tls else None,
                     tls_key=str(certs / 'server.key') if tls else None)
    if token:
        (tmp_path / 'token').write_text('a-token\n')
    with pytest.raises(SystemExit, match='is not a loopback address: it needs TLS'):
        security(args)
    args.bind = '127.0.0.1:5601'                 # loopback: allowed as configured
    security(args)


def test_a_network_bind_with_a_token_and_no_tls_exits_with_the_reason(tiny_models, tmp_path):
    (tmp_path / 'token').write_text('a-token\n')
    proc = subprocess.run([sys.executable, '-m', 'aura_ros.backbones.server', '--params',
                           str(tiny_models['params_pi0']), '--bind', f'0.0.0.0:{free_port()}',
                           '--token-file', str(tmp_path / 'token')],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and 'it needs TLS (--tls-cert, --tls-key)' in proc.stderr


def test_every_oversized_field_is_refused_before_any_allocation(served, tiny_models):
    """Instruction, image, state: INVALID_ARGUMENT with the reason; a message past the receive
    limit: RESOURCE_EXHAUSTED by gRPC before it is read. The server keeps serving."""
    from aura_ros.backbones.server import max_request_bytes
    stub, _ = served
    image = np.zeros((64, 64, 3), np.uint8)
    state = np.zeros(3, np.float32)
    cases = [(request(image, state, ), 'x' * 1_000_000, None,
              'instruction has 1000000 characters, at most 2000'),
             (pb.InferRequest(image=image.tobytes() * 2, height=64, width=64,
                              state=state.tolist()), None, None, 'image has 24576 bytes'),
             (pb.InferRequest(image=image.tobytes(), height=4096, width=4096,
                              state=state.tolist()), None, None, 'image is 4096x4096'),
             (request(image, np.zeros(100_000, np.float32)), None, None,
              'state has 100000 values'),
             (pb.InferRequest(image=b'\0' * (max_request_bytes(64) + 1), height=64, width=64,
                              state=state.tolist()), None, grpc.StatusCode.RESOURCE_EXHAUSTED,
              '')]
    for message, instruction, code, detail in cases:
        if instruction is not None:
            message.instruction = instruction
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as exc:
            stub.Infer(message, timeout=30)
        assert exc.value.code() == (code or grpc.StatusCode.INVALID_ARGUMENT), detail
        assert detail in (exc.value.details() or '')
        assert time.monotonic() - t0 < 2.0
    assert len(stub.Infer(request(image, state), timeout=30).features) > 0


def test_calls_per_connection_are_bounded(tiny_models):
    from aura_ros.backbones import build_backbone
    from aura_ros.backbones.server import build_server
    params, base_dir = read_params_file(tiny_models['params_pi0'], 'policy_node')
    slow = build_backbone(dict(backbone_block(params), delay_ms=400.0), base_dir=base_dir)
    server, port = build_server(slow, '127.0.0.1:0', max_batch=1, max_calls_per_client=1)
    server.start()
    try:
        channel = grpc.insecure_channel(f'127.0.0.1:{port}')
        stub = pb_grpc.BackboneStub(channel)
        image, state = np.zeros((64, 64, 3), np.uint8), np.zeros(3, np.float32)
        first = stub.Infer.future(request(image, state), timeout=30)
        time.sleep(0.1)
        with pytest.raises(grpc.RpcError) as exc:       # the same connection, a second call
            stub.Infer(request(image, state), timeout=30)
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 'at most 1' in exc.value.details()
        assert len(first.result().features) > 0
        assert len(stub.Infer(request(image, state), timeout=30).features) > 0   # freed
        other = grpc.insecure_channel(f'127.0.0.1:{port}',
                                      options=[('grpc.use_local_subchannel_pool', 1)])
        assert len(pb_grpc.BackboneStub(other).Infer(request(image, state),
                                                     timeout=30).features) > 0
        channel.close()
        other.close()
    finally:
        server.stop(grace=0)
    with pytest.raises(ValueError, match='max_batch must be in'):
        build_server(slow, '127.0.0.1:0', max_batch=1000)


def test_a_wrong_token_is_refused(tiny_models):
    from aura_ros.backbones.server import build_server
    server, port = build_server(local_backbone(tiny_models), '127.0.0.1:0', token='s3cret')
    server.start()
    try:
        channel = grpc.insecure_channel(f'127.0.0.1:{port}')
        stub = pb_grpc.BackboneStub(channel)
        with pytest.raises(grpc.RpcError) as exc:
            stub.Info(pb.InfoRequest(), timeout=10, metadata=[('authorization', 'Bearer no')])
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        info = stub.Info(pb.InfoRequest(), timeout=10,
                         metadata=[('authorization', 'Bearer s3cret')])
        assert info.action_dim == 3
        channel.close()
    finally:
        server.stop(grace=0)


def make_certs(folder):
    """A CA and a server certificate for 127.0.0.1 / localhost (openssl CLI), and a token."""
    import shutil
    if shutil.which('openssl') is None:
        pytest.skip('openssl is not installed: cannot make test certificates')

    def run(*args):
        subprocess.run(['openssl', *args], check=True, capture_output=True, cwd=folder)
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
        '-days', '2', '-subj', '/CN=aura test CA')
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr',
        '-subj', '/CN=localhost')
    (folder / 'san.ext').write_text('subjectAltName=IP:127.0.0.1,DNS:localhost\n')
    run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
        '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext')
    (folder / 'token').write_text('t0k3n-for-tests\n')
    return folder


@pytest.mark.slow
def test_tls_and_token_on_a_network_bind(tiny_models, tmp_path):
    certs = make_certs(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, '-m', 'aura_ros.backbones.server', '--params',
                             str(tiny_models['params_pi0']), '--bind', f'0.0.0.0:{port}',
                             '--tls-cert', str(certs / 'server.pem'), '--tls-key',
                             str(certs / 'server.key'), '--token-file', str(certs / 'token')],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        creds = grpc.ssl_channel_credentials((certs / 'ca.pem').read_bytes())
        channel = grpc.secure_channel(f'127.0.0.1:{port}', creds)
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = pb_grpc.BackboneStub(channel)
        with pytest.raises(grpc.RpcError) as exc:       # TLS but no token
            stub.Info(pb.InfoRequest(), timeout=10)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        info = stub.Info(pb.InfoRequest(), timeout=10,
                         metadata=[('authorization', 'Bearer t0k3n-for-tests')])
        assert info.action_dim == 3
        plain = grpc.insecure_channel(f'127.0.0.1:{port}')   # no TLS: no connection at all
        with pytest.raises(grpc.RpcError) as exc:
            pb_grpc.BackboneStub(plain).Info(pb.InfoRequest(), timeout=3,
                                             metadata=[('authorization',
                                                        'Bearer t0k3n-for-tests')])
        assert exc.value.code() in (grpc.StatusCode.UNAVAILABLE,
                                    grpc.StatusCode.DEADLINE_EXCEEDED)
        # the robot-side adapter with TLS and the token file
        params, base_dir = read_params_file(tiny_models['params_pi0'], 'policy_node')
        block = backbone_block(params)
        remote = build_backbone(dict(block, adapter='remote', options=dict(
            block['options'], port=port, tls_ca=str(certs / 'ca.pem'),
            token_file=str(certs / 'token'))))
        assert remote.feature_dim == local_backbone(tiny_models).feature_dim
        remote.close()
        channel.close()
        plain.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_committed_stubs_match_the_proto(tmp_path):
    """backbone_pb2*.py are generated from backbone.proto by the command the .proto gives."""
    pytest.importorskip('grpc_tools')
    from conftest import REPO
    proto = 'aura_ros/backbones/proto/backbone.proto'
    out = tmp_path / 'gen'
    out.mkdir()
    subprocess.run([sys.executable, '-m', 'grpc_tools.protoc', '-I', str(REPO),
                    f'--python_out={out}', f'--grpc_python_out={out}', str(REPO / proto)],
                   check=True)
    for name in ('backbone_pb2.py', 'backbone_pb2_grpc.py'):
        generated = (out / 'aura_ros/backbones/proto' / name).read_text()
        assert generated == (REPO / 'aura_ros/backbones/proto' / name).read_text(), name


@pytest.mark.parametrize('max_batch', [1, 8])
def test_concurrent_callers_each_get_their_own_answer(tiny_models, max_batch):
    """Six arms at once, each on its own connection (as robots are; one connection may have
    only --max-calls-per-client calls in progress): batched (one pass for several) or one at
    a time, every reply is the in-process answer for that caller's frame and seed."""
    from concurrent.futures import ThreadPoolExecutor

    from aura_ros.backbones.server import build_server
    local = local_backbone(tiny_models)
    server, port = build_server(local_backbone(tiny_models), '127.0.0.1:0',
                                max_batch=max_batch, max_wait_ms=100.0)
    server.start()
    rng = np.random.default_rng(9)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(6)]
    states = [rng.normal(size=3).astype(np.float32) for _ in range(6)]
    try:
        channels = [grpc.insecure_channel(f'127.0.0.1:{port}',
                                          [('grpc.use_local_subchannel_pool', 1)])
                    for _ in range(6)]

        def call(i):
            return pb_grpc.BackboneStub(channels[i]).Infer(
                request(frames[i], states[i], want_chunk=True, has_seed=True, seed=i),
                timeout=60)
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(call, range(6)))
        for channel in channels:
            channel.close()
    finally:
        server.stop(grace=0)
    sizes = [r.batch_size for r in replies]
    assert max(sizes) == 1 if max_batch == 1 else max(sizes) > 1, sizes
    for i, reply in enumerate(replies):
        enc = local.encode(frames[i], states[i], 'reach the marked pad')
        np.testing.assert_allclose(reply.features, enc.features.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.asarray(reply.chunk).reshape(8, 3), local.act(enc, i),
                                   rtol=1e-4, atol=1e-4)


class RecordingBackbone:
    """infer_batch records each batch's size (no model)."""

    def __init__(self):
        self.sizes = []

    def infer_batch(self, requests):
        self.sizes.append(len(requests))
        return [(torch.zeros(2), None)] * len(requests)


def test_batcher_waits_only_for_callers_it_has_seen():
    """One arm alone never waits for a batch (even with a 1 s wait); once two callers are
    active, the first request waits for the second and they run as one batch."""
    import threading

    from aura_ros.backbones.server import Batcher
    backbone = RecordingBackbone()
    batcher = Batcher(backbone, max_batch=8, max_wait_s=1.0)
    batcher.ACTIVE_S = 30.0      # the slow test must not age the callers out
    try:
        t0 = time.monotonic()
        for _ in range(3):
            assert batcher.submit(None, caller='arm-a')[2] == 1
        assert time.monotonic() - t0 < 0.5                  # no 1 s waits
        batcher.submit(None, caller='arm-b')                 # a second arm appears (waits)
        replies = []
        first = threading.Thread(target=lambda: replies.append(batcher.submit(None, 'arm-a')))
        first.start()
        time.sleep(0.3)                                      # arm-b comes 0.3 s later
        t_b = time.monotonic()
        replies.append(batcher.submit(None, caller='arm-b'))
        assert time.monotonic() - t_b < 0.5                  # closed at once, not at 1 s
        first.join(timeout=5)
        assert [r[2] for r in replies] == [2, 2] and backbone.sizes[-1] == 2
    finally:
        batcher.stop()
