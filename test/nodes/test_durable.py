"""DurableMemory without ROS: round trip, a corrupt file moved aside, a failed save counted."""
import pytest
import torch

from aura_ros.core import AuraConfig, build_memory
from aura_ros.core.snapshot import state_digest
from aura_ros.nodes.durable import DurableMemory


class Log:
    def __init__(self):
        self.lines = []

    def info(self, m):
        self.lines.append(('info', m))

    def error(self, m):
        self.lines.append(('error', m))


def memory_after_steps(n=20):
    torch.manual_seed(0)
    memory = build_memory(AuraConfig(feature_dim=6, action_dim=3, kind='always_write'))
    for _ in range(n):
        memory.step(torch.randn(6), torch.zeros(3))
    return memory


def test_round_trip_and_corrupt_file_moved_aside(tmp_path):
    path = DurableMemory.snapshot_path(str(tmp_path / 'sub' / 'm.safetensors'), None)
    saved = memory_after_steps()
    counts = {}
    DurableMemory(path, saved, Log(), counts).save()
    assert counts['snapshots'] == 1
    fresh = memory_after_steps(0)
    DurableMemory(path, fresh, Log(), {}).restore()
    assert state_digest(fresh) == state_digest(saved) and fresh.total_steps == 20
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF                                     # flip a byte of the state
    path.write_bytes(bytes(data))
    log, counts, other = Log(), {}, memory_after_steps(3)
    DurableMemory(path, other, log, counts).restore()
    assert counts['corrupt_snapshots'] == 1 and other.total_steps == 0   # started empty
    assert not path.exists() and path.with_name('m.safetensors.corrupt').exists()
    assert log.lines[-1][0] == 'error' and 'moved it to' in log.lines[-1][1]


def test_failed_save_is_counted_and_logged_never_raised(tmp_path):
    path = DurableMemory.snapshot_path(str(tmp_path / 'm.safetensors'), None)
    path.mkdir()                                  # the final rename onto it fails (OSError)
    log, counts = Log(), {}
    DurableMemory(path, memory_after_steps(), log, counts).save()
    assert counts['snapshot_errors'] == 1 and counts['snapshots'] == 0
    assert 'snapshot failed' in log.lines[-1][1]


@pytest.mark.parametrize('raw, match', [('', 'empty'), ('x.bin', 'must end in .safetensors')])
def test_bad_snapshot_paths_are_refused(tmp_path, raw, match):
    with pytest.raises(ValueError, match=match):
        DurableMemory.snapshot_path(raw, tmp_path)
