"""make demo: the simulated camera arm driven through the real ROS 2 nodes.

Starts sim_arm_node, perception_node, policy_node (config/default.yaml: the embedded tiny PI0
+ its AURA memory) and gate_recorder as separate processes over DDS (loopback), runs a few
episodes of the memory task (cue, delay with distractors, go), prints each episode's result
and its writes against its steps, records the gate events to a rosbag2 directory and turns it
into a report with PNG plots. Same as ``ros2 launch aura_ros sim_demo.launch.py``.
"""
import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aura_ros.tools.processes import executable


def share_file(*parts):
    from aura_ros.paths import package_share
    return str(Path(package_share('aura_ros'), *parts))


class Watcher:
    """Subscribes to episode results and gate events; prints one line per episode."""

    def __init__(self, verbose=True):
        import rclpy

        from aura_ros.msg import EpisodeResult, GateEvent
        self.verbose = verbose
        self.node = rclpy.create_node('aura_demo')
        self.results, self.steps, self.writes = [], 0, 0
        self.node.create_subscription(GateEvent, '/aura/gate_events', self.on_event, 1000)
        self.node.create_subscription(EpisodeResult, '/sim/episode_result', self.on_result, 10)

    def on_event(self, msg):
        self.steps += 1
        self.writes += int(msg.wrote)

    def on_result(self, msg):
        # gate events of this episode: every step the policy answered before the result
        self.results.append((msg, self.steps, self.writes))
        if self.verbose:
            print(f'episode {msg.episode} (seed {msg.seed}, {msg.variant}): '
                  f"{'SUCCESS' if msg.success else 'failure'} in {msg.steps} steps; "
                  f'{self.writes} memory writes in {self.steps} memory steps '
                  f'(always-write: {self.steps}); target pad {msg.target}, reached '
                  f'{msg.reached}', flush=True)
        self.steps = self.writes = 0


def run_through_nodes(episodes, variant='memory', seed=1000, params=None, out='demo_output',
                      timeout=600.0, verbose=True):
    """Run ``episodes`` sim episodes through the real nodes (separate processes); returns
    (ok, results, bag) with results = [(EpisodeResult, memory steps, writes), ...]."""
    import rclpy
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / 'gate_events_bag'
    if bag.exists():
        import shutil
        shutil.rmtree(bag)
    params = params or share_file('config', 'default.yaml')
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               RCUTILS_LOGGING_BUFFERED_STREAM='0')
    env.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    logs = {}

    def start(name, *ros_args):
        logs[name] = open(out / f'{name}.log', 'w')
        return subprocess.Popen([executable(name), '--ros-args', *ros_args], env=env,
                                stdout=logs[name], stderr=subprocess.STDOUT)

    if verbose:
        print(f'demo: {episodes} episodes of the {variant!r} task, parameters {params}')
    rclpy.init()
    watcher = Watcher(verbose)
    procs = {'policy_node': start('policy_node', '--params-file', params),
             'perception_node': start('perception_node', '--params-file', params),
             'gate_recorder': start('gate_recorder', '-p', f'output:={bag}',
                                    '-p', 'topics:=[/aura/gate_events, /aura/memory_status, '
                                          '/sim/episode_result]')}
    time.sleep(1.0)
    procs['sim_arm_node'] = start('sim_arm_node', '-p', f'episodes:={episodes}',
                                  '-p', f'variant:={variant}', '-p', f'seed:={seed}')
    t0 = time.monotonic()
    ok = True
    try:
        while procs['sim_arm_node'].poll() is None:
            rclpy.spin_once(watcher.node, timeout_sec=0.1)
            if time.monotonic() - t0 > timeout:
                print(f'demo: timed out after {timeout:.0f} s', file=sys.stderr)
                ok = False
                break
            crashed = [n for n, p in procs.items() if p.poll() not in (None, 0)]
            if crashed:
                print(f'demo: {crashed} exited early, see {out}/*.log', file=sys.stderr)
                ok = False
                break
        end = time.monotonic() + 2.0
        while time.monotonic() < end:   # last results and gate events
            rclpy.spin_once(watcher.node, timeout_sec=0.05)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for name, proc in procs.items():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                ok = False
            logs[name].close()
        watcher.node.destroy_node()
        rclpy.try_shutdown()
    if len(watcher.results) != episodes:
        print(f'demo: expected {episodes} episode results, got {len(watcher.results)}',
              file=sys.stderr)
        ok = False
    return ok, watcher.results, bag


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--episodes', type=int, default=5)
    parser.add_argument('--variant', default='memory',
                        choices=['visible', 'memory', 'memory_hard', 'colour'])
    parser.add_argument('--seed', type=int, default=1000)
    parser.add_argument('--params', default=None, help='parameter file (default: the '
                        "package's config/default.yaml)")
    parser.add_argument('--out', default='demo_output', help='bag, report and logs go here')
    parser.add_argument('--timeout', type=float, default=600.0)
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    ok, results, bag = run_through_nodes(args.episodes, args.variant, args.seed, args.params,
                                         args.out, args.timeout)
    successes = sum(r.success for r, _, _ in results)
    writes = sum(w for _, _, w in results)
    steps = sum(s for _, s, _ in results)
    print(f'demo: {successes}/{len(results)} episodes succeeded; {writes} writes in {steps} '
          f'memory steps ({steps / max(writes, 1):.1f}x fewer than always-write)')
    from aura_ros.tools import bag_report
    out = Path(args.out)
    try:
        summary = bag_report.report(bag, out / 'report')
        print(f"demo: recorded {summary['steps']} gate events to {bag}; report and plots in "
              f"{out / 'report'} (gate_activity.png)")
    except bag_report.BagError as exc:
        print(f'demo: {exc}', file=sys.stderr)
        ok = False
    print(f'demo: finished in {time.monotonic() - t0:.1f} s')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
