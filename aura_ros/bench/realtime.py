"""Real-time control under inference latency: synchronous vs asynchronous execution.

    python -m aura_ros.bench realtime --json bench/results/realtime.json \\
        --plot bench/results/realtime.png [--episodes 100] [--cache-dir DIR] \\
        [--modes sync,async_blend,...] [--open-loop-steps N]

The simulated arm runs on the wall clock in a process of its own (``aura_ros.sim.process``,
the loop ``sim_arm_node`` runs with ``lockstep: false``; ``--sim-thread``: in a thread of the
policy's process, sharing its interpreter lock, the setup of the first runs): physics at
500 Hz, joint-state samples at 100 Hz, camera frames at 30 Hz. The policy is driven by the
same objects as the policy node:
``PolicyRunner`` and, in asynchronous execution, ``AsyncPolicy`` (inference worker + control
loop). No DDS: the benchmark measures execution, not transport (the node tests and
``bench latency`` cover the wire).

Task, in seconds (``RealtimeTask``, memory variant): cue 0.5 s, then a delay of 0.5-1.0 s with
distractor flashes (0.3 per frame), then the go lamp; success = reaching the cued pad and
dwelling 0.1 s on it within 2.0 s of go. The cue lasts longer than the slowest inference
period (400 ms injected + the backbone's own ~10 ms + up to one frame, 33 ms), so every
setting processes at least one cue frame: a miss is the policy's, not the clock's.

Policy: ``config/realtime.yaml``, the tiny PI0 trained with 32-action chunks (1.07 s at 30 Hz;
a chunk must outlast the slowest latency plus one inference period, 0.82 s, or the arm stops
between chunks), sampled deterministically (``noise_scale: 0``), and its AURA chunk memory
(one step per processed observation; it corrects all 32 actions of the chunk) trained on this
task in seconds with observations every 1, 3, 6 or 12 frames. Latency is injected with
``backbone.delay_ms`` (``DelayedBackbone``: every observation encoded waits that long).

Modes:
- ``sync``: one processed frame -> one ``PolicyRunner.step`` (a new chunk every frame for a
  chunk memory, else every ``steps_per_chunk`` frames; one memory step per frame) -> one
  command, sent when the step ends; frames that arrive meanwhile are replaced by the newest
  (``SyncExecution``, what the node runs for ``execution: sync``). Its command period is its
  inference period.
- ``async_latest`` / ``async_temporal_ensemble`` / ``async_blend``: ``AsyncPolicy`` at
  ``control_rate`` (100 Hz), chunks executed by time with latency compensation, one memory step
  per processed frame, each chunk-transition mode. The control thread runs under SCHED_FIFO
  (``control_priority`` 50, as the robot parameter files set it; ``--control-priority 0``: the
  normal scheduler, under which a waking control thread waits up to the kernel's slice, a few
  ms, for a core that inference keeps busy). Each point records the scheduler it got.
- The peers' handovers, for comparison, on the same episodes, latencies and measures (the
  same ``AsyncPolicy``, control thread and limits; only the chunk transition differs, and with
  it which frames are inferred, so the memory takes its one step per processed frame at the
  peer's request rate; ``control/chunks.py`` documents each with the peer's source):
  ``async_lerobot_weighted`` (transition ``lerobot_weighted``): LeRobot async inference with
  its default aggregate, ``weighted_average`` (``RobotClient._aggregate_action_queues``):
  where the queue and the new chunk hold the same timestep, 0.3 x queue + 0.7 x new; the new
  chunk's past actions dropped; a frame inferred only while at most half a chunk is left
  (``chunk_size_threshold`` 0.5). LeRobot's ``latest_only`` is ``async_latest``'s handover
  (it differs in when chunks are asked for, not in how they meet).
  ``open_loop_chunk`` (transition ``open_loop``): openpi's client (``ActionChunkBroker``): the
  chunk runs from its arrival, action 0 first (the whole chunk, or its first
  ``--open-loop-steps``), then the arm holds its last command while the next chunk is
  inferred from the newest frame (openpi's synchronous client blocks in inference); no
  overlap, no blending, no latency compensation. Its holds are the mode, so its command rate
  and period jitter are not held to the control-rate targets, and its command jerk spans each
  hold's gap (the local period is long there): compare it by ``target_step_*`` (the jump from
  one chunk's last action to the next one's first) and ``arm_jerk_p99``.
  ``targets()['peers']`` compares each with the best of ours per latency (success, Wilson
  intervals) and says which of ours are smoother (requested step and command jerk).

``--variant visible --no-memory`` runs the frozen backbone alone on the task it was trained on
(the target stays visible): a diagnostic that separates the execution machinery from what the
memory contributes.

Per (mode, latency) point, ``episodes`` seeded episodes (the same seeds at every point):
success with a Wilson 95% interval; commands per second while commanding (``control_rate_hz``)
and p99 of |period - nominal| (nominal: 1 / control_rate for async, the frame period for sync),
over all episodes and (``*_steal_free``) over the episodes during which the hypervisor took
no CPU time from this machine (``steal`` in /proc/stat; on the 2-vCPU VM these runs use, a
bare ``time.sleep`` loop at SCHED_FIFO shows p99 lateness of 0.2-0.6 ms while the host takes
nothing and 3-15 ms while it takes 1-2% of the CPU time, so host steal alone can break the
5 ms target; ``steal_share`` says how much there was);
smoothness of the command stream (commands limited to the arm's 4.5 rad/s, ``max_velocity``,
as a robot config would): max and p99 joint step between consecutive commands (rad; the
limit caps it at 4.5 rad/s x 10 ms = 0.045 rad, which every mode reaches while the arm moves
at full speed, so ``target_step_*`` is the same measure on what the chunk executor asked for
before the limits: a transition's jump shows there, and ``targets`` compares modes by it),
p99 jerk (third difference over the local period cubed, rad/s^3; streams at different rates
are not comparable by it, so ``arm_jerk_p99`` is the same measure on the arm's joint samples at
100 Hz, what the robot does whatever the command rate); chunk age at each command
(now - capture time of the frame behind it, ms); writes per episode; CPU share of the sim,
inference and control threads (from /proc/self/task; ``main``: the thread relaying frames
from the sim process). A finished point is kept under
``--cache-dir`` and reused on a rerun with the same settings (resume); the key is (settings,
mode, latency, parameter digest), ``open_loop_steps`` counting for ``open_loop_chunk`` only, so
adding modes leaves the other modes' points valid and ``--modes`` runs just the new ones.
"""
import hashlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from aura_ros.bench.stats import wilson
from aura_ros.control.async_policy import AsyncPolicy
from aura_ros.control.execution import ExecutionConfig, SyncExecution
from aura_ros.sim.process import cpu_seconds
from aura_ros.sim.realtime import RealtimeArm, RealtimeTask

LATENCIES_MS = (0, 50, 100, 200, 400)
MODES = ('sync', 'async_latest', 'async_temporal_ensemble', 'async_blend',
         'async_lerobot_weighted', 'open_loop_chunk')
# the async modes' chunk transitions (control.chunks.TRANSITIONS); sync has none
TRANSITION = {'async_latest': 'latest', 'async_temporal_ensemble': 'temporal_ensemble',
              'async_blend': 'blend', 'async_lerobot_weighted': 'lerobot_weighted',
              'open_loop_chunk': 'open_loop'}
PEER_MODES = ('async_lerobot_weighted', 'open_loop_chunk')   # the peers' handovers
HOLDING_MODES = ('open_loop_chunk',)    # hold while inferring by design: no rate target
EVAL_SEED = 700_000


@dataclass
class RealtimeSettings:
    episodes: int = 100
    control_rate: float = 100.0
    physics_rate: float = 500.0
    joint_state_rate: float = 100.0
    blend_s: float = 0.1
    ensemble_decay: float = 0.0       # 0: equal weights over the overlapping chunks
    max_age_s: float = 1.5            # longer than the slowest inference period
    memory: bool = True               # False: the frozen backbone alone (a diagnostic)
    max_velocity: float = 4.5         # command.max_velocity (rad/s): the sim arm's own limit
    sim_process: bool = True          # the arm in a process of its own (False: a thread here)
    control_priority: int = 50        # SCHED_FIFO priority of the control thread (0: normal)
    task: RealtimeTask = field(default_factory=RealtimeTask)
    engine: str = 'planar'            # the arm (aura_ros.sim.engines); mujoco: the SO-101
    open_loop_steps: int = 0          # open_loop_chunk: actions run per chunk (0: all)

    def key(self, mode, latency_ms, params_digest):
        fields = asdict(self)
        if mode != 'open_loop_chunk':     # the other modes ignore it (cached before it existed)
            del fields['open_loop_steps']
        if fields['task']['cue_onset'] == 'first':   # cached before task v2 existed
            for name in ('cue_onset', 'go_s', 'go_switch_s'):
                del fields['task'][name]
        if fields['engine'] == 'planar':  # cached before engines existed
            del fields['engine']
        if not fields['sim_process']:     # the settings' first runs (cached before they existed)
            del fields['sim_process']
            if fields['control_priority'] == 0:
                del fields['control_priority']
        text = json.dumps([fields, mode, latency_ms, params_digest], sort_keys=True,
                          default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def thread_cpu_s(native_id):
    """CPU seconds (user + system) of one thread of this process."""
    return cpu_seconds(f'/proc/self/task/{native_id}/stat')


def stream_metrics(times, values):
    """Timing and smoothness of one episode's stream of joint vectors (commands or samples):
    periods (s), joint steps (rad, largest joint), jerks (rad/s^3, largest joint)."""
    t, x = np.asarray(times), np.asarray(values)
    if len(t) < 2:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    periods = np.diff(t)
    steps = np.abs(np.diff(x, axis=0)).max(axis=1)
    if len(t) >= 4:
        d3 = np.abs(np.diff(x, n=3, axis=0)).max(axis=1)
        local = (periods[:-2] + periods[1:-1] + periods[2:]) / 3.0
        jerks = d3 / np.maximum(local, 1e-4) ** 3
    else:
        jerks = np.zeros(0)
    return periods, steps, jerks


def steal_jiffies():
    """CPU time the hypervisor gave to others while this machine's CPUs wanted it ("steal",
    /proc/stat, all CPUs, in clock ticks); 0 on bare metal."""
    try:
        with open('/proc/stat') as f:
            fields = f.readline().split()
        return int(fields[8]) if fields[0] == 'cpu' and len(fields) > 8 else 0
    except OSError:
        return 0


def _pct(values, q):
    values = np.asarray(values, float)
    return float(np.percentile(values, q)) if values.size else None


class CommandLog:
    """One episode's commands as the arm got them, appended by the thread that sends them (the
    control thread, or the inference worker in sync) and frozen by the main thread at the end
    of the episode: send times, commands, what the executor asked for before the limits, the
    age of the frame behind each command, and the memory's writes."""

    def __init__(self, sim):
        self.sim = sim
        self.lock = threading.Lock()
        self.recording = False
        self.command = self.q = None
        self.t, self.x, self.target, self.ages, self.writes = [], [], [], [], 0

    def start(self, q):
        """A new episode from joint positions q: an empty log, recording."""
        with self.lock:
            self.command, self.q, self.recording = None, q, True
            self.t, self.x, self.target, self.ages, self.writes = [], [], [], [], 0

    def send(self, command, obs_time, target=None):
        """Send ``command`` to the arm now, from a frame captured at ``obs_time`` (None:
        unknown); ``target``: the executor's own before the limits (None: the command)."""
        now = time.monotonic()
        self.command = np.array(command)
        self.sim.set_command(self.command)
        with self.lock:
            if self.recording:
                self.t.append(now)
                self.x.append(self.command)
                self.target.append(self.command if target is None else np.array(target))
                self.ages.append(now - obs_time if obs_time is not None else np.nan)

    def stop(self):
        """The episode's log, frozen (the control thread keeps ticking between episodes)."""
        with self.lock:
            self.recording = False
            return list(self.t), list(self.x), list(self.target), list(self.ages)


class PointStats:
    """The measures of one (mode, latency) point, accumulated episode by episode."""

    def __init__(self, nominal):
        self.nominal = nominal
        self.successes, self.writes, self.steal = 0, [], []
        self.periods, self.steps, self.jerks, self.target_steps, self.arm_jerks = (
            [], [], [], [], [])
        self.ages = []
        self.commanding_s, self.n_commands = 0.0, 0
        self.calm_s, self.calm_commands = 0.0, 0    # the same over episodes without host steal

    def add(self, success, writes, log, arm_t, arm_x, steal):
        log_t, log_x, log_target, log_ages = log
        self.successes += int(success)
        self.writes.append(writes)
        self.steal.append(steal)
        periods, steps, jerks = stream_metrics(log_t, log_x)
        self.periods.append(periods)
        self.steps.append(steps)
        self.jerks.append(jerks)
        self.target_steps.append(stream_metrics(log_t, log_target)[1])
        self.arm_jerks.append(stream_metrics(arm_t, arm_x)[2])
        self.ages.extend(a for a in log_ages if np.isfinite(a))
        if len(log_t) > 1:
            self.commanding_s += log_t[-1] - log_t[0]
            self.n_commands += len(log_t) - 1
            if steal == 0:
                self.calm_s += log_t[-1] - log_t[0]
                self.calm_commands += len(log_t) - 1

    def result(self, wall):
        n, nominal, steal = len(self.writes), self.nominal, self.steal
        calm = [p for p, st in zip(self.periods, steal) if st == 0]
        calm = np.concatenate(calm) if calm else np.zeros(0)
        periods, steps, jerks, arm_jerks, target_steps = (
            np.concatenate(v) if v else np.zeros(0)
            for v in (self.periods, self.steps, self.jerks, self.arm_jerks, self.target_steps))
        return dict(
            episodes=n, successes=self.successes, success=self.successes / n,
            success_ci95=wilson(self.successes, n),
            control_rate_hz=(self.n_commands / self.commanding_s) if self.commanding_s
            else 0.0,
            nominal_period_ms=1e3 * nominal,
            period_jitter_p99_ms=1e3 * (_pct(np.abs(periods - nominal), 99) or 0.0),
            period_p50_ms=1e3 * (_pct(periods, 50) or 0.0),
            # the host (hypervisor) taking CPU time away: its share of the point's CPU time,
            # and the timing measures over the episodes during which it took none
            steal_share=float(np.sum(steal)) / os.sysconf('SC_CLK_TCK') / wall
            / (os.cpu_count() or 1),
            steal_free_episodes=int(sum(st == 0 for st in steal)),
            control_rate_hz_steal_free=(self.calm_commands / self.calm_s) if self.calm_s
            else None,
            period_jitter_p99_ms_steal_free=(1e3 * _pct(np.abs(calm - nominal), 99)
                                             if calm.size else None),
            joint_step_max=float(steps.max()) if steps.size else 0.0,
            joint_step_p99=_pct(steps, 99), jerk_p99=_pct(jerks, 99),
            target_step_max=float(target_steps.max()) if target_steps.size else None,
            target_step_p99=_pct(target_steps, 99),
            arm_jerk_p99=_pct(arm_jerks, 99),
            chunk_age_ms_p50=1e3 * (_pct(self.ages, 50) or 0.0),
            chunk_age_ms_p99=1e3 * (_pct(self.ages, 99) or 0.0),
            writes_per_episode=float(np.mean(self.writes)))


def _start_sim(settings, log):
    """The wall-clock arm: in a process of its own, or (``sim_process: False``) in a thread
    here. Returns (sim, positions callable)."""
    if settings.sim_process:
        from aura_ros.sim.process import SimProcess
        sim = SimProcess(settings.task, settings.physics_rate, settings.joint_state_rate,
                         engine=settings.engine)
        return sim, sim.positions
    if settings.engine != 'planar':
        raise ValueError('the sim in a thread runs the planar arm only')
    sim = _ThreadSim(settings.task, settings.physics_rate, settings.joint_state_rate, log)
    return sim, lambda: log.q


def _start_execution(mode, settings, runner, log, positions, on_step):
    """The execution the node runs for ``mode``, sending through ``log``. Returns (policy,
    nominal command period, its threads by role)."""
    frame_period = 1.0 / settings.task.frame_rate
    if mode == 'sync':
        holder = []
        policy = SyncExecution(runner, lambda command: log.send(command, holder[0].obs_time),
                               positions, on_step=on_step, start_armed=True)
        holder.append(policy)
        return policy, frame_period, {'inference': policy.worker.thread}
    holder = []

    def send(command):  # the control thread may tick before ``policy`` is set
        loop = holder[0].loop if holder else None
        newest = loop.executor.newest if loop is not None else None
        log.send(command, newest.obs_time if newest is not None else None,
                 loop.last_target if loop is not None else None)

    config = ExecutionConfig('async', settings.control_rate, frame_period, TRANSITION[mode],
                             settings.blend_s, settings.ensemble_decay, settings.max_age_s,
                             settings.control_priority, settings.open_loop_steps)
    policy = AsyncPolicy(runner, send, positions, config, on_step=on_step, start_armed=True)
    holder.append(policy)
    return (policy, 1.0 / settings.control_rate,
            {'inference': policy.worker.thread, 'control': policy.thread})


def run_point(mode, latency_ms, settings, build_runner, progress=True, observer=None):
    """One (mode, latency) point: ``settings.episodes`` real-time episodes. ``observer``
    (optional) is told ``start(seed)``, every ``frame(t, image)`` the policy is given, every
    memory ``step(t, wrote)`` (t: the capture time of the frame it processed) and
    ``end(seed, success)``."""
    runner = build_runner(latency_ms)
    sim = policy = log = None

    def on_step(frame_time, _chunk, info):
        log.writes += int(info.wrote)
        if observer is not None:
            observer.step(frame_time, bool(info.wrote))

    def on_frame(frame, q, t):
        if observer is not None:
            observer.frame(t, frame)
        policy.submit(frame, t, t, positions=q)

    def ready(seed):
        def reset(q):
            policy.reset(seed)
            log.start(q)
        return reset

    try:
        log = CommandLog(None)
        sim, positions = _start_sim(settings, log)
        log.sim = sim
        policy, nominal, threads = _start_execution(mode, settings, runner, log, positions,
                                                    on_step)
        stats = PointStats(nominal)
        ids = dict({k: th.native_id for k, th in threads.items()},
                   main=threading.get_native_id())
        cpu0 = {k: thread_cpu_s(i) for k, i in ids.items()}
        sim_cpu0 = sim.cpu_s()
        wall0 = time.monotonic()
        bar = tqdm(range(settings.episodes), desc=f'{mode} {latency_ms} ms',
                   disable=not progress, leave=False)
        for i in bar:
            seed = EVAL_SEED + i
            steal0 = steal_jiffies()
            if observer is not None:
                observer.start(seed)
            success, arm_t, arm_x = sim.episode(seed, ready(seed), on_frame)
            if observer is not None:
                observer.end(seed, success)
            stats.add(success, log.writes, log.stop(), arm_t, arm_x, steal_jiffies() - steal0)
            bar.set_postfix(success=f'{stats.successes / (i + 1):.2f}')
        wall = time.monotonic() - wall0
        cpu = {k: (thread_cpu_s(i) - cpu0[k]) / wall for k, i in ids.items()}   # threads alive
        cpu['sim'] = (sim.cpu_s() - sim_cpu0) / wall
        if not settings.sim_process:    # the sim ran in the main thread
            cpu['sim'] = cpu.pop('main')
    finally:
        if policy is not None:
            policy.stop()
        if sim is not None:
            sim.close()
    return dict(
        mode=mode, latency_ms=latency_ms, **stats.result(wall), cpu_share=cpu,
        physics_overruns=sim.overruns, wall_s=wall, sim_process=settings.sim_process,
        # the engine's own physics steps per second of episode (MuJoCo; 0: not counted)
        physics_hz=(getattr(sim, 'physics_steps', 0) / sim.episode_s
                    if getattr(sim, 'episode_s', 0) else 0.0),
        control_scheduler=policy.control_scheduler if mode != 'sync' else None)


class _ThreadSim:
    """``SimProcess``'s interface with the arm in the calling thread (``sim_process: False``,
    the first runs' setup: the physics shares the policy's interpreter lock)."""

    def __init__(self, task, physics_rate, joint_state_rate, log):
        from aura_ros.sim.arm import ArmEnv
        self.env = ArmEnv(task.arm_config())
        self.arm = RealtimeArm(self.env, physics_rate, joint_state_rate, task.frame_rate)
        self.log = log      # the command sent last (log.command), the joints now (log.q)
        self.stop = threading.Event()

    @property
    def overruns(self):
        return self.arm.overruns

    def set_command(self, q):
        pass                                  # the arm reads log.command itself

    def cpu_s(self):
        return 0.0                            # counted as the main thread's

    def episode(self, seed, ready, on_frame):
        frame = self.env.reset(seed)
        ready(self.env.q.copy())
        arm_t, arm_x = [], []

        def on_joints(q, t):
            self.log.q = q.copy()
            arm_t.append(t)
            arm_x.append(self.log.q)

        self.arm.run(frame, lambda: self.log.command,
                     lambda image, t: on_frame(image, self.log.q.copy(), t), on_joints,
                     self.stop)
        return bool(self.env.success), arm_t, arm_x

    def close(self):
        pass


def params_digest(params):
    """The policy node's parameter values (not the file's bytes: comments do not count) and
    the bytes of the weights they load (memory checkpoint, backbone ``*.safetensors``): a
    model retrained into the same folder is a new policy, not a cache hit."""
    from aura_ros.params import read_params_file
    from aura_ros.paths import resolve_path
    values, base_dir = read_params_file(params, 'policy_node')
    h = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode())
    files = []
    if values.get('memory.checkpoint'):
        files.append(resolve_path(values['memory.checkpoint'], base_dir))
    try:
        folder = resolve_path(values.get('backbone.model_path', ''), base_dir)
        files += sorted(folder.glob('*.safetensors')) if folder.is_dir() else []
    except (FileNotFoundError, ValueError):     # no local model folder (e.g. remote)
        pass
    for path in files:
        h.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return h.hexdigest()[:12]


def make_builder(params, memory=True, max_velocity=float('inf')):
    """latency_ms -> a fresh PolicyRunner over the parameter file's backbone (with that
    latency injected) and a fresh copy of its memory (none if ``memory`` is False)."""
    from aura_ros.backbones import build_backbone
    from aura_ros.backbones.base import DelayedBackbone
    from aura_ros.core import load_memory
    from aura_ros.params import backbone_block, read_params_file
    from aura_ros.paths import resolve_path
    from aura_ros.policy import PolicyRunner
    from aura_ros.sim.rollout import sim_limits
    values, base_dir = read_params_file(params, 'policy_node')
    backbone = build_backbone(backbone_block(values), base_dir=base_dir)
    checkpoint = resolve_path(values['memory.checkpoint'], base_dir, kind='memory checkpoint')

    def build(latency_ms):
        inner = DelayedBackbone(backbone, latency_ms) if latency_ms else backbone
        limits = sim_limits()
        limits.max_velocity = max_velocity
        return PolicyRunner(inner, load_memory(checkpoint) if memory else None, limits)

    return build


def run(settings=None, params=None, modes=MODES, latencies=LATENCIES_MS, cache_dir=None,
        progress=True):
    unknown = [m for m in modes if m != 'sync' and m not in TRANSITION]
    if unknown:
        raise ValueError(f'unknown realtime modes {unknown}; known: {list(MODES)}')
    import torch

    from aura_ros.paths import package_share
    torch.set_num_threads(1)
    settings = settings or RealtimeSettings()
    params = params or str(Path(package_share('aura_ros')) / 'config' / 'realtime.yaml')
    build = make_builder(params, settings.memory, settings.max_velocity)
    digest = params_digest(params)
    cache = Path(cache_dir) if cache_dir else None
    points = {}
    todo = [(m, lat) for m in modes for lat in latencies]
    for mode, latency in tqdm(todo, desc='realtime points', disable=not progress):
        path = (cache / f'{mode}-{latency}ms-{settings.key(mode, latency, digest)}.json'
                if cache else None)
        if path is not None and path.is_file():
            points[mode, latency] = json.loads(path.read_text())
            continue
        point = run_point(mode, latency, settings, build, progress)
        points[mode, latency] = point
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(point, indent=2) + '\n')
    keys = ('success', 'success_ci95', 'control_rate_hz', 'period_jitter_p99_ms',
            'joint_step_max', 'joint_step_p99', 'target_step_max', 'target_step_p99',
            'jerk_p99', 'arm_jerk_p99', 'chunk_age_ms_p50',
            'chunk_age_ms_p99', 'writes_per_episode', 'cpu_share', 'period_p50_ms',
            'control_scheduler', 'steal_share', 'steal_free_episodes',
            'control_rate_hz_steal_free', 'period_jitter_p99_ms_steal_free')
    result = dict(latencies_ms=list(latencies), episodes=settings.episodes,
                  control_rate_target_hz=settings.control_rate, params=str(params),
                  settings=asdict(settings), modes={})
    for mode in modes:
        result['modes'][mode] = {k: [points[mode, lat].get(k) for lat in latencies]
                                 for k in keys}
        if mode == 'sync':       # its commands are the runner's, limited: no executor target
            result['modes'][mode]['target_step_p99'] = [None] * len(latencies)
            result['modes'][mode]['target_step_max'] = [None] * len(latencies)
    result['targets'] = targets(result)
    return result


def _step_measure(*blocks):
    """The step measure to compare modes by: the executor's requested step (before the
    velocity limit, which every mode saturates while the arm moves at full speed) where every
    block has it, else the step between commands."""
    if all(all(v is not None for v in b.get('target_step_p99') or [None]) for b in blocks):
        return 'target_step_p99'
    return 'joint_step_p99'


def _smoother(block, ref, step):
    """Per latency: ``block``'s step measure and command jerk both below ``ref``'s."""
    n = len(ref['jerk_p99'])
    return [bool(s is not None and rs is not None and j is not None and rj is not None
                 and s < rs and j < rj) for s, rs, j, rj in zip(
        block.get(step) or [None] * n, ref.get(step) or [None] * n,
        block['jerk_p99'], ref['jerk_p99'])]


def targets(result):
    """The issue's targets, computed from the result (None where a mode is missing), and the
    comparison with the peers' handovers (``peers``)."""
    lat = result['latencies_ms']
    modes = result['modes']
    out = {}
    ours = [m for m in modes if m.startswith('async') and m not in PEER_MODES]
    peers = [m for m in PEER_MODES if m in modes]
    executed = ours + peers                      # by AsyncPolicy's control thread
    if 0 in lat and 200 in lat and ours:
        i0, i200 = lat.index(0), lat.index(200)
        kept = {m: (modes[m]['success'][i200] / modes[m]['success'][i0]
                    if modes[m]['success'][i0] else None) for m in executed}
        # the mode one would pick for a slow VLA: best at 200 ms (ties: best at 0 ms)
        best = max(ours, key=lambda m: (modes[m]['success'][i200], modes[m]['success'][i0]))
        out['best_async_mode'] = best
        out['async_kept_at_200ms'] = kept
        out['best_async_keeps_90pct_at_200ms'] = bool(kept[best] is not None
                                                      and kept[best] >= 0.9)
        if 'sync' in modes and modes['sync']['success'][i0]:
            out['sync_kept_at_200ms'] = (modes['sync']['success'][i200]
                                         / modes['sync']['success'][i0])
    # control timing: every mode the control thread runs at its rate (open_loop_chunk holds
    # while it infers by design: its command rate is not a control-rate measure)
    timed = [m for m in executed if m not in HOLDING_MODES]
    target = result['control_rate_target_hz']
    out['control_rate_within_2pct'] = {
        m: [abs(r - target) / target <= 0.02 for r in modes[m]['control_rate_hz']]
        for m in timed}
    out['jitter_p99_at_most_5ms'] = {m: [j <= 5.0 for j in modes[m]['period_jitter_p99_ms']]
                                     for m in timed}
    if all('period_jitter_p99_ms_steal_free' in modes[m] for m in timed):
        # the same, over the episodes during which the hypervisor took no CPU time
        out['control_rate_within_2pct_steal_free'] = {
            m: [r is not None and abs(r - target) / target <= 0.02
                for r in modes[m]['control_rate_hz_steal_free']] for m in timed}
        out['jitter_p99_at_most_5ms_steal_free'] = {
            m: [j is not None and j <= 5.0 for j in modes[m]['period_jitter_p99_ms_steal_free']]
            for m in timed}
    if 'async_latest' in modes:
        # joint step (requested, before the limits) and the jerk of the commands sent
        ref = modes['async_latest']
        step = _step_measure(ref)
        out['smoother_than_latest_by'] = step + ' and jerk_p99'
        out['smoother_than_latest'] = {m: _smoother(modes[m], ref, step)
                                       for m in executed if m != 'async_latest'}
    if peers and ours:
        # ours against what the peers' users get: success per latency (one mode of ours,
        # fixed before the run: the node's default transition, blend -- not the best of ours
        # at each latency, which would favour us by picking the luckiest of several noisy
        # estimates; point estimates and whether the Wilson intervals separate) and smoothness
        out['peers'] = {}
        mine = 'async_blend' if 'async_blend' in ours else out.get('best_async_mode', ours[0])
        for peer in peers:
            p = modes[peer]
            best = [mine] * len(lat)
            ci = [(modes[b].get('success_ci95') or [None] * len(lat))[i]
                  for i, b in enumerate(best)]
            pci = p.get('success_ci95') or [None] * len(lat)
            step = _step_measure(p, *(modes[m] for m in ours))
            out['peers'][peer] = dict(
                success=list(p['success']), best_ours=best,
                best_ours_success=[modes[b]['success'][i] for i, b in enumerate(best)],
                ours_at_least_as_successful=[modes[b]['success'][i] >= p['success'][i]
                                             for i, b in enumerate(best)],
                ours_above_ci=[bool(c is not None and q is not None and c[0] > q[1])
                               for c, q in zip(ci, pci)],
                ours_below_ci=[bool(c is not None and q is not None and c[1] < q[0])
                               for c, q in zip(ci, pci)],
                smoother_than_peer_by=step + ' and jerk_p99',
                smoother_than_peer={m: _smoother(modes[m], p, step) for m in ours})
    return out


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    lat = result['latencies_ms']
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for mode, block in result['modes'].items():
        lo = [c[0] for c in block['success_ci95']]
        hi = [c[1] for c in block['success_ci95']]
        axes[0].plot(lat, block['success'], marker='o', label=mode)
        axes[0].fill_between(lat, lo, hi, alpha=0.15)
        axes[1].plot(lat, block['arm_jerk_p99'], marker='o', label=mode)
        axes[2].plot(lat, block['control_rate_hz'], marker='o', label=mode)
    axes[0].set(xlabel='injected inference latency (ms)', ylabel='success (Wilson 95%)',
                title=f"success, {result['episodes']} episodes per point", ylim=(0, 1))
    axes[1].set(xlabel='injected inference latency (ms)', ylabel='p99 jerk (rad/s^3)',
                title='arm smoothness (joint samples at 100 Hz)', yscale='log')
    axes[2].axhline(result['control_rate_target_hz'], color='grey', ls=':')
    axes[2].set(xlabel='injected inference latency (ms)', ylabel='commands per second',
                title='command rate (target dotted)', yscale='log')
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
