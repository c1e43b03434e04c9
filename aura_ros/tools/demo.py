"""make demo: the simulated camera arm driven through the real ROS 2 nodes.

Starts sim_arm_node, perception_node, policy_node (config/default.yaml: the embedded tiny PI0
+ its AURA memory) and gate_recorder as separate processes over DDS (loopback), runs a few
episodes of the memory task (task v2: a cue at a random moment among distractor flashes, then
go at a random moment), prints each episode's result
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

from aura_ros import topics
from aura_ros.tools.processes import executable


def share_file(*parts):
    from aura_ros.paths import package_share
    return str(Path(package_share('aura_ros'), *parts))


class Watcher:
    """Subscribes to episode results and gate events; prints one line per episode."""

    def __init__(self, node, namespace='', verbose=True):
        from aura_ros.msg import EpisodeResult, GateEvent
        self.verbose, self.namespace = verbose, namespace
        self.results, self.steps, self.writes = [], 0, 0
        self.unscored = 0          # results of episodes no policy command reached
        prefix = f'/{namespace}/' if namespace else '/'
        node.create_subscription(GateEvent, prefix + topics.GATE_EVENTS, self.on_event, 1000)
        node.create_subscription(EpisodeResult, prefix + topics.EPISODE_RESULT, self.on_result,
                                 10)

    def on_event(self, msg):
        if self.steps == 0 and msg.step > 1 and self.results:
            # the sim resets the memory before each episode (steps restart at 1), so a step
            # that continues a count after a result is the previous episode's last event,
            # delivered after its result (two topics from two processes are not ordered)
            result, steps, writes = self.results[-1]
            self.results[-1] = (result, steps + 1, writes + int(msg.wrote))
            return
        self.steps += 1
        self.writes += int(msg.wrote)

    def on_result(self, msg):
        if not msg.commands:   # no policy drove it (the sim says so): not a policy result
            self.unscored += 1
            if self.verbose:
                print(f'episode {msg.episode}: no policy command received, not counted',
                      flush=True)
            self.steps = self.writes = 0
            return
        # gate events of this episode: every step the policy answered before the result
        self.results.append((msg, self.steps, self.writes))
        if self.verbose:
            arm = f'{self.namespace}: ' if self.namespace else ''
            print(f'{arm}episode {msg.episode} (seed {msg.seed}, {msg.variant}): '
                  f"{'SUCCESS' if msg.success else 'failure'} in {msg.steps} steps; "
                  f'{self.writes} memory writes in {self.steps} memory steps '
                  f'(always-write: {self.steps}); target pad {msg.target}, reached '
                  f'{msg.reached}', flush=True)
        self.steps = self.writes = 0


def command_type(params):
    """The joint command message type a parameter file's policy node publishes."""
    from aura_ros.params import read_params_file
    values, _ = read_params_file(params, 'policy_node')
    return ('std_msgs/msg/Float64MultiArray'
            if values.get('command.type') == 'float64_multi_array'
            else 'trajectory_msgs/msg/JointTrajectory')


def run_through_nodes(episodes, variant='memory', seed=1000, params=None, out='demo_output',
                      timeout=600.0, verbose=True, lockstep=True):
    """Run ``episodes`` sim episodes through the real nodes (separate processes); returns
    (ok, results, bag) with results = [(EpisodeResult, memory steps, writes), ...].
    ``lockstep=False``: the sim in real time (frames at 30 fps whatever the policy does)."""
    ok, results, bags = run_arms([''], episodes, variant, seed, params, out, timeout, verbose,
                                 lockstep)
    return ok, results[''], bags['']


def run_arms(namespaces, episodes, variant='memory', seed=1000, params=None, out='demo_output',
             timeout=600.0, verbose=True, lockstep=True):
    """One simulated arm + perception + policy + gate recorder per namespace ('' = none), all
    at once, each arm seeded differently (arm i: seed + 1000 i). Returns (ok, {ns: results},
    {ns: bag})."""
    import rclpy
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = params or share_file('config', 'default.yaml')
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               RCUTILS_LOGGING_BUFFERED_STREAM='0')
    env.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    logs, procs, bags = {}, {}, {}

    def start(ns, name, *ros_args):
        key = f'{ns}.{name}' if ns else name
        logs[key] = open(out / f'{key}.log', 'w')
        remap = ['-r', f'__ns:=/{ns}'] if ns else []
        procs[key] = subprocess.Popen([executable(name), '--ros-args', *remap, *ros_args],
                                      env=env, stdout=logs[key], stderr=subprocess.STDOUT)
        return procs[key]

    if verbose:
        print(f'demo: {episodes} episodes of the {variant!r} task, parameters {params}')
    rclpy.init()
    node = rclpy.create_node('aura_demo')
    watchers = {ns: Watcher(node, ns, verbose) for ns in namespaces}
    for ns in namespaces:
        bags[ns] = out / (f'{ns}_gate_events_bag' if ns else 'gate_events_bag')
        if bags[ns].exists():
            import shutil
            shutil.rmtree(bags[ns])
        start(ns, 'policy_node', '--params-file', params)
        start(ns, 'perception_node', '--params-file', params)
        start(ns, 'gate_recorder', '-p', f'output:={bags[ns]}', '-p',
              f'topics:=[{topics.GATE_EVENTS}, {topics.MEMORY_STATUS}, {topics.EPISODE_RESULT}, '
              f'{topics.FRAME_TRUTH}, {topics.CAMERA}, {topics.JOINT_STATES}, '
              f'"{topics.JOINT_COMMANDS}:{command_type(params)}"]')   # all the Foxglove layout

    time.sleep(1.0)
    sims = [start(ns, 'sim_arm_node', '--params-file', params, '-p', f'episodes:={episodes}',
                  '-p', f'variant:={variant}', '-p', f'seed:={seed + 1000 * i}',
                  '-p', f'lockstep:={str(bool(lockstep)).lower()}')
            for i, ns in enumerate(namespaces)]     # the file may choose the engine
    t0 = time.monotonic()
    ok = True
    try:
        while any(sim.poll() is None for sim in sims):
            rclpy.spin_once(node, timeout_sec=0.1)
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
            rclpy.spin_once(node, timeout_sec=0.05)
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
        node.destroy_node()
        rclpy.try_shutdown()
    for ns, watcher in watchers.items():
        if len(watcher.results) != episodes:
            print(f'demo: {ns or "arm"}: expected {episodes} episode results, got '
                  f'{len(watcher.results)}', file=sys.stderr)
            ok = False
    return ok, {ns: w.results for ns, w in watchers.items()}, bags


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--episodes', type=int, default=5)
    parser.add_argument('--variant', default='memory',
                        choices=['visible', 'memory', 'memory_switch', 'memory_hard', 'colour'])
    parser.add_argument('--seed', type=int, default=1000)
    parser.add_argument('--params', default=None, help='parameter file (default: the '
                        "package's config/default.yaml)")
    parser.add_argument('--out', default='demo_output', help='bag, report and logs go here')
    parser.add_argument('--timeout', type=float, default=600.0)
    parser.add_argument('--realtime', action='store_true', help='the sim in real time (30 fps '
                        'whatever the policy does) instead of lockstep')
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    ok, results, bag = run_through_nodes(args.episodes, args.variant, args.seed, args.params,
                                         args.out, args.timeout, lockstep=not args.realtime)
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
