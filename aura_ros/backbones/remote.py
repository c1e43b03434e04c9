"""Backbones served by another process or host over gRPC (``aura_ros.backbones.server``, the
service in ``proto/backbone.proto``): a big VLA on a GPU host, or OpenVLA-OFT in its own
Python env (transformers 4.40.1, ``trust_remote_code``).

The call is stateless: ``infer`` sends the frame, proprioception and instruction and gets the
features (and the un-normalised chunk when one is wanted) in one round trip, so the memory
stays on the robot and any server process can answer. Options (``backbone.options``):

    host, port          the server (127.0.0.1:5601)
    timeout_s           deadline of every call (10 s); a missed deadline raises, and the
                        policy node holds the arm (its inference-error path)
    connect_timeout_s   wait this long for the server at start (60 s; gRPC reconnects with
                        back-off after that)
    server_command      argv that starts the server (empty: already running); stopped on close
    tls_ca              CA certificate (PEM): connect with TLS and verify the server
    tls_cert, tls_key   client certificate and key (PEM) for servers that verify clients
    token_file          file holding the bearer token the server expects (or the
                        AURA_BACKBONE_TOKEN environment variable)

On connect the client checks ``Info`` against the parameter file (action_dim, chunk_size).
A server that stops answering (UNAVAILABLE, a missed deadline) raises ``BackboneUnavailable``:
the policy node holds the arm and reports ERROR while gRPC reconnects with back-off (0.2 s
doubling to 2 s); the first call after that checks ``Info`` again (a server restarted with
another model is refused, and the arm keeps holding) and the node resumes.
"""
import os
import subprocess
from pathlib import Path

import grpc
import numpy as np
import torch

from aura_ros.backbones.base import (
    MAX_INSTRUCTION_CHARS,
    Backbone,
    BackboneUnavailable,
    Encoding,
    register_backbone,
)

DEFAULT_PORT = 5601
UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
               grpc.StatusCode.CANCELLED)     # CANCELLED: a server stopping mid-call


def _read(path):
    return Path(path).expanduser().read_bytes() if path else None


class RemoteBackbone(Backbone):
    def __init__(self, config, base_dir=None):
        super().__init__(config)
        from aura_ros.backbones.proto import backbone_pb2 as pb
        from aura_ros.backbones.proto import backbone_pb2_grpc as pb_grpc
        self.pb = pb
        opts = config.options
        self.target = f"{opts.get('host', '127.0.0.1')}:{int(opts.get('port', DEFAULT_PORT))}"
        self.timeout = float(opts.get('timeout_s', 10.0))
        token = (Path(opts['token_file']).expanduser().read_text().strip()
                 if opts.get('token_file') else os.environ.get('AURA_BACKBONE_TOKEN', ''))
        self.metadata = [('authorization', f'Bearer {token}')] if token else None
        self.server = None
        if opts.get('server_command'):
            self.server = subprocess.Popen(list(opts['server_command']))
        channel_options = [('grpc.max_receive_message_length', 64 << 20),
                           ('grpc.max_send_message_length', 64 << 20),
                           ('grpc.initial_reconnect_backoff_ms', 200),
                           ('grpc.max_reconnect_backoff_ms', 2000)]
        if opts.get('tls_ca'):
            credentials = grpc.ssl_channel_credentials(_read(opts['tls_ca']),
                                                       _read(opts.get('tls_key')),
                                                       _read(opts.get('tls_cert')))
            self.channel = grpc.secure_channel(self.target, credentials, channel_options)
        else:
            self.channel = grpc.insecure_channel(self.target, channel_options)
        self.stub = pb_grpc.BackboneStub(self.channel)
        self.feature_dim, self.checked, self.server_model = None, False, None
        # a connection that drops (even between calls) means: check whoever answers next
        self.channel.subscribe(self._on_connectivity)
        try:
            self._wait_ready(float(opts.get('connect_timeout_s', 60.0)))
            info = self._check_info()
        except BackboneUnavailable as exc:
            self.close()
            raise ConnectionError(str(exc)) from None
        except BaseException:
            self.close()
            raise
        self.server_adapter = info.adapter

    def _on_connectivity(self, state):
        if state != grpc.ChannelConnectivity.READY:
            self.checked = False

    def _check_info(self):
        """``Info`` against the parameter file (and, after a reconnect, against the feature
        width the memory was built for): ValueError at start, BackboneUnavailable later."""
        info = self._call(self.stub.Info, self.pb.InfoRequest())
        expected = {'action_dim': (self.config.action_dim, 'parameter file'),
                    'chunk_size': (self.config.chunk_size, 'parameter file')}
        if self.feature_dim is not None:
            expected['feature_dim'] = (self.feature_dim, 'the memory')
            expected['model_id'] = (self.server_model, 'the model served before')
            expected['image_size'] = (self.image_size, 'the model served before')
        problems = [f'{k}: server {getattr(info, k)} != {source} {v}'
                    for k, (v, source) in expected.items() if getattr(info, k) != v]
        if info.state_dim and info.state_dim != self.config.action_dim:   # 0: an older server
            problems.append(f'state_dim: server {info.state_dim} != the joints the robot sends '
                            f'(action_dim {self.config.action_dim})')
        if problems:
            message = f'remote backbone {self.target} does not match: {"; ".join(problems)}'
            if self.feature_dim is None:
                raise ValueError(message)
            raise BackboneUnavailable(message + ' (refused until the right server answers)')
        self.feature_dim, self.checked = int(info.feature_dim), True
        self.server_model, self.image_size = info.model_id, int(info.image_size)
        self.state_dim = int(info.state_dim) or self.config.action_dim  # 0: an older server
        return info

    def _wait_ready(self, wait):
        try:
            grpc.channel_ready_future(self.channel).result(timeout=wait)
        except grpc.FutureTimeoutError:
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError(f'backbone server exited with {self.server.returncode} '
                                   f'before accepting connections') from None
            raise ConnectionError(f'no backbone server at {self.target} after {wait:.0f} s') \
                from None

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            message = f'remote backbone {self.target}: {exc.code().name}: {exc.details()}'
            self.checked = False          # whoever answers next is checked first
            if exc.code() in UNAVAILABLE:
                raise BackboneUnavailable(message) from None
            raise RuntimeError(message) from None

    def _infer(self, request):
        if not self.checked:
            self._check_info()
        return self._call(self.stub.Infer, request)

    def _request(self, image, state, instruction, want_chunk, noise_seed):
        image = np.ascontiguousarray(image, np.uint8)
        instruction = instruction or self.config.instruction
        if len(instruction) > MAX_INSTRUCTION_CHARS:
            raise ValueError(f'instruction has {len(instruction)} characters, at most '
                             f'{MAX_INSTRUCTION_CHARS}')
        return self.pb.InferRequest(
            image=image.tobytes(), height=image.shape[0], width=image.shape[1],
            state=np.asarray(state, np.float32).ravel().tolist(),
            instruction=instruction, want_chunk=want_chunk,
            has_seed=noise_seed is not None, seed=int(noise_seed or 0))

    def infer(self, image, state, instruction='', want_chunk=True, noise_seed=None):
        """Features and (optionally) the chunk in one round trip."""
        request = self._request(image, state, instruction, want_chunk, noise_seed)
        reply = self._infer(request)
        encoding = Encoding(features=torch.tensor(reply.features, dtype=torch.float32),
                            cache=request)
        chunk = (np.asarray(reply.chunk, np.float32).reshape(self.config.chunk_size, -1)
                 if want_chunk else None)
        return encoding, chunk

    def encode(self, image, state, instruction=''):
        return self.infer(image, state, instruction, want_chunk=False)[0]

    def act(self, encoding, noise_seed=None):
        """The chunk for an earlier ``encode`` (the request is sent again: the server keeps no
        state); ``infer`` gets both at once."""
        request = encoding.cache
        request.want_chunk = True
        request.has_seed, request.seed = noise_seed is not None, int(noise_seed or 0)
        reply = self._infer(request)
        return np.asarray(reply.chunk, np.float32).reshape(self.config.chunk_size, -1)

    def close(self):
        if getattr(self, 'channel', None) is not None:
            self.channel.unsubscribe(self._on_connectivity)
            self.channel.close()
            self.channel = None
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
            self.server = None


@register_backbone('remote')
class GenericRemoteBackbone(RemoteBackbone):
    """Any adapter served by ``python -m aura_ros.backbones.server``."""


@register_backbone('openvla_oft')
class OpenVLAOFTBackbone(RemoteBackbone):
    """OpenVLA-OFT served from its own env by ``server --backend openvla_oft``."""
