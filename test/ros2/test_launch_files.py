"""Every launch file of the package under launch_pytest, with the upstream launch and
launch_ros, asserting behaviour: episodes succeed, the memory writes on cue frames and not on
every frame, every command keeps the limits and the command rule, each arm of two stays on its
own topics, every process exits cleanly and logs no ERROR or WARN.

Each test was checked to fail on a mutant (bench/notes.md, issue 29): the joint-limit clip
removed, the gate threshold forced closed, the namespaces dropped.
"""
import os

import numpy as np
import pytest
from probe import HOW, Probe

launch_pytest = pytest.importorskip('launch_pytest', reason=HOW)
launch = pytest.importorskip('launch', reason=HOW)

import yaml  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.actions import IncludeLaunchDescription, RegisterEventHandler  # noqa: E402
from launch.event_handlers import OnProcessExit, OnProcessIO  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch_ros.actions import Node  # noqa: E402

from aura_ros.params import read_params_file  # noqa: E402

pytestmark = pytest.mark.ros
SHARE = get_package_share_directory('aura_ros')
PARAMS = os.path.join(SHARE, 'config', 'default.yaml')


class Watch:
    """Exit codes and output lines of every process a launch starts."""

    def __init__(self):
        self.exits, self.lines = [], []      # (executable name, return code), (name, line)

    def actions(self):
        def on_exit(event, context):
            self.exits.append((event.action.name.rsplit('-', 1)[0], event.returncode))

        def on_io(event):
            self.lines += [(event.action.name, line) for line in
                           event.text.decode(errors='replace').splitlines()]
        return [RegisterEventHandler(OnProcessExit(on_exit=on_exit)),
                RegisterEventHandler(OnProcessIO(on_stdout=on_io, on_stderr=on_io))]

    def wait_exits(self, name, count=1, timeout=120.0):
        """Wait until ``count`` processes of executable ``name`` ended by themselves (the
        launch's own shutdown, not the test's, ends the rest)."""
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(n == name for n, _ in self.exits) >= count:
                return True
            time.sleep(0.05)
        return False

    def check_clean(self, expected):
        assert {name for name, _ in self.exits} >= set(expected), (self.exits, expected)
        assert all(code == 0 for _, code in self.exits), self.exits
        noisy = [(name, line) for name, line in self.lines
                 if '[ERROR]' in line or '[WARN]' in line]
        assert noisy == [], noisy[:5]


def include(name, **arguments):
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(SHARE, 'launch', name)),
        launch_arguments={k: str(v) for k, v in arguments.items()}.items())


def limits_of(params):
    values, _ = read_params_file(params, 'policy_node')
    return (np.array(values['command.lower_limits']), np.array(values['command.upper_limits']),
            values['command.max_delta'])


# ---- sim_demo.launch.py --------------------------------------------------------------------
WATCH = {}


@launch_pytest.fixture
def sim_demo(tmp_path):
    WATCH['sim_demo'] = watch = Watch()
    return launch.LaunchDescription([*watch.actions(),
                                     include('sim_demo.launch.py', episodes=3,
                                             bag=tmp_path / 'bag'),
                                     launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=sim_demo)
def test_sim_demo_succeeds_writes_on_cues_keeps_the_rule_and_exits_cleanly(ros_context):
    probe = Probe(ros_context, 'sim_demo_probe')
    try:
        assert probe.wait(lambda: len(probe.results) >= 3, 240), 'episodes did not end'
        lower, upper, max_delta = limits_of(PARAMS)
        assert sum(r.success for r in probe.results) >= 2          # task v2, shipped memory
        assert all(r.commands > 0 for r in probe.results)
        kinds = probe.writes_by_kind()
        writes = sum(w for w, _ in kinds.values())
        steps = sum(n for _, n in kinds.values())
        news = sum(kinds.get(k, (0, 0))[0] for k in ('cue_onset', 'switch_cue'))
        assert steps >= 30 and 1 <= writes <= 0.3 * steps, kinds   # selective, not silent
        assert news >= 1 and writes - news <= 1, kinds              # on cue frames
        assert probe.command_rule_violations(lower, upper, max_delta) == []
        assert len(probe.commands) >= 30
        assert WATCH['sim_demo'].wait_exits('sim_arm_node')     # the launch ends by itself
    finally:
        probe.close()
    yield
    WATCH['sim_demo'].check_clean({'sim_arm_node', 'policy_node', 'perception_node',
                                   'gate_recorder'})


# ---- two_arms.launch.py --------------------------------------------------------------------
@launch_pytest.fixture
def two_arms(tmp_path):
    WATCH['two_arms'] = watch = Watch()
    return launch.LaunchDescription([*watch.actions(),
                                     include('two_arms.launch.py', episodes=1,
                                             bag=tmp_path / 'bag'),
                                     launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=two_arms)
def test_two_arms_each_policy_drives_only_its_own_arm(ros_context):
    left, right = Probe(ros_context, 'left_probe', 'left'), Probe(ros_context, 'right_probe',
                                                                   'right')
    root = Probe(ros_context, 'root_probe')
    try:
        assert left.wait(lambda: left.results and right.results, 240)
        (lr,), (rr,) = left.results, right.results
        assert (lr.seed, rr.seed) == (1000, 2000)              # each arm its own sim
        for probe, result in ((left, lr), (right, rr)):
            # lockstep: one gate event per step of its own sim (a policy answering both arms,
            # or one arm answered by both policies, would double it)
            assert len(probe.events) == result.steps == result.commands, (
                len(probe.events), result.steps, result.commands)
            assert {e.state_bytes for e in probe.events} == {4224}
        assert root.events == [] and root.commands == []       # nothing outside the namespaces
        assert WATCH['two_arms'].wait_exits('sim_arm_node', 2)
    finally:
        for probe in (left, right, root):
            probe.close()
    yield
    WATCH['two_arms'].check_clean({'sim_arm_node', 'policy_node'})


# ---- status_demo.launch.py -----------------------------------------------------------------
@launch_pytest.fixture
def status_demo():
    WATCH['status_demo'] = watch = Watch()
    return launch.LaunchDescription([*watch.actions(), include('status_demo.launch.py'),
                                     launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=status_demo)
def test_status_demo_monitor_prints_the_scripted_events():
    watch = WATCH['status_demo']
    assert watch.wait_exits('gate_monitor') and watch.wait_exits('status_publisher')
    yield
    assert ('gate_monitor', 0) in watch.exits, watch.exits
    printed = [line for name, line in watch.lines
               if name.startswith('gate_monitor') and 'step=' in line]
    assert len(printed) >= 20, watch.lines[-5:]


# ---- aura.launch.py, fed by the simulated camera and arm -----------------------------------
@launch_pytest.fixture
def aura_on_sim(tmp_path):
    """aura.launch.py (perception + policy) with a parameter file whose joint limits bind
    (joint_1 may not go past 1.9 rad: the task's left pads lie beyond it), and the simulated
    arm as the robot, started the way the tests start it."""
    data = yaml.safe_load(open(PARAMS))
    data['/**/policy_node']['ros__parameters']['command']['upper_limits'] = [1.9, 2.6, 2.6]
    params = tmp_path / 'arm.yaml'
    params.write_text(yaml.safe_dump(data))
    WATCH['aura'] = watch = Watch()
    sim = Node(package='aura_ros', executable='sim_arm_node', name='sim_arm_node',
               output='screen', parameters=[{'episodes': 4, 'seed': 4000}])
    return launch.LaunchDescription([*watch.actions(), include('aura.launch.py',
                                                               params_file=params),
                                     sim, launch_pytest.actions.ReadyToTest()]), params


@pytest.mark.launch(fixture=aura_on_sim)
def test_aura_launch_keeps_binding_joint_limits(ros_context, aura_on_sim):
    _, params = aura_on_sim
    probe = Probe(ros_context, 'aura_probe')
    try:
        assert probe.wait(lambda: len(probe.results) >= 4, 240), 'episodes did not end'
        lower, upper, max_delta = limits_of(params)
        commands = np.array([c for c, _ in probe.commands])
        assert len(commands) >= 40 and probe.events
        # the limit was exercised (the policy asked beyond it) and held on every command
        assert np.isclose(commands[:, 0], upper[0]).sum() >= 3
        assert probe.command_rule_violations(lower, upper, max_delta) == []
        assert WATCH['aura'].wait_exits('sim_arm_node')
    finally:
        probe.close()
    yield
    WATCH['aura'].check_clean({'sim_arm_node', 'policy_node', 'perception_node'})
