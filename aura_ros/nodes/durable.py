"""The policy node's durable memory, without ROS: the memory state is snapshotted to one file on
every gate write (storage writes = gate writes) and on reset, and restored on configure. The
crash safety is core/snapshot.py's (temp file, fsync, rename, checksum); here a file that fails
its check is moved aside (``.corrupt``) and the memory starts empty, with one clear log line.
"""
import os

from aura_ros.core.snapshot import SnapshotError, load_snapshot, save_snapshot
from aura_ros.paths import resolve_path


class DurableMemory:
    def __init__(self, path, memory, logger, counts):
        """``counts``: the node's counter dict (snapshots, snapshot_errors, corrupt_snapshots);
        ``logger``: info/error(message)."""
        self.path, self.memory, self.logger, self.counts = path, memory, logger, counts
        self.bytes_written = 0
        for key in ('snapshots', 'snapshot_errors', 'corrupt_snapshots'):
            counts.setdefault(key, 0)

    @staticmethod
    def snapshot_path(raw, base_dir):
        """The validated snapshot file for ``memory.snapshot_path`` (its folder created)."""
        if not raw:
            raise ValueError('memory.durable is true but memory.snapshot_path is empty')
        path = resolve_path(raw, base_dir, must_exist=False, kind='memory snapshot')
        if path.suffix != '.safetensors':
            raise ValueError(f'memory.snapshot_path must end in .safetensors, got {path}')
        if path.exists() and not path.is_file():
            raise ValueError(f'memory.snapshot_path {path} exists and is not a file')
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def restore(self):
        path, memory = self.path, self.memory
        if not path.exists():
            self.logger.info(f'durable memory: no snapshot at {path} yet, starting empty')
            return
        try:
            load_snapshot(path, memory)
            self.logger.info(f'durable memory: restored {path} ({memory.total_steps} steps, '
                             f'{memory.total_writes} writes)')
        except (SnapshotError, OSError) as exc:
            aside = path.with_name(path.name + '.corrupt')
            os.replace(path, aside)
            memory.reset()
            self.counts['corrupt_snapshots'] += 1
            self.logger.error(f'durable memory: {exc}; moved it to {aside}, starting with an '
                              f'empty memory')

    def save(self, log_error=None):
        """Snapshot now; an OSError is counted and logged (``log_error``), never raised."""
        try:
            self.bytes_written += save_snapshot(self.path, self.memory)
            self.counts['snapshots'] += 1
        except OSError as exc:
            self.counts['snapshot_errors'] += 1
            (log_error or self.logger.error)(f'durable memory: snapshot failed: {exc}')
