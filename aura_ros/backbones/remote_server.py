"""Serve a backbone to ``remote`` / ``openvla_oft`` clients over loopback TCP.

    python -m aura_ros.backbones.remote_server --params config/pi0.yaml [--port 5600]
    python -m aura_ros.backbones.remote_server --params config/openvla_oft.yaml \\
        --backend openvla_oft            # in the OpenVLA-OFT env (transformers 4.40.1)

``--params`` is a parameter file; its ``backbone:`` block (under the policy node's
ros__parameters) configures the served adapter. One client at a time; the latest encoding is
kept for the following ``act``.
"""
import argparse
import socket
import sys

import numpy as np

from aura_ros.backbones.remote import recv_frame, send_frame


def load_backend(args):
    from aura_ros.params import backbone_block, read_params_file
    params, base_dir = read_params_file(args.params)
    block = backbone_block(params)
    if args.backend == 'openvla_oft':
        from aura_ros.backbones.openvla_oft_backend import OpenVLAOFTLocal
        block = dict(block, adapter='openvla_oft')
        return OpenVLAOFTLocal.from_block(block, base_dir)
    from aura_ros.backbones import build_backbone
    if block['adapter'] in ('remote', 'openvla_oft'):
        block = dict(block, adapter=args.backend or 'hf_pi0')
    elif args.backend:
        block = dict(block, adapter=args.backend)
    return build_backbone(block, base_dir=base_dir)


def serve(backbone, host, port, once=False):
    server = socket.create_server((host, port))
    print(f'backbone server ({type(backbone).__name__}) listening on {host}:{port}', flush=True)
    latest, handle = None, 0
    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while True:
                try:
                    request, arrays = recv_frame(conn)
                except (ConnectionError, OSError):
                    break
                try:
                    op = request.get('op')
                    if op == 'info':
                        cfg = backbone.config
                        send_frame(conn, {'ok': True, 'feature_dim': backbone.feature_dim,
                                          'action_dim': cfg.action_dim,
                                          'chunk_size': cfg.chunk_size,
                                          'adapter': cfg.adapter})
                    elif op == 'encode':
                        image, state = arrays
                        latest = backbone.encode(image, state, request.get('instruction', ''))
                        handle += 1
                        send_frame(conn, {'ok': True, 'handle': handle},
                                   [latest.features.numpy().astype(np.float32)])
                    elif op == 'act':
                        if latest is None or request.get('handle') != handle:
                            raise ValueError('act for an encoding that is not the latest')
                        send_frame(conn, {'ok': True},
                                   [np.asarray(backbone.act(latest), np.float32)])
                    else:
                        raise ValueError(f'unknown op {op!r}')
                except Exception as exc:  # report to the client, keep serving
                    send_frame(conn, {'ok': False, 'error': f'{type(exc).__name__}: {exc}'})
        if once:
            return


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--params', required=True, help='parameter file with a backbone block')
    parser.add_argument('--backend', default=None,
                        help='adapter to serve (default: the block\'s; openvla_oft in its env)')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=5600)
    parser.add_argument('--once', action='store_true', help='exit after the first client')
    args = parser.parse_args(argv)
    serve(load_backend(args), args.host, args.port, once=args.once)
    return 0


if __name__ == '__main__':
    sys.exit(main())
