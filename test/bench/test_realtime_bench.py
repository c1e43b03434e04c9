"""The real-time benchmark's measures and its CLI in a tiny run (1 episode per point)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from aura_ros.bench.realtime import stream_metrics, targets


def test_stream_metrics_of_a_cubic_give_its_constant_jerk_and_steps():
    t = np.arange(0, 1, 0.01)
    x = np.stack([2.0 * t ** 3, np.zeros_like(t)], axis=1)     # jerk d3x/dt3 = 12
    periods, steps, jerks = stream_metrics(t, x)
    assert np.allclose(periods, 0.01)
    assert steps.max() == pytest.approx(np.abs(np.diff(x[:, 0])).max())
    assert np.allclose(jerks, 12.0, rtol=1e-6)
    held = stream_metrics(t, np.ones((len(t), 2)))               # holding still: no jerk
    assert held[1].max() == 0 and held[2].max() == 0


def test_targets_follow_the_numbers():
    result = dict(latencies_ms=[0, 200], control_rate_target_hz=100.0, modes={
        'sync': dict(success=[0.9, 0.2], control_rate_hz=[30, 5],
                     period_jitter_p99_ms=[40, 200], joint_step_p99=[0.15, 0.15],
                     jerk_p99=[1e4, 1e4]),
        'async_latest': dict(success=[0.8, 0.6], control_rate_hz=[99.5, 97.0],
                             period_jitter_p99_ms=[3.0, 6.0], joint_step_p99=[0.05, 0.05],
                             jerk_p99=[5e4, 5e4]),
        'async_blend': dict(success=[0.8, 0.76], control_rate_hz=[99.9, 99.0],
                            period_jitter_p99_ms=[2.0, 4.0], joint_step_p99=[0.04, 0.06],
                            jerk_p99=[4e4, 4e4])})
    out = targets(result)
    assert out['best_async_keeps_90pct_at_200ms']                # blend keeps 0.95
    assert out['async_kept_at_200ms']['async_latest'] == pytest.approx(0.75)
    assert out['sync_kept_at_200ms'] == pytest.approx(0.2 / 0.9)
    assert out['control_rate_within_2pct']['async_latest'] == [True, False]
    assert out['jitter_p99_at_most_5ms']['async_latest'] == [True, False]
    assert out['smoother_than_latest']['async_blend'] == [True, False]
    assert out['smoother_than_latest_by'] == 'joint_step_p99 and jerk_p99'
    # with the requested (pre-limit) step recorded, the comparison uses it instead
    result['modes']['async_latest']['target_step_p99'] = [0.10, 0.10]
    result['modes']['async_blend']['target_step_p99'] = [0.09, 0.12]
    result['modes']['async_blend']['jerk_p99'] = [4e4, 4e4]
    out = targets(result)
    assert out['smoother_than_latest_by'] == 'target_step_p99 and jerk_p99'
    assert out['smoother_than_latest']['async_blend'] == [True, False]   # 0.12 > 0.10 at 200


@pytest.mark.slow
def test_cli_tiny_run_writes_the_issue_keys(tmp_path):
    out = tmp_path / 'rt.json'
    result = subprocess.run(
        [sys.executable, '-m', 'aura_ros.bench', 'realtime', '--episodes', '1',
         '--modes', 'sync,async_blend', '--latencies', '0,100', '--json', str(out),
         '--plot', str(tmp_path / 'rt.png'), '--cache-dir', str(tmp_path / 'cache')],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data['latencies_ms'] == [0, 100] and data['control_rate_target_hz'] == 100.0
    for mode in ('sync', 'async_blend'):
        block = data['modes'][mode]
        for key in ('success', 'success_ci95', 'control_rate_hz', 'period_jitter_p99_ms',
                    'jerk_p99'):
            assert len(block[key]) == 2, (mode, key)
    # async commands at its control rate, sync at its inference rate (<= the frame rate): the
    # order, not the rates (those are the benchmark's, measured on an otherwise idle machine)
    assert min(data['modes']['async_blend']['control_rate_hz']) > \
        max(data['modes']['sync']['control_rate_hz'])
    assert (tmp_path / 'rt.png').stat().st_size > 0
    assert len(list((tmp_path / 'cache').glob('*.json'))) == 4   # one per point: resumable


def test_cache_key_changes_with_the_weights_not_with_comments(tmp_path):
    """A memory retrained into the same file is a new policy (no stale cache hit); a comment
    in the parameter file is not."""
    from aura_ros.bench.realtime import params_digest
    ckpt = tmp_path / 'memory.safetensors'
    ckpt.write_bytes(b'weights v1')
    params = tmp_path / 'p.yaml'
    body = ('/**/policy_node:\n  ros__parameters:\n    memory:\n'
            f'      checkpoint: {ckpt}\n    control_rate: 100.0\n')
    params.write_text(body)
    first = params_digest(params)
    params.write_text('# a comment\n' + body)
    assert params_digest(params) == first
    ckpt.write_bytes(b'weights v2')
    assert params_digest(params) != first


def test_the_peers_modes_are_known_to_the_cli_and_keep_the_cached_points_valid():
    from aura_ros.bench.__main__ import build_parser
    from aura_ros.bench.realtime import MODES, PEER_MODES, TRANSITION, RealtimeSettings
    from aura_ros.control import TRANSITIONS
    assert set(PEER_MODES) <= set(MODES) and all(TRANSITION[m] in TRANSITIONS for m in MODES
                                                 if m != 'sync')
    args = build_parser().parse_args(['realtime', '--open-loop-steps', '8', '--json', 'x'])
    assert args.modes.split(',') == list(MODES) and args.open_loop_steps == 8
    # the keys of the points cached before the peers' modes existed (commit 5429a58)
    s = RealtimeSettings()
    assert {m: s.key(m, 200, '0123456789ab') for m in MODES[:4]} == {
        'sync': '3dd8e09a1430', 'async_latest': 'ca099700796e',
        'async_temporal_ensemble': 'c86da8332248', 'async_blend': '44632703f52f'}
    other = RealtimeSettings(open_loop_steps=8)       # counts for open_loop_chunk only
    assert other.key('async_blend', 0, 'd') == s.key('async_blend', 0, 'd')
    assert other.key('open_loop_chunk', 0, 'd') != s.key('open_loop_chunk', 0, 'd')


def test_targets_compare_ours_with_the_peers():
    def block(success, rate=100.0, step=0.05, jerk=5e4, ci=None):
        return dict(success=success, control_rate_hz=[rate] * 2,
                    period_jitter_p99_ms=[1.0] * 2, joint_step_p99=[0.045] * 2,
                    target_step_p99=[step] * 2, jerk_p99=[jerk] * 2,
                    success_ci95=ci or [[s - 0.1, s + 0.1] for s in success])
    result = dict(latencies_ms=[0, 200], control_rate_target_hz=100.0, modes={
        'async_latest': block([0.8, 0.8], step=0.10, jerk=6e4),
        'async_blend': block([0.8, 0.9], step=0.02, jerk=2e4),
        'async_lerobot_weighted': block([0.85, 0.5], step=0.05, jerk=3e4),
        'open_loop_chunk': block([0.8, 0.3], rate=60.0, step=0.30, jerk=9e4)})
    out = targets(result)
    assert out['best_async_mode'] == 'async_blend'                 # ours only
    assert 'open_loop_chunk' not in out['control_rate_within_2pct']   # holds by design
    assert out['control_rate_within_2pct']['async_lerobot_weighted'] == [True, True]
    assert out['smoother_than_latest']['async_lerobot_weighted'] == [True, True]
    lr = out['peers']['async_lerobot_weighted']
    # ours: the node's default (blend), fixed before the run, not the best of ours per latency
    assert lr['best_ours'] == ['async_blend', 'async_blend']
    assert lr['ours_at_least_as_successful'] == [False, True]
    assert lr['ours_above_ci'] == [False, True] and lr['ours_below_ci'] == [False, False]
    assert lr['smoother_than_peer_by'] == 'target_step_p99 and jerk_p99'
    assert lr['smoother_than_peer'] == {'async_latest': [False, False],
                                        'async_blend': [True, True]}
    assert out['peers']['open_loop_chunk']['smoother_than_peer']['async_latest'] == [True] * 2


def test_the_report_tables_the_peers_modes():
    from aura_ros.bench.report import realtime_section
    from conftest import REPO
    rt = json.loads((REPO / 'bench/results/realtime.json').read_text())
    rt['modes']['async_lerobot_weighted'] = dict(rt['modes']['async_latest'])
    rt['modes']['open_loop_chunk'] = dict(rt['modes']['async_blend'])
    rt['targets'] = targets(rt)
    text = '\n'.join(realtime_section(rt))
    assert '| open_loop_chunk |' in text and "peers' handover `async_lerobot_weighted`" in text


def test_unknown_modes_are_refused_before_anything_runs():
    from aura_ros.bench.realtime import run
    with pytest.raises(ValueError, match='unknown realtime modes'):
        run(modes=['async_bogus'], progress=False)
