"""The simulated arm: real-time integration moves like the per-frame step."""
import numpy as np
import pytest

from aura_ros.sim.arm import ArmEnv, ArmTaskConfig


def at_go(seed=3):
    env = ArmEnv(ArmTaskConfig())
    env.reset(seed)
    while not env.unlocked:
        env.step(None)
    return env


def test_integrating_one_frame_at_the_physics_rate_equals_one_frame_step():
    a, b = at_go(), at_go()
    start = a.q.copy()
    command = a.q + np.array([0.5, -0.05, 0.02])      # one joint beyond the speed limit
    a.step(command)
    for _ in range(50):                               # 50 physics ticks of 1/1500 s = 1/30 s
        b.integrate(command, 1 / 1500, frame_rate=30.0)
    np.testing.assert_allclose(b.q, a.q, atol=1e-12)
    np.testing.assert_allclose(a.q - start, [a.config.max_joint_speed, -0.05, 0.02])


def test_integration_ignores_commands_before_go_and_invalid_ones():
    env = ArmEnv(ArmTaskConfig())
    env.reset(0)
    q0 = env.q.copy()
    env.integrate(q0 + 1.0, 0.1, 30.0)                   # before go: ignored
    np.testing.assert_array_equal(env.q, q0)
    env = at_go()
    q0 = env.q.copy()
    for bad in ([np.nan, 0, 0], [0.0, 1.0], None):
        env.integrate(bad, 0.1, 30.0)
    np.testing.assert_array_equal(env.q, q0)


def test_expert_plan_is_what_the_expert_does_when_it_drives():
    """The chunk label: the expert's next actions when it drives from here, holding before go
    (planned 3 frames before go, then after go)."""
    env = ArmEnv(ArmTaskConfig(variant='memory'))
    env.reset(3)
    while env.t < env.go_step - 3:
        env.step(None)
    for before_go in (True, False):
        plan = env.expert_plan(8)
        probe = ArmEnv(env.config)
        probe.reset(3)
        probe.q, probe.t = env.q.copy(), env.t
        driven = []
        for _ in range(8):
            driven.append(probe.expert_action())
            probe._track(probe.q + driven[-1], probe.config.max_joint_speed)
            probe.t += 1
        np.testing.assert_allclose(plan, np.array(driven), atol=1e-12)
        np.testing.assert_allclose(plan[0], env.expert_action())
        assert np.allclose(plan[:3], 0) == before_go and np.abs(plan[3:]).max() > 0
        for _ in range(5):
            env.step(env.q + env.expert_action())


def kinds_of(env, seed):
    env.reset(seed)
    return [env.episode.frame_kind(t) for t in range(env.go_step + 1)]


def test_task_v2_cue_onset_is_random_and_never_on_the_first_frames():
    """The test that fails if the cue were again always at the start: over 300 seeds the
    onset spreads over frames 2 .. go // 2, and frames 0-1 are never a cue."""
    env = ArmEnv(ArmTaskConfig(variant='memory'))
    onsets, gos = [], []
    for seed in range(300):
        env.reset(seed)
        (onset, pad, kind), = env.episode.cues
        assert kind == 'cue_onset' and pad == env.episode.target
        assert 2 <= onset <= env.go_step // 2
        onsets.append(onset)
        gos.append(env.go_step)
        kinds = kinds_of(env, seed)
        assert kinds[0] in ('pre_cue', 'distractor') and kinds[1] in ('pre_cue', 'distractor')
    assert len(set(onsets)) >= 10 and min(onsets) == 2 and max(onsets) >= 14
    assert min(gos) == 18 and max(gos) == 30


@pytest.mark.slow
def test_frame_kinds_follow_the_schedule_and_the_image():
    """Every frame's kind matches what is drawn: a white ring exactly on cue frames, a yellow
    one exactly on distractor frames, never on the pad cued so far; go once the lamp is
    green."""
    from aura_ros.sim.arm import FRAME_KINDS
    for variant in ('memory', 'memory_switch', 'memory_hard'):
        env = ArmEnv(ArmTaskConfig(variant=variant))
        for seed in range(40):
            env.reset(seed)
            while not env.done:
                kind = env.frame_kind
                assert kind in FRAME_KINDS
                rings, lamp, shown = env.marks()
                white = [p for p, c in rings.items() if c == (255, 255, 255)]
                yellow = [p for p, c in rings.items() if c == (255, 230, 0)]
                cue = kind in ('cue_onset', 'cue_continued', 'switch_cue', 'reshown_cue')
                assert bool(white) == cue and bool(yellow) == (kind == 'distractor')
                if yellow:
                    cued = env.episode.cued_target(env.t)
                    assert yellow[0] != (cued if cued >= 0 else env.episode.cues[0][1])
                assert (kind == 'go') == env.unlocked
                env.step(env.q + env.expert_action())


def test_switch_variant_places_a_switch_then_a_repeat_and_the_target_follows():
    env = ArmEnv(ArmTaskConfig(variant='memory_switch'))
    for seed in range(200):
        env.reset(seed)
        (c1, a, k1), (c2, b, k2), (c3, b2, k3) = env.episode.cues
        assert (k1, k2, k3) == ('cue_onset', 'switch_cue', 'reshown_cue')
        assert a != b and b2 == b and env.episode.target == b
        cue = env.config.cue_steps
        assert c1 + cue < c2 and c2 + cue < c3 and c3 + cue <= env.go_step
        kinds = kinds_of(env, seed)
        assert kinds.count('switch_cue') == 1 and kinds.count('reshown_cue') == 1
        assert kinds.count('cue_continued') == 3 * (cue - 1)
        assert env.episode.cued_target(c2 - 1) == a and env.episode.cued_target(c2) == b


def test_the_expert_succeeds_on_every_variant():
    for variant in ('memory', 'memory_switch', 'memory_hard', 'visible', 'colour'):
        env = ArmEnv(ArmTaskConfig(variant=variant))
        wins = 0
        for seed in range(20):
            env.reset(seed)
            while not env.done:
                env.step(env.q + env.expert_action())
            wins += env.success
        assert wins == 20, variant


def test_the_earlier_task_is_kept_for_the_real_time_benchmark():
    env = ArmEnv(ArmTaskConfig(cue_onset='first'))
    for seed in range(20):
        env.reset(seed)
        assert env.episode.cues == ((0, env.episode.target, 'cue_onset'),)
        assert 3 + 10 <= env.go_step <= 3 + 19 and min(env.episode.distractors, default=3) >= 3
