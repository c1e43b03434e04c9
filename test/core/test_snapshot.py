"""Durable memory snapshots: atomic, verified, restored exactly."""
import pytest
import torch

from aura_ros.core import AuraConfig, build_memory
from aura_ros.core.snapshot import SnapshotError, load_snapshot, save_snapshot


def stepped(kind='aura', steps=12):
    torch.manual_seed(0)
    memory = build_memory(AuraConfig(feature_dim=8, action_dim=2, kind=kind)).eval()
    memory.reset()
    for _ in range(steps):
        memory.step(torch.randn(8), torch.zeros(2))
    return memory


@pytest.mark.parametrize('kind', ['aura', 'always_write', 'skip_budget', 'gru_dense',
                                  'kv_cache'])
def test_round_trip_restores_state_and_counters(tmp_path, kind):
    memory = stepped(kind)
    size = save_snapshot(tmp_path / 's.safetensors', memory)
    assert size == (tmp_path / 's.safetensors').stat().st_size
    fresh = stepped(kind, steps=0)
    load_snapshot(tmp_path / 's.safetensors', fresh)
    for name, tensor in memory.live_state().items():
        assert torch.equal(tensor, fresh.live_state()[name]), name
    assert (fresh.total_steps, fresh.total_writes, fresh.bytes_written) == \
        (memory.total_steps, memory.total_writes, memory.bytes_written)
    # the restored memory continues exactly like the original
    x = torch.randn(8)
    assert torch.equal(memory.step(x, torch.zeros(2)).action, fresh.step(x, torch.zeros(2)).action)


def test_no_temporary_file_left_and_old_snapshot_replaced(tmp_path):
    path = tmp_path / 's.safetensors'
    save_snapshot(path, stepped(steps=3))
    save_snapshot(path, stepped(steps=7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['s.safetensors']
    fresh = stepped(steps=0)
    load_snapshot(path, fresh)
    assert fresh.total_steps == 7


def test_corrupt_truncated_or_foreign_snapshots_refused(tmp_path):
    path = tmp_path / 's.safetensors'
    save_snapshot(path, stepped())
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF                       # flip a bit inside W
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match='checksum'):
        load_snapshot(path, stepped(steps=0))
    path.write_bytes(bytes(data[:len(data) // 2]))
    with pytest.raises(SnapshotError, match='unreadable'):
        load_snapshot(path, stepped(steps=0))
    save_snapshot(path, stepped('gru_dense'))
    with pytest.raises(SnapshotError, match='gru_dense'):
        load_snapshot(path, stepped(steps=0))
    with pytest.raises(FileNotFoundError):
        load_snapshot(tmp_path / 'missing.safetensors', stepped(steps=0))
