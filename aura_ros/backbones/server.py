"""Serve any backbone over gRPC to robot arms (``aura_ros/backbones/proto/backbone.proto``).

    python -m aura_ros.backbones.server --params config/pi0.yaml --bind 127.0.0.1:5601

The ``backbone:`` block of the parameter file names the adapter and model, as for the policy
node. The service is stateless: ``Info`` (widths, chunk size, adapter, model), ``Infer`` (one
frame + proprioception + instruction -> features, and the un-normalised action chunk when
asked; its sampling noise seeded by the caller's seed when given), plus the standard
``grpc.health.v1`` health service. AURA's memory stays on the robot.

Security: a loopback bind may run without TLS. Any other bind needs TLS (``--tls-cert``,
``--tls-key``, optionally ``--client-ca`` to verify client certificates) and a bearer token
(``--token-file`` or the ``AURA_BACKBONE_TOKEN`` environment variable; compared in constant
time), unless ``--insecure`` is given, which is logged loudly.

Limits, checked before anything is allocated for a request (a token holder cannot make the
server allocate what it likes): a message larger than one frame plus ``MESSAGE_MARGIN`` is
refused by gRPC itself (RESOURCE_EXHAUSTED, before it is read); within that, an instruction
longer than ``MAX_INSTRUCTION_CHARS``, an image of another size than the backbone's, a state
of another width, a non-finite state are refused with INVALID_ARGUMENT and the reason; more
than ``--max-calls-per-client`` calls at once from one connection, or more than
``--max-workers`` in all, are refused with RESOURCE_EXHAUSTED. ``--max-batch`` is at most
``MAX_BATCH``. The server keeps serving.

In the OpenVLA-OFT env: ``--params config/openvla_oft.yaml --backend openvla_oft``
(``openvla_oft_backend.py``); in a LeRobot env: ``--params config/lerobot_act.yaml --backend
lerobot`` (``lerobot_backend.py``, a LeRobot policy checkpoint). The robot side is the
``remote`` / ``openvla_oft`` adapter (``remote.py``).

Batching: concurrent ``Infer`` calls (many arms) are collected into one batch (``--max-batch``,
``--max-wait-ms``) and run through the backbone once (``infer_batch``: hf_pi0 runs one prefix
pass and one flow integration for the batch; other adapters one by one); each caller gets its
own answer, its chunk noise seeded by its own seed.
"""
import argparse
import hmac
import ipaddress
import os
import queue
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from aura_ros.backbones.base import MAX_INSTRUCTION_CHARS, InferRequest
from aura_ros.backbones.proto import backbone_pb2 as pb
from aura_ros.backbones.proto import backbone_pb2_grpc as pb_grpc

SERVICE = 'aura_ros.backbone.v1.Backbone'
MESSAGE_MARGIN = 1 << 20     # bytes a request may carry besides its frame (state, instruction)
MAX_BATCH = 64               # --max-batch upper bound
MAX_REPLY = 16 << 20         # replies: features + one chunk


def max_request_bytes(image_size):
    """The largest request gRPC reads for a backbone taking image_size^2 rgb8 frames."""
    return image_size * image_size * 3 + MESSAGE_MARGIN


class Batcher:
    """Concurrent requests -> one ``infer_batch``: the first request of a batch waits at most
    ``max_wait_s`` for others, up to ``max_batch`` (1: one at a time, no wait), and stops
    waiting once every caller active in the last ``ACTIVE_S`` seconds is in the batch (one arm
    alone never waits; callers are told apart by their connection). One thread runs the
    backbone (adapters are not thread-safe)."""

    ACTIVE_S = 1.0

    def __init__(self, backbone, max_batch=8, max_wait_s=0.005):
        self.backbone, self.max_batch, self.max_wait_s = backbone, max_batch, max_wait_s
        self.queue = queue.Queue()
        self.last_seen = {}                            # caller -> time of its last request
        self.last_batch_s = 0.0                        # how long the last batch ran
        self.torch_threads = torch.get_num_threads()   # OpenMP's setting is per thread
        self.thread = threading.Thread(target=self._run, daemon=True, name='batcher')
        self.thread.start()

    def expected(self, now):
        """How many requests a batch can hope for: the callers seen within ACTIVE_S (or 3
        batch times, for backbones slower than that); callers silent for a minute are
        forgotten."""
        window = max(self.ACTIVE_S, 3 * self.last_batch_s)
        seen = list(self.last_seen.items())
        for caller, t in seen:
            if now - t > 60.0:
                self.last_seen.pop(caller, None)
        active = sum(1 for _, t in seen if now - t <= window)
        return max(1, min(self.max_batch, active))

    def submit(self, request, caller=''):
        """-> (features, chunk or None, batch size); raises what the backbone raised."""
        self.last_seen[caller] = time.monotonic()
        item = {'request': request, 'done': threading.Event()}
        self.queue.put(item)
        item['done'].wait()
        if 'error' in item:
            raise item['error']
        return item['result']

    def _run(self):
        torch.set_num_threads(self.torch_threads)
        while True:
            batch = [self.queue.get()]
            if batch[0] is None:
                return
            now = time.monotonic()
            deadline, wanted = now + self.max_wait_s, self.expected(now)
            while len(batch) < self.max_batch and (len(batch) < wanted or
                                                   not self.queue.empty()):
                try:
                    item = self.queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)
                    break
                batch.append(item)
            try:
                started = time.monotonic()
                results = self.backbone.infer_batch([i['request'] for i in batch])
                self.last_batch_s = time.monotonic() - started
                for item, (features, chunk) in zip(batch, results):
                    item['result'] = (features, chunk, len(batch))
            except Exception as exc:  # noqa: BLE001 - every caller of the batch gets it
                for item in batch:
                    item['error'] = exc
            for item in batch:
                item['done'].set()

    def stop(self):
        self.queue.put(None)


class BackboneService(pb_grpc.BackboneServicer):
    def __init__(self, backbone, model_id='', max_batch=8, max_wait_s=0.005,
                 max_calls_per_client=4):
        self.backbone = backbone
        self.model_id = model_id
        self.batcher = Batcher(backbone, max_batch, max_wait_s)
        self.max_calls_per_client = max_calls_per_client
        self.in_flight = {}                      # connection (peer) -> calls being served
        self.in_flight_lock = threading.Lock()

    def problem(self, request):
        """Why a request is refused (INVALID_ARGUMENT), or None; looks at sizes only."""
        cfg = self.backbone.config
        size = cfg.image_size
        if len(request.instruction) > MAX_INSTRUCTION_CHARS:
            return (f'instruction has {len(request.instruction)} characters, at most '
                    f'{MAX_INSTRUCTION_CHARS}')
        if (request.height, request.width) != (size, size):
            return (f'image is {request.height}x{request.width}, the backbone takes '
                    f'{size}x{size} rgb8')
        if len(request.image) != size * size * 3:
            return f'image has {len(request.image)} bytes, {size}x{size}x3 = {size * size * 3}'
        state_dim = getattr(self.backbone, 'state_dim', None) or cfg.action_dim
        if len(request.state) != state_dim:
            return f'state has {len(request.state)} values, the backbone takes {state_dim}'
        if not np.all(np.isfinite(request.state)):
            return 'state is not finite'
        return None

    def Info(self, request, context):
        cfg = self.backbone.config
        return pb.InfoReply(feature_dim=self.backbone.feature_dim, action_dim=cfg.action_dim,
                            chunk_size=cfg.chunk_size, adapter=cfg.adapter,
                            model_id=self.model_id, image_size=cfg.image_size,
                            max_batch=self.batcher.max_batch,
                            state_dim=getattr(self.backbone, 'state_dim', None) or cfg.action_dim)

    def Infer(self, request, context):
        t0 = time.perf_counter()
        problem = self.problem(request)
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        peer = context.peer()
        with self.in_flight_lock:
            busy = self.in_flight.get(peer, 0)
            if busy < self.max_calls_per_client:
                self.in_flight[peer] = busy + 1
        if busy >= self.max_calls_per_client:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f'{busy} calls from this connection in progress, at most '
                          f'{self.max_calls_per_client}')
        try:
            return self._infer(request, context, peer, t0)
        finally:
            with self.in_flight_lock:
                left = self.in_flight[peer] - 1
                if left:
                    self.in_flight[peer] = left
                else:
                    del self.in_flight[peer]

    def _infer(self, request, context, peer, t0):
        size = self.backbone.config.image_size
        image = np.frombuffer(request.image, np.uint8).reshape(size, size, 3).copy()
        state = np.asarray(request.state, np.float32)
        try:
            features, chunk, batch = self.batcher.submit(InferRequest(
                image, state, request.instruction, request.want_chunk,
                int(request.seed) if request.has_seed else None), peer)
        except Exception as exc:  # noqa: BLE001 - the caller gets the reason, serving goes on
            context.abort(grpc.StatusCode.INTERNAL, f'{type(exc).__name__}: {exc}')
        reply = pb.InferReply(features=features.numpy().astype(np.float32).ravel(),
                              batch_size=batch)
        if chunk is not None:
            reply.chunk.extend(np.asarray(chunk, np.float32).ravel())
        reply.server_ms = 1e3 * (time.perf_counter() - t0)
        return reply


class TokenCheck(grpc.ServerInterceptor):
    """Refuse every call without ``authorization: Bearer <token>`` (health checks included)."""

    def __init__(self, token):
        self.expected = f'Bearer {token}'.encode()

        def refuse(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, 'missing or wrong bearer token')
        self.refusal = grpc.unary_unary_rpc_method_handler(refuse)

    def intercept_service(self, continuation, details):
        metadata = dict(details.invocation_metadata)
        given = metadata.get('authorization', '')
        given = given.encode() if isinstance(given, str) else bytes(given)
        if not hmac.compare_digest(given, self.expected):   # constant time
            return self.refusal
        return continuation(details)


def is_loopback(bind):
    host = bind.rsplit(':', 1)[0].strip('[]')
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_server(backbone, bind, model_id='', token=None, credentials=None, max_batch=8,
                 max_wait_ms=5.0, max_workers=32, max_calls_per_client=4):
    """A grpc.Server ready to .start() and its port; raises ValueError when the port cannot be
    bound or a limit is out of range."""
    if not 1 <= max_batch <= MAX_BATCH:
        raise ValueError(f'max_batch must be in [1, {MAX_BATCH}], got {max_batch}')
    if not 1 <= max_calls_per_client <= max_workers:
        raise ValueError(f'max_calls_per_client must be in [1, max_workers={max_workers}], '
                         f'got {max_calls_per_client}')
    interceptors = [TokenCheck(token)] if token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                         interceptors=interceptors, maximum_concurrent_rpcs=max_workers,
                         options=[('grpc.max_receive_message_length',
                                   max_request_bytes(backbone.config.image_size)),
                                  ('grpc.max_send_message_length', MAX_REPLY)])
    pb_grpc.add_BackboneServicer_to_server(
        BackboneService(backbone, model_id, max_batch, max_wait_ms / 1e3,
                        max_calls_per_client), server)
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for name in ('', SERVICE):
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    port = (server.add_secure_port(bind, credentials) if credentials is not None
            else server.add_insecure_port(bind))
    if port == 0:
        raise ValueError(f'cannot bind {bind}')
    return server, port


def load_backbone(params, backend=None):
    """The adapter of the file's backbone block (a client block, ``remote`` / ``openvla_oft``,
    serves ``--backend``, default hf_pi0), and the model's name."""
    from aura_ros.params import backbone_block, read_params_file
    values, base_dir = read_params_file(params, 'policy_node')
    block = backbone_block(values)
    path = Path(str(block['model_path']))
    # LeRobot saves every checkpoint as .../<run>/checkpoints/<step>/pretrained_model
    name = '/'.join(path.parts[-4:]) if path.name == 'pretrained_model' else path.name
    if backend == 'openvla_oft':        # in the OpenVLA-OFT env (openvla_oft_backend.py)
        from aura_ros.backbones.openvla_oft_backend import OpenVLAOFTLocal
        return OpenVLAOFTLocal.from_block(dict(block, adapter='openvla_oft'), base_dir), name
    from aura_ros.backbones import build_backbone
    if backend:
        block = dict(block, adapter=backend)
    elif block['adapter'] in ('remote', 'openvla_oft'):
        block = dict(block, adapter='hf_pi0')
    return build_backbone(block, base_dir=base_dir), name


def security(args):
    """(credentials or None, token or None) for the bind, or SystemExit with the reason."""
    token = None
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    elif os.environ.get('AURA_BACKBONE_TOKEN'):
        token = os.environ['AURA_BACKBONE_TOKEN'].strip()
    credentials = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise SystemExit('backbone server: --tls-cert and --tls-key go together')
        ca = Path(args.client_ca).read_bytes() if args.client_ca else None
        credentials = grpc.ssl_server_credentials(
            [(Path(args.tls_key).read_bytes(), Path(args.tls_cert).read_bytes())],
            root_certificates=ca, require_client_auth=ca is not None)
    if not is_loopback(args.bind) and not args.insecure and (credentials is None or not token):
        raise SystemExit(f'backbone server: {args.bind} is not a loopback address: it needs TLS '
                         f'(--tls-cert, --tls-key) and a bearer token (--token-file or '
                         f'AURA_BACKBONE_TOKEN), or --insecure to serve anyone on the network')
    return credentials, token


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m aura_ros.backbones.server',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--params', required=True, help='parameter file with a backbone block')
    parser.add_argument('--backend', default=None, help="adapter to serve (default: the file's)")
    parser.add_argument('--bind', default='127.0.0.1:5601', help='host:port to listen on')
    parser.add_argument('--tls-cert', default=None, help='server certificate (PEM)')
    parser.add_argument('--tls-key', default=None, help='server private key (PEM)')
    parser.add_argument('--client-ca', default=None,
                        help='CA (PEM) that client certificates must be signed by (mutual TLS)')
    parser.add_argument('--token-file', default=None,
                        help='file holding the bearer token clients must send')
    parser.add_argument('--max-batch', type=int, default=8,
                        help='requests run through the backbone together (1 = one at a time)')
    parser.add_argument('--max-wait-ms', type=float, default=5.0,
                        help='how long a request waits for others to join its batch')
    parser.add_argument('--max-workers', type=int, default=32,
                        help='calls served at once (more are refused: RESOURCE_EXHAUSTED)')
    parser.add_argument('--max-calls-per-client', type=int, default=4,
                        help='calls one connection may have in progress at once')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads (0 = torch default)')
    parser.add_argument('--insecure', action='store_true',
                        help='allow a non-loopback bind without TLS and token (not advised)')
    args = parser.parse_args(argv)
    credentials, token = security(args)
    if args.insecure and not is_loopback(args.bind):
        print(f'WARNING: serving {args.bind} WITHOUT TLS or authentication: anyone who reaches '
              f'this port can use the backbone', file=sys.stderr, flush=True)
    if not 1 <= args.max_batch <= MAX_BATCH or args.max_wait_ms < 0:
        raise SystemExit(f'backbone server: --max-batch must be in [1, {MAX_BATCH}] and '
                         f'--max-wait-ms >= 0')
    if args.max_workers < 1 or not 1 <= args.max_calls_per_client <= args.max_workers:
        raise SystemExit('backbone server: --max-workers must be >= 1 and '
                         '--max-calls-per-client in [1, --max-workers]')
    if args.threads:
        torch.set_num_threads(args.threads)
    backbone, model_id = load_backbone(args.params, args.backend)
    server, port = build_server(backbone, args.bind, model_id, token, credentials,
                                args.max_batch, args.max_wait_ms, args.max_workers,
                                args.max_calls_per_client)
    server.start()
    print(f'backbone server ({backbone.config.adapter}, {model_id}) listening on {args.bind} '
          f"({'TLS' if credentials else 'plaintext'}{', token' if token else ''}; batches of "
          f'up to {args.max_batch}, {args.max_wait_ms:g} ms wait)', flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=1.0)
    return 0


if __name__ == '__main__':
    sys.exit(main())
