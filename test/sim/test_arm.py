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
