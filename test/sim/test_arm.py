"""The simulated arm: real-time integration moves like the per-frame step."""
import numpy as np

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
