"""closed-loop, step-cost, soak and report benchmarks in small runs (the shipped models)."""
import json
import subprocess
import sys

import pytest

from aura_ros.bench import closed_loop, report, soak, step_cost

pytestmark = pytest.mark.slow


def test_wilson_interval():
    lo, hi = closed_loop.wilson(180, 200)
    assert lo == pytest.approx(0.8506, abs=1e-3) and hi == pytest.approx(0.9340, abs=1e-3)
    assert closed_loop.wilson(0, 10)[0] == 0.0
    assert closed_loop.wilson(10, 10)[1] == pytest.approx(1.0)


def test_closed_loop_small_run_json(tmp_path):
    out = tmp_path / 'cl.json'
    result = subprocess.run(
        [sys.executable, '-m', 'aura_ros.bench', 'closed-loop', '--episodes', '3',
         '--arms', 'base,aura,always_write,kv_cache,random_budget,periodic_budget',
         '--variants', 'memory', '--json', str(out), '--plot', str(tmp_path / 'cl.png')],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data['episodes'] == 3
    arms = data['arms']
    assert set(arms) == set(closed_loop.ARMS)
    for stats in arms.values():
        assert 0 <= stats['success_ci95'][0] <= stats['success'] <= stats['success_ci95'][1] <= 1
    assert arms['aura']['state_bytes_max'] == 4224
    assert arms['kv_cache']['state_bytes_max'] > 4224       # grows with steps
    assert arms['base']['writes_per_episode'] == 0
    assert arms['always_write']['writes_per_episode'] == arms['always_write']['steps_per_episode']
    assert (tmp_path / 'cl.png').stat().st_size > 1000
    (tmp_path / 'closed_loop.json').write_text(out.read_text())
    assert 'Closed loop on the simulated arm' in report.render(tmp_path)


def test_step_cost_small_run():
    result = step_cost.run(horizons=(50, 200), window=20, progress=False)
    assert result['horizons'] == [50, 200]
    for stats in result['arms'].values():
        assert all(m > 0 for m in stats['median_us'] + stats['core_median_us'])
    assert result['arms']['kv_cache']['state_bytes'] == [256 * 70, 256 * 240]
    assert result['arms']['aura']['state_bytes'] == [4224, 4224]


def test_soak_small_run():
    result = soak.run(steps=120, sample_every=40, progress=False)
    assert result['steps'] == [1, 40, 80, 120]
    assert set(result['state_bytes']) == {4224}
    assert result['summary']['withheld_commands'] == 0
    assert all(r > 0 for r in result['rss_bytes'])
