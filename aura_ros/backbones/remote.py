"""Backbones that live in another process (their own Python env), e.g. OpenVLA-OFT, which
needs transformers 4.40.1 and ``trust_remote_code``.

Wire protocol (TCP on loopback by default), one request -> one reply, each frame:
    4-byte big-endian header length | JSON header | raw array bytes
A header lists its arrays as [name, dtype, shape]; their bytes follow in that order.
    info                          -> feature_dim, action_dim, chunk_size, adapter
    encode  image, state, instr.  -> features, handle (the server keeps the latest encoding)
    act     handle                -> actions (chunk, action_dim), already un-normalised
Errors come back as {"ok": false, "error": "..."} and are raised as RuntimeError here.

``remote_server.py`` serves any adapter; ``openvla_oft`` is this client pointed at a server
running ``aura_ros.backbones.openvla_oft_backend`` in the OpenVLA-OFT env.
"""
import json
import socket
import struct
import subprocess
import time

import numpy as np
import torch

from aura_ros.backbones.base import Backbone, Encoding, register_backbone

MAX_HEADER = 1 << 20
MAX_PAYLOAD = 256 << 20


def send_frame(sock, header, arrays=()):
    arrays = [np.ascontiguousarray(a) for a in arrays]
    header = dict(header, arrays=[[str(a.dtype), list(a.shape)] for a in arrays])
    blob = json.dumps(header).encode()
    sock.sendall(struct.pack('>I', len(blob)) + blob + b''.join(a.tobytes() for a in arrays))


def _recv_exact(sock, n):
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError('backbone connection closed mid-frame')
        chunks.append(chunk)
        got += len(chunk)
    return b''.join(chunks)


def recv_frame(sock):
    (length,) = struct.unpack('>I', _recv_exact(sock, 4))
    if length > MAX_HEADER:
        raise ValueError(f'frame header of {length} bytes is too large')
    header = json.loads(_recv_exact(sock, length))
    arrays = []
    for dtype, shape in header.pop('arrays', []):
        dt = np.dtype(dtype)
        if dt.kind not in 'biuf':
            raise ValueError(f'refusing array dtype {dtype}')
        size = int(np.prod(shape)) * dt.itemsize
        if size > MAX_PAYLOAD:
            raise ValueError(f'array of {size} bytes is too large')
        arrays.append(np.frombuffer(_recv_exact(sock, size), dtype=dt).reshape(shape))
    return header, arrays


class RemoteBackbone(Backbone):
    """Client side. options: host (127.0.0.1), port (5600), timeout_s (10), server_command
    (optional argv that starts the server; it is started on configure and stopped on close)."""

    def __init__(self, config, base_dir=None):
        super().__init__(config)
        opts = config.options
        self.address = (opts.get('host', '127.0.0.1'), int(opts.get('port', 5600)))
        self.timeout = float(opts.get('timeout_s', 10.0))
        self.server = None
        if opts.get('server_command'):
            self.server = subprocess.Popen(list(opts['server_command']))
        self.sock = self._connect(float(opts.get('connect_timeout_s', 60.0)))
        info = self.call({'op': 'info'})[0]
        problems = [f'{k}: server {info[k]} != parameter file {getattr(config, k)}'
                    for k in ('action_dim', 'chunk_size') if info[k] != getattr(config, k)]
        if problems:
            self.close()
            raise ValueError(f'remote backbone does not match the parameter file: {problems}')
        self.feature_dim = int(info['feature_dim'])
        self.server_adapter = info.get('adapter', '?')

    def _connect(self, wait):
        deadline = time.monotonic() + wait
        while True:
            try:
                sock = socket.create_connection(self.address, timeout=self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as exc:
                if self.server is not None and self.server.poll() is not None:
                    raise RuntimeError(f'backbone server exited with {self.server.returncode} '
                                       f'before accepting connections') from exc
                if time.monotonic() > deadline:
                    raise ConnectionError(f'no backbone server at {self.address[0]}:'
                                          f'{self.address[1]} after {wait:.0f} s') from exc
                time.sleep(0.2)

    def call(self, header, arrays=()):
        send_frame(self.sock, header, arrays)
        reply, out = recv_frame(self.sock)
        if not reply.get('ok', False):
            raise RuntimeError(f"remote backbone error: {reply.get('error', 'unknown')}")
        return reply, out

    def encode(self, image, state, instruction=''):
        reply, (features,) = self.call(
            {'op': 'encode', 'instruction': instruction or self.config.instruction},
            [np.asarray(image, np.uint8), np.asarray(state, np.float32)])
        return Encoding(features=torch.from_numpy(features.astype(np.float32)),
                        cache=reply['handle'])

    def act(self, encoding, noise_seed=None):   # the server samples with its own generator
        _, (actions,) = self.call({'op': 'act', 'handle': encoding.cache})
        return actions.astype(np.float32)

    def close(self):
        if getattr(self, 'sock', None) is not None:
            self.sock.close()
            self.sock = None
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
            self.server = None


@register_backbone('remote')
class GenericRemoteBackbone(RemoteBackbone):
    """Any adapter served by ``python -m aura_ros.backbones.remote_server``."""


@register_backbone('openvla_oft')
class OpenVLAOFTBackbone(RemoteBackbone):
    """OpenVLA-OFT served from its own env by ``remote_server --backend openvla_oft``."""
