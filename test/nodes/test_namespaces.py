"""Two arms side by side in namespaces (left, right): each sim + perception + policy + gate
recorder runs as separate processes over DDS with the package's relative topic names, each
policy commands only its own arm (no crosstalk), each bag holds every gate event its policy
sent (by sequence number: the recorder subscribes at start, the policy's events are
transient-local), and a clean run logs no ERROR or WARN."""
import pytest
import yaml

from aura_ros.tools.bag_report import read_bag
from aura_ros.tools.demo import run_arms
from conftest import REPO

pytestmark = pytest.mark.ros


@pytest.mark.slow
def test_two_namespaced_arms_each_drive_their_own_sim(tmp_path):
    # In lockstep each frame waits for the last command: with both arms and other tests on
    # 2 cores a step can take longer than the 0.5 s frame watchdog, whose hold is a correct
    # WARN but not what this test is about (test_faults.py tests the watchdog).
    params = yaml.safe_load((REPO / 'config' / 'default.yaml').read_text())
    params['/**/policy_node']['ros__parameters']['frame_timeout'] = 5.0
    (tmp_path / 'arms.yaml').write_text(yaml.safe_dump(params))
    ok, results, bags = run_arms(['left', 'right'], episodes=1, out=tmp_path, timeout=300,
                                 verbose=False, params=str(tmp_path / 'arms.yaml'))
    assert ok, sorted(p.name for p in tmp_path.glob('*.log'))
    noisy = [(log.name, line) for log in sorted(tmp_path.glob('*.log'))
             for line in log.read_text().splitlines() if '[ERROR]' in line or '[WARN]' in line]
    assert noisy == []
    (left, left_steps, _), = results['left']
    (right, right_steps, _), = results['right']
    # each watcher heard its own sim (arm i is seeded 1000 + 1000 i) and nothing else
    assert (left.seed, right.seed) == (1000, 2000)
    # lockstep: one memory step per sim step; a policy answering both arms would double it
    assert left_steps == left.steps > 0 and right_steps == right.steps > 0
    for ns, result in (('left', left), ('right', right)):
        contents = read_bag(bags[ns])                 # the recorder saw only its arm's topics
        commands = f'/{ns}/aura/joint_commands'
        assert set(contents.topics) >= {f'/{ns}/aura/gate_events', f'/{ns}/sim/episode_result',
                                        commands}
        assert all(t.startswith(f'/{ns}/') for t in contents.topics), contents.topics
        assert len(contents.gate) == result.steps, ns
        # nothing lost: the policy's sequence numbers run 1 .. steps without a gap
        assert sorted(r.sequence for r in contents.gate) == list(range(1, result.steps + 1))
        # its own policy commanded its own arm: one command per memory step (sync execution)
        # plus the hold when the sim disarms it at the end (recorded unless the launch is shut
        # down first), so a policy that also answered the other arm's frames would double it
        n_commands = contents.topics[commands][1]
        assert result.steps <= n_commands <= result.steps + 1, (ns, n_commands, result.steps)
        # the shipped parameter file reached the namespaced policy: its memory is loaded
        assert {r.state_bytes for r in contents.gate} == {4224}, ns
