"""Durable memory: the live state on disk, written atomically and only when the gate writes.

A snapshot is one safetensors file: the state tensors plus metadata (counters, a SHA-256 of the
tensor bytes, the memory kind and shapes). Writing goes to a temporary file in the same folder,
which is fsynced and renamed over the old snapshot, and the folder is fsynced: after a crash the
file is either the old snapshot or the new one, never half of each. Loading checks the checksum
and the shapes against the memory it restores into.
"""
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

FORMAT = 'aura_ros.snapshot.v1'


class SnapshotError(ValueError):
    """A snapshot that cannot be restored; the message says why."""


def _digest(tensors):
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().numpy().tobytes())
    return h.hexdigest()


def state_digest(memory):
    """SHA-256 of a memory's live state, as stored in its snapshots."""
    return _digest({k: v.detach().cpu() for k, v in memory.live_state().items()})


def save_snapshot(path, memory):
    """Atomically write ``memory``'s live state to ``path``; returns the bytes written."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu().clone() for k, v in memory.live_state().items()}
    meta = {'format': FORMAT, 'kind': memory.config.kind, 'sha256': _digest(tensors),
            'counters': json.dumps([memory.total_steps, memory.total_writes,
                                    memory.bytes_written])}
    tmp = path.with_name(f'.{path.name}.tmp')
    save_file(tensors, str(tmp), metadata=meta)
    with open(tmp, 'rb') as f:
        os.fsync(f.fileno())
    size = tmp.stat().st_size
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return size


def load_snapshot(path, memory):
    """Restore ``memory``'s live state and counters from ``path`` (verified)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'no memory snapshot at {path}')
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework='pt') as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt file
        raise SnapshotError(f'{path}: unreadable snapshot ({exc})') from exc
    if meta.get('format') != FORMAT:
        raise SnapshotError(f'{path}: not an aura_ros memory snapshot')
    if meta.get('sha256') != _digest(tensors):
        raise SnapshotError(f'{path}: checksum mismatch (corrupted snapshot)')
    if meta.get('kind') != memory.config.kind:
        raise SnapshotError(f"{path}: snapshot of a {meta.get('kind')} memory, this memory is "
                            f'{memory.config.kind}')
    own = memory.live_state()
    if set(own) != set(tensors) or any(
            own[k].shape != tensors[k].shape for k in own if k in tensors and
            memory.config.kind != 'kv_cache'):
        raise SnapshotError(f'{path}: snapshot shapes do not match this memory')
    memory.set_live_state(tensors)
    memory.total_steps, memory.total_writes, memory.bytes_written = json.loads(meta['counters'])
    return meta


__all__ = ['save_snapshot', 'load_snapshot', 'state_digest', 'SnapshotError', 'torch']
