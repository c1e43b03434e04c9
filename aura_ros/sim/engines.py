"""The simulated arms by name (no rclpy): ``planar`` (aura_ros.sim.arm: 3 joints drawn from
above with numpy) and ``mujoco`` (aura_ros.sim.mujoco_arm: the SO-101's 5 joints in MuJoCo with
a perspective camera; imported only when asked, so the planar arm needs no GL)."""
from aura_ros.sim.arm import ArmEnv, ArmTaskConfig

ENGINES = ('planar', 'mujoco')


def make_env(engine='planar', config: ArmTaskConfig = None) -> ArmEnv:
    """The arm ``engine`` with the task ``config``; its ``joint_names``, ``lower`` and
    ``upper`` say what it takes."""
    if engine == 'mujoco':
        from aura_ros.sim.mujoco_arm import MujocoArmEnv
        return MujocoArmEnv(config)
    if engine != 'planar':
        raise ValueError(f'engine must be one of {ENGINES}, got {engine!r}')
    return ArmEnv(config)


def joint_count(engine='planar'):
    """Joints the arm ``engine`` takes, without building it."""
    if engine == 'mujoco':
        from aura_ros.sim.mujoco_arm import ARM_JOINTS
        return len(ARM_JOINTS)
    if engine != 'planar':
        raise ValueError(f'engine must be one of {ENGINES}, got {engine!r}')
    from aura_ros.sim.arm import HOME
    return len(HOME)
