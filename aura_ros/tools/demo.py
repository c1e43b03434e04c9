"""make demo: the smallest honest end-to-end run of aura_ros over real DDS.

Starts ``gate_monitor`` and ``status_publisher`` as two separate processes (the installed
executables), lets the publisher stream GateEvent/MemoryStatus messages, and prints what the
monitor received. Exits non-zero if nothing arrived.
"""
import argparse
import os
import subprocess
import sys
import time

from aura_ros.tools.processes import executable


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=30, help='gate events to publish')
    args = parser.parse_args(argv)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    monitor = subprocess.Popen([executable('gate_monitor'), '--ros-args', '-p',
                                f'max_events:={args.count}', '-p', 'idle_timeout:=5.0'],
                               env=env, stdout=subprocess.PIPE, text=True)
    publisher = subprocess.run([executable('status_publisher'), '--ros-args',
                                '-p', f'count:={args.count}', '-p', 'period:=0.05',
                                '-p', 'wait_for_subscriber:=20.0'], env=env, timeout=120)
    try:
        out, _ = monitor.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        monitor.terminate()
        out, _ = monitor.communicate()
    print(out, end='')
    received = sum(line.startswith('gate_event') for line in out.splitlines())
    print(f'demo: publisher exit {publisher.returncode}, monitor received {received} gate events')
    return 0 if publisher.returncode == 0 and received > 0 else 1


if __name__ == '__main__':
    t0 = time.monotonic()
    rc = main()
    print(f'demo: finished in {time.monotonic() - t0:.1f} s')
    sys.exit(rc)
