"""closed-loop, step-cost, soak and report benchmarks in small runs (the shipped models)."""
import json
import subprocess
import sys

import pytest
import torch

from aura_ros.bench import closed_loop, report, soak, step_cost
from aura_ros.bench.stats import wilson


def test_wilson_interval():
    lo, hi = wilson(180, 200)
    assert lo == pytest.approx(0.8506, abs=1e-3) and hi == pytest.approx(0.9340, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0
    assert wilson(10, 10)[1] == pytest.approx(1.0)
    for w, n in [(0, 7), (7, 7), (3, 7), (1, 3)]:   # the point never leaves its interval
        lo, hi = wilson(w, n)
        assert lo <= w / n <= hi


@pytest.mark.slow
def test_closed_loop_small_run_json(tmp_path):
    out = tmp_path / 'cl.json'
    result = subprocess.run(
        [sys.executable, '-m', 'aura_ros.bench', 'closed-loop', '--episodes', '2',
         '--calibration', '2', '--variants', 'plain', '--json', str(out), '--plot',
         str(tmp_path / 'cl.png')], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data['episodes'] == 2 and data['task'] == 'v2' and list(data['variants']) == ['plain']
    block = data['variants']['plain']
    arms = block['arms']
    assert set(arms) == set(closed_loop.ARMS)
    assert set(block['ablation']) == set(closed_loop.ABLATIONS)
    for stats in arms.values():
        assert stats['successes'] == round(2 * stats['success'])
        probability = stats['write_probability']
        assert set(probability) == set(closed_loop.FRAME_KINDS)
        frames = sum(p['frames'] for p in probability.values())
        assert frames == round(2 * stats['steps_per_episode'])        # every step has a kind
        assert sum(p['writes'] for p in probability.values()) == round(
            2 * stats['writes_per_episode'])
        assert len(stats['per_episode']) == 2
        assert sum(len(w) for _, w in stats['per_episode']) == round(
            2 * stats['writes_per_episode'])
    for arm in closed_loop.MEMORYLESS:
        if arm in arms:
            assert arms[arm]['writes_per_episode'] == 0
    assert arms['aura']['state_bytes_max'] == 4224
    assert arms['kv_cache']['state_bytes_max'] > 4224       # grows with steps
    assert arms['always_write']['writes_per_episode'] == arms['always_write']['steps_per_episode']
    assert all(w == [0] for _, w in arms['first_frame']['per_episode'])
    oracle = arms['cue_oracle']['write_probability']
    assert oracle['cue_onset']['p'] == 1.0 and oracle['cue_onset']['frames'] == 2
    assert sum(p['writes'] for k, p in oracle.items() if k != 'cue_onset') == 0
    assert set(data['checkpoints']) >= {'memory.safetensors', 'memory_kv_cache.safetensors'}
    assert (tmp_path / 'cl.png').stat().st_size > 1000
    (tmp_path / 'closed_loop.json').write_text(out.read_text())
    assert 'Closed loop on the planar arm, task v2' in report.render(tmp_path)


def test_forced_schedules_write_where_they_say_and_nothing_else_differs():
    """first_frame writes frame 0, cue_oracle the cue onsets that carry news (switch too, not
    the re-shown cue), pixel_change the frames past its threshold; each on AURA's memory."""
    from aura_ros.sim.arm import ArmEnv, ArmTaskConfig
    memory = closed_loop.load_arm('cue_oracle', closed_loop.default_memory_dir())
    aura = closed_loop.load_arm('aura', closed_loop.default_memory_dir())
    assert all(torch.equal(a, b) for a, b in zip(memory.state_dict().values(),
                                                  aura.state_dict().values()))
    env = ArmEnv(ArmTaskConfig(variant='memory_switch'))
    for arm, threshold in (('first_frame', None), ('cue_oracle', None), ('pixel_change', 5.0)):
        schedule = closed_loop.ForcedWrites(arm, threshold)
        env.reset(7)
        previous, decided = None, []
        while env.t < env.go_step:
            frame = env.render()
            schedule.before_step(env, frame)
            decided.append(schedule.write)
            expected = {'first_frame': env.t == 0,
                        'cue_oracle': env.frame_kind in ('cue_onset', 'switch_cue'),
                        'pixel_change': closed_loop.pixel_change(frame, previous) > 5.0}[arm]
            assert schedule.write == expected, (arm, env.t, env.frame_kind)
            previous = frame
            env.step(None)
        assert any(decided)
    with pytest.raises(ValueError, match='calibrated threshold'):
        closed_loop.ForcedWrites('pixel_change')


def test_budget_schedules_are_fresh_per_episode_and_repeat_for_its_seed():
    from aura_ros.paths import package_share
    from aura_ros.policy import PolicyRunner
    from aura_ros.sim.arm import ArmEnv, ArmTaskConfig
    from aura_ros.sim.rollout import run_episode, sim_limits
    from aura_ros.train.__main__ import load_backbone
    backbone = load_backbone(package_share('aura_ros') + '/config/default.yaml')
    memory = closed_loop.load_arm('random_budget', closed_loop.default_memory_dir())
    runner = PolicyRunner(backbone, memory, sim_limits())
    env = ArmEnv(ArmTaskConfig(variant='memory'))
    steps = [[t for t, w in enumerate(run_episode(env, runner, seed).wrote) if w]
             for seed in (1, 2, 1)]
    assert steps[0] != steps[1] and steps[0] == steps[2]


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


@pytest.mark.parametrize('name, engine, params', [
    ('closed_loop.json', 'planar', 'config/default.yaml'),
    ('closed_loop_mujoco.json', 'mujoco', 'config/sim_mujoco.yaml')])
@pytest.mark.slow
def test_the_published_closed_loop_numbers_come_from_the_shipped_checkpoints(name, engine,
                                                                           params):
    """What ships is what is published: the JSON's checkpoints are the shipped files (sha256),
    and replaying its first episodes with them (lockstep is deterministic) gives the stored
    outcome and write steps, episode by episode."""
    from aura_ros.train.__main__ import load_backbone
    from conftest import REPO
    data = json.loads((REPO / 'bench' / 'results' / name).read_text())
    memory_dir = closed_loop.default_memory_dir(str(REPO / params))   # what the file ships
    assert closed_loop.checkpoint_digests(memory_dir, list(closed_loop.ARMS)) == \
        data['checkpoints']
    backbone = load_backbone(str(REPO / params))
    episodes = 3 if engine == 'planar' else 2
    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # as closed_loop.run computed them (its float sums' order)
    try:
        _replay(data, memory_dir, backbone, episodes, engine)
    finally:
        torch.set_num_threads(threads)


def _replay(data, memory_dir, backbone, episodes, engine):
    for key, arms in (('plain', ('aura', 'first_frame', 'pixel_change', 'always_write')),
                      ('switch', ('aura', 'cue_oracle'))):
        block = data['variants'][key]
        seeds = range(data['first_seed'], data['first_seed'] + episodes)
        for arm in arms:
            memory = closed_loop.load_arm(arm, memory_dir)
            before = None
            if arm in closed_loop.FORCED:
                threshold = block.get('calibration', {}).get('pixel_change_threshold')
                before = closed_loop.ForcedWrites(arm, threshold).attach(memory).before_step
            logs = closed_loop.rollouts(backbone, memory, block['variant'], seeds, engine,
                                        before, progress=False)
            replayed = [[int(log.success), [t for t, w in enumerate(log.wrote) if w]]
                        for log in logs]
            assert replayed == block['arms'][arm]['per_episode'][:episodes], (key, arm)
