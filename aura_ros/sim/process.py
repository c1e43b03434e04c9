"""The real-time simulated arm in a process of its own (no ROS, no torch), as a robot is to
its policy: the benchmark's policy process shares no interpreter lock with the physics.

    parent                                   child (``python -m aura_ros.sim.process``)
    episode(seed, ready, on_frame)  --E seed-->  env.reset(seed)
    ready(q) runs (policy.reset)    <--R q----
                                    --G------>   RealtimeArm.run: physics, samples, frames
    on_frame(frame, q, t)           <--F t q frame--   (camera, 30 Hz)
    set_command(q) (shared memory)  ---------->  read by every physics step (500 Hz)
    positions() (shared memory)     <----------  written by every joint sample (100 Hz)
    returns (success, samples)      <--D success overruns physics-steps samples--

The arm is ``engine``'s (aura_ros.sim.engines: the planar arm or the SO-101 in MuJoCo, which
renders in the child). The child is a fresh interpreter (``subprocess``, not
``multiprocessing``: no re-import of the caller's main module, no forked threads). Messages go
over a socket pair as length-prefixed raw bytes (a tag, float64 fields, the uint8 frame), never
pickles. Command and positions live in an anonymous shared mapping (``memfd``), each behind a
sequence counter with one writer (the parent's writes go through one lock): the reader retries
while a write is in progress or happened during its copy, and after ``_Shared.RETRIES`` tries
returns the last consistent values it read (a writer preempted mid-write never stalls the
reader, which may be the SCHED_FIFO control thread). The counters rely on stores becoming
visible in program order (x86-64); on a weaker memory model (ARM64) a torn read is possible in
principle: a mix of two consecutive commands or samples, each float whole. This is a benchmark
harness: a robot's commands go over ROS. Times are ``time.monotonic()``, the same clock in both
processes on Linux (CLOCK_MONOTONIC). The child ignores SIGINT (the parent ends it) and exits
when the parent closes the socket or dies (end of file, broken pipe).
"""
import argparse
import json
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

import numpy as np

from aura_ros.sim.engines import joint_count, make_env
from aura_ros.sim.realtime import RealtimeArm, RealtimeTask

_CMD = 0


def _layout(J):
    """Shared float64 slots for J joints: [command seq, command valid, command (J), positions
    seq, positions (J)] -> (positions offset, number of slots)."""
    return J + 2, 2 * J + 3


def cpu_seconds(stat_path):
    """CPU seconds (user + system) of the process or thread whose /proc ``stat`` file this
    is; 0 when it is gone."""
    try:
        with open(stat_path) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _f64(values):
    return np.asarray(values, np.float64).tobytes()


class _Shared:
    """The shared float64 slots, with single-writer sequence counters (one writer per slot:
    callers serialise their own writes)."""
    RETRIES = 1000

    def __init__(self, fd, slots):
        self.map = mmap.mmap(fd, 8 * slots)
        self.a = np.frombuffer(self.map, np.float64)
        self.last = {}                        # slot -> the last consistent values read

    def write(self, at, values):
        a = self.a
        seq = a[at]
        a[at] = seq + 1.0                     # odd: a write is in progress
        a[at + 1:at + 1 + len(values)] = values
        a[at] = seq + 2.0

    def read(self, at, n):
        """The slot's values; after RETRIES inconsistent copies, the last consistent ones
        (None if there were none)."""
        a = self.a
        for _ in range(self.RETRIES):
            seq = a[at]
            values = a[at + 1:at + 1 + n].copy()
            if seq % 2 == 0 and a[at] == seq:
                self.last[at] = values
                return values
        return self.last.get(at)

    def close(self):
        if self.a is not None:
            self.a = None
            self.map.close()


def _serve(conn, shared, task_fields, physics_rate, joint_state_rate, engine):
    """The child: run episodes on request until the socket closes."""
    task = RealtimeTask(**{k: tuple(v) if isinstance(v, list) else v
                           for k, v in task_fields.items()})
    env = make_env(engine, task.arm_config())
    pos, _ = _layout(env.n_joints)
    arm = RealtimeArm(env, physics_rate, joint_state_rate, task.frame_rate)
    try:
        _episodes(conn, shared, env, arm, pos)
    finally:
        if hasattr(env, 'close'):        # the MuJoCo renderer's GL context
            env.close()


def _episodes(conn, shared, env, arm, pos):
    J = env.n_joints
    never = threading.Event()

    def read_command():
        values = shared.read(_CMD, J + 1)
        return values[1:] if values is not None and values[0] else None

    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):           # the parent closed the socket or died
            return
        if msg[:1] != b'E':
            return
        seed = struct.unpack('<q', msg[1:9])[0]
        frame = env.reset(seed)
        shared.write(pos, env.q)
        conn.send_bytes(b'R' + _f64(env.q))
        if conn.recv_bytes()[:1] != b'G':
            return
        log_t, log_x = [], []

        def on_joints(q, t, log_t=log_t, log_x=log_x):     # this episode's lists
            shared.write(pos, q)
            log_t.append(t)
            log_x.append(q.copy())

        def on_frame(image, t):
            conn.send_bytes(b'F' + _f64([t]) + _f64(env.q) + np.ascontiguousarray(
                image, np.uint8).tobytes())

        overruns = arm.overruns
        steps = getattr(env, 'physics_steps', 0)
        arm.run(frame, read_command, on_frame, on_joints, never)
        conn.send_bytes(b'D' + struct.pack('<?qqq', bool(env.success), arm.overruns - overruns,
                                           getattr(env, 'physics_steps', 0) - steps,
                                           len(log_t))
                        + _f64(log_t) + _f64(np.reshape(log_x, (-1, J))))


class SimProcess:
    """``RealtimeArm`` episodes of ``task`` on the arm ``engine`` in a child process."""

    def __init__(self, task: RealtimeTask, physics_rate=500.0, joint_state_rate=100.0,
                 timeout=10.0, engine='planar'):
        """``timeout``: seconds without a message from the child that end an episode with an
        error (a hung or dead child never blocks the caller for good)."""
        self.task = task
        self.J = J = joint_count(engine)
        self._pos, slots = _layout(J)
        self.size = task.arm_config().image_size
        self.timeout = float(timeout)
        self._write_lock = threading.Lock()      # the parent's writers: one at a time
        mine, theirs = socket.socketpair()
        memfd = os.memfd_create('aura-sim')
        try:
            os.ftruncate(memfd, 8 * slots)
            fields = {k: getattr(task, k) for k in task.__dataclass_fields__}
            self.proc = subprocess.Popen(
                [sys.executable, '-m', 'aura_ros.sim.process', '--socket-fd',
                 str(theirs.fileno()), '--shared-fd', str(memfd), '--task', json.dumps(fields),
                 '--physics-rate', str(physics_rate),
                 '--joint-state-rate', str(joint_state_rate), '--engine', engine],
                pass_fds=(theirs.fileno(), memfd), stdin=subprocess.DEVNULL)
            self._shared = _Shared(memfd, slots)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
            os.close(memfd)
        self._sock = mine                        # kept for shutdown() in close()
        self._conn = Connection(os.dup(mine.fileno()))
        self.overruns = 0
        self.physics_steps = 0                   # the engine's own steps (MuJoCo), if it counts
        self.episode_s = 0.0                     # wall time of the episodes run
        self._reset_once = False

    # ---- shared state ----------------------------------------------------------------------
    def set_command(self, q):
        """The newest joint command (None: no command, the arm stays where it is)."""
        values = (np.zeros(self.J + 1) if q is None
                  else np.concatenate([[1.0], np.asarray(q, np.float64)]))
        with self._write_lock:
            self._shared.write(_CMD, values)

    def positions(self):
        """The newest joint sample (None before the first episode's reset)."""
        return self._shared.read(self._pos, self.J) if self._reset_once else None

    def cpu_s(self):
        """CPU seconds (user + system) the child has used."""
        return cpu_seconds(f'/proc/{self.proc.pid}/stat')

    # ---- one episode ---------------------------------------------------------------------------
    def episode(self, seed, ready, on_frame):
        """Run episode ``seed`` in real time. ``ready(q)`` runs after the reset and before the
        clock starts (reset the policy there); ``on_frame(frame, q, t)`` for every camera
        frame, in this thread. Returns (success, sample times (N,), joint samples (N, J))."""
        self.set_command(None)
        self._conn.send_bytes(b'E' + struct.pack('<q', int(seed)))
        msg = self._recv()
        if msg[:1] != b'R':
            raise RuntimeError(f'sim process: expected ready, got {msg[:1]!r}')
        self._reset_once = True
        ready(np.frombuffer(msg[1:], np.float64).copy())
        self._conn.send_bytes(b'G')
        frame_bytes = self.size * self.size * 3
        J = self.J
        while True:
            msg = self._recv()
            tag = msg[:1]
            if tag == b'F':
                t = np.frombuffer(msg, np.float64, 1, 1)[0]
                q = np.frombuffer(msg, np.float64, J, 9).copy()
                frame = np.frombuffer(msg, np.uint8, frame_bytes, 9 + 8 * J).reshape(
                    self.size, self.size, 3).copy()
                on_frame(frame, q, float(t))
            elif tag == b'D':
                success, overruns, steps, n = struct.unpack('<?qqq', msg[1:26])
                self.overruns += overruns
                times = np.frombuffer(msg, np.float64, n, 26).copy()
                samples = np.frombuffer(msg, np.float64, n * J, 26 + 8 * n).reshape(n, J).copy()
                self.physics_steps += steps
                if n > 1:
                    self.episode_s += times[-1] - times[0]
                return bool(success), times, samples
            else:
                raise RuntimeError(f'sim process: unexpected message {tag!r}')

    def _recv(self):
        try:
            if not self._conn.poll(self.timeout):
                raise RuntimeError(f'sim process sent nothing for {self.timeout} s '
                                   f'(exit code {self.proc.poll()})')
            return self._conn.recv_bytes()
        except (EOFError, OSError) as exc:
            raise RuntimeError(f'sim process exited (code {self.proc.poll()})') from exc

    def close(self, timeout=2.0):
        """End the child (it exits on the closed socket; killed if it does not). Idempotent."""
        if not self._conn.closed:
            try:                  # wakes a thread waiting in episode(); the child sees EOF
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._conn.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
        self._shared.close()


def main(argv=None):
    p = argparse.ArgumentParser(description='the real-time arm for SimProcess (not for users)')
    p.add_argument('--socket-fd', type=int, required=True)
    p.add_argument('--shared-fd', type=int, required=True)
    p.add_argument('--task', required=True, help='RealtimeTask fields as JSON')
    p.add_argument('--physics-rate', type=float, default=500.0)
    p.add_argument('--joint-state-rate', type=float, default=100.0)
    p.add_argument('--engine', default='planar')
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C goes to the parent, which ends us
    shared = _Shared(args.shared_fd, _layout(joint_count(args.engine))[1])
    os.close(args.shared_fd)
    try:
        _serve(Connection(args.socket_fd), shared, json.loads(args.task), args.physics_rate,
               args.joint_state_rate, args.engine)
    except (BrokenPipeError, ConnectionResetError):  # the parent went away mid-episode
        pass


if __name__ == '__main__':
    main()
