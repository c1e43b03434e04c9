"""Safety and data integrity under faults: ``python -m aura_ros.bench reliability``.

Writes ``bench/results/reliability.json`` with five sections (each can be run alone with
``--parts``):

``limits``     the command rule (control/limits.py) as an invariant over long randomized runs
               of both executions (``SyncExecution``, ``AsyncPolicy``: the objects the node
               runs, real threads), a stand-in backbone that asks for wild actions (up to
               +-2 rad, sometimes NaN) and a stand-in arm. Random faults: frames pause past the
               frame timeout (the node's watchdog fires), the arm is moved while paused, joint
               states go stale, disarm/arm, deactivate/activate (a new execution on the same
               runner), a new episode, a push of the arm while commanding. Every command is
               checked against its reference: the measured positions for the first command
               after a hold the run caused, else the previous command (or the measured
               positions, where the execution held by itself: a withheld NaN action, a chunk
               that ran out). Reported: commands, holds, the largest distance from the
               reference against the step limit, violations (must be 0).
``server``     the backbone server process with each oversized request field (instruction,
               image, state, a message past the receive limit): status code, time to refusal,
               the server's RSS growth.
``typos``      parameter files with a typo under the node's own section and under ``/**``,
               started as real node processes: refused (exit status 2, one line naming the
               key and the closest name) or, with ``strict_parameters: false``, accepted.
``shutdown``   each node as a real process, settled (the policy node active with its model,
               the sim blocked in a 30 s wait for a command, recorders writing): SIGINT, then
               the seconds to exit, the exit status, any traceback; 5 times per node.
``recording``  ``--launches`` launches of two simulated arms through the real nodes (each arm:
               sim, perception, policy, gate recorder), 1 episode each: gate events published
               (the policy's sequence numbers) against those in each arm's bag.
"""
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

# ---- limits: the command rule as an invariant ---------------------------------------------


class WildBackbone:
    """Stand-in backbone (no model): features of zeros and chunks of random deltas up to
    +-2 rad per action, one in ``nan_every`` chunks non-finite."""

    def __init__(self, seed, action_dim=3, chunk=6, steps_per_chunk=3, nan_every=40):
        from aura_ros.backbones.base import BackboneConfig
        self.config = BackboneConfig(adapter='remote', action_dim=action_dim, chunk_size=chunk,
                                     steps_per_chunk=steps_per_chunk)
        self.feature_dim = 4
        self.rng = np.random.default_rng(seed)
        self.nan_every = nan_every
        self.calls = 0

    def infer(self, image, state, instruction='', want_chunk=True, noise_seed=None):
        import torch

        from aura_ros.backbones.base import Encoding
        self.calls += 1
        chunk = None
        if want_chunk:
            chunk = self.rng.uniform(-2.0, 2.0, (self.config.chunk_size,
                                                 self.config.action_dim)).astype(np.float32)
            if self.calls % self.nan_every == 0:
                chunk[0, 0] = np.nan
        return Encoding(features=torch.zeros(self.feature_dim)), chunk

    def close(self):
        pass


class Checker:
    """Every command the execution sends, against the rule. ``hold()`` marks a hold the run
    caused, after its hold command if it sends one (the next command must be within one step
    of the measured positions)."""

    def __init__(self, arm, step):
        self.arm, self.step = arm, step
        self.lock = threading.Lock()
        self.previous = None
        self.after_hold = True         # the first command of a run starts from measured
        self.commands = self.violations = self.from_measured = 0
        self.largest = 0.0             # largest distance from the reference (rad)
        self.largest_step = 0.0        # largest change between consecutive commands
        self.examples = []

    def hold(self):
        with self.lock:
            self.after_hold = True

    def send(self, command):
        command = np.asarray(command, np.float64)
        with self.lock:
            measured = self.arm.q.copy()
            d_measured = float(np.abs(command - measured).max())
            if self.after_hold or self.previous is None:
                distance = d_measured
                self.from_measured += 1
            else:
                d_previous = float(np.abs(command - self.previous).max())
                self.largest_step = max(self.largest_step, d_previous)
                distance = min(d_previous, d_measured)   # a hold of the execution's own
            ok = np.all(np.isfinite(command)) and distance <= self.step + 1e-9 and \
                np.all(command >= self.arm.lower - 1e-12) and \
                np.all(command <= self.arm.upper + 1e-12)
            if not ok:
                self.violations += 1
                if len(self.examples) < 5:
                    self.examples.append(dict(command=command.tolist(),
                                              measured=measured.tolist(),
                                              previous=None if self.previous is None
                                              else self.previous.tolist(),
                                              after_hold=self.after_hold))
            self.largest = max(self.largest, distance)
            self.commands += 1
            self.previous, self.after_hold = command, False
            self.arm.follow(command)


class StandInArm:
    """Joint positions that follow each command at once; moved by hand when pushed."""

    def __init__(self, lower, upper):
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.q = np.zeros(len(self.lower))
        self.stale = False            # joint states stopped arriving

    def follow(self, command):
        self.q = np.asarray(command, np.float64).copy()

    def push(self, rng, size):
        self.q = np.clip(self.q + rng.uniform(-size, size, self.q.shape), self.lower,
                         self.upper)

    def positions(self):
        return None if self.stale else self.q.copy()


def limits_run(kind, steps=10_000, seed=0, progress=True, frame_timeout=0.03, max_age_s=0.05):
    """One randomized run of execution ``kind`` ('sync' or 'async') until ``steps`` commands
    were sent; returns the checker's numbers and the faults caused."""
    from aura_ros.control.execution import ExecutionConfig, make_execution
    from aura_ros.control.limits import CommandLimits
    from aura_ros.policy import PolicyRunner
    rng = np.random.default_rng(seed)
    lower, upper = [-3.0, -3.0, -3.0], [3.0, 3.0, 3.0]
    limits = CommandLimits(lower, upper, max_delta=0.15, max_velocity=5.0)
    control_rate = 200.0
    step = limits.max_delta if kind == 'sync' else limits.step(1.0 / control_rate)
    arm = StandInArm(lower, upper)
    checker = Checker(arm, step)
    runner = PolicyRunner(WildBackbone(seed), None, limits)
    done = threading.Event()

    def on_step(*_):
        done.set()

    def build():
        config = ExecutionConfig(kind, control_rate, action_period=0.01,
                                 transition=str(rng.choice(['latest', 'blend',
                                                            'temporal_ensemble'])),
                                 max_age_s=max_age_s)
        return make_execution(config, runner, checker.send, arm.positions, on_step=on_step,
                              on_error=lambda *_: done.set(), start_armed=True,
                              freeze_gc=False)

    faults = dict(pauses=0, pushes_while_paused=0, stale_joint_states=0, disarm_arm=0,
                  deactivate_activate=0, new_episodes=0, pushes_while_commanding=0)
    image = np.zeros((8, 8, 3), np.uint8)
    execution = build()
    bar = tqdm(total=steps, desc=f'limits {kind}', disable=not progress, leave=False)
    try:
        while checker.commands < steps:
            before = checker.commands
            r = rng.random()
            if r < 0.02:                                    # frames pause (watchdog fires)
                faults['pauses'] += 1
                time.sleep(1.5 * max(frame_timeout, max_age_s))   # async: the chunk ages out
                execution.frames_stopped()                   # sync: one hold command
                if rng.random() < 0.7:
                    faults['pushes_while_paused'] += 1
                    time.sleep(0.005)
                    arm.push(rng, 2.0)
                checker.hold()
            elif r < 0.03:                                  # joint states go stale
                faults['stale_joint_states'] += 1
                arm.stale = True
                for _ in range(3):
                    execution.submit(image, time.monotonic())
                    time.sleep(0.01)
                arm.push(rng, 1.0)
                checker.hold()
                arm.stale = False
            elif r < 0.04:                                  # disarm, then arm
                faults['disarm_arm'] += 1
                execution.disarm()                           # one hold command
                arm.push(rng, 1.0)
                checker.hold()
                execution.arm()
            elif r < 0.045:                                 # deactivate, activate
                faults['deactivate_activate'] += 1
                armed = execution.armed
                execution.stop()
                arm.push(rng, 1.0)
                checker.hold()
                execution = build()
                if not armed:
                    execution.arm()
            elif r < 0.055:                                 # a new episode, a new start pose
                faults['new_episodes'] += 1
                execution.reset(int(rng.integers(1 << 30)))
                arm.push(rng, 1.0)
                checker.hold()
            elif r < 0.06:                                  # the arm pushed while commanding
                faults['pushes_while_commanding'] += 1
                arm.push(rng, 0.5)
            done.clear()
            execution.submit(image, time.monotonic())
            if kind == 'sync':
                done.wait(1.0)
            else:
                time.sleep(0.01)
            bar.update(checker.commands - before)
    finally:
        execution.stop()
        bar.close()
    holds = sum(v for k, v in faults.items() if k != 'pushes_while_commanding')
    return dict(execution=kind, commands=checker.commands, step_limit=step,
                largest_from_reference=checker.largest,
                largest_step_between_commands=checker.largest_step,
                first_commands_after_a_hold=checker.from_measured, holds_caused=holds,
                faults=faults, violations=checker.violations, examples=checker.examples)


# ---- server: oversized fields ---------------------------------------------------------------

def _rss_mb(pid):
    import psutil
    return psutil.Process(pid).memory_info().rss / 2**20


def server_limits(params, progress=True):
    """Each oversized field against a real server process: code, refusal time, RSS growth."""
    import grpc

    from aura_ros.backbones.proto import backbone_pb2 as pb
    from aura_ros.backbones.proto import backbone_pb2_grpc as pb_grpc
    from aura_ros.backbones.server import max_request_bytes
    from aura_ros.params import backbone_block, read_params_file
    block = backbone_block(read_params_file(params, 'policy_node')[0])
    size, width = block['image_size'], block['action_dim']
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, '-m', 'aura_ros.backbones.server', '--params',
                             str(params), '--bind', f'127.0.0.1:{port}'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    limit = max_request_bytes(size)
    channel = grpc.insecure_channel(f'127.0.0.1:{port}', [
        ('grpc.max_send_message_length', 4 * limit)])
    image = np.zeros((size, size, 3), np.uint8).tobytes()
    good = dict(image=image, height=size, width=size, state=[0.0] * width,
                instruction='reach the marked pad', want_chunk=True)
    cases = {
        'instruction_1MB': dict(good, instruction='x' * 1_000_000),
        'instruction_8000_chars': dict(good, instruction='y' * 8000),
        'image_2x_bytes': dict(good, image=image * 2),
        'image_claims_4096x4096': dict(good, height=4096, width=4096),
        'state_100k_values': dict(good, state=[0.0] * 100_000),
        'state_not_finite': dict(good, state=[float('nan')] * width),
        'message_past_receive_limit': dict(good, image=b'\0' * (limit + 1024)),
    }
    try:
        grpc.channel_ready_future(channel).result(timeout=120)
        stub = pb_grpc.BackboneStub(channel)
        stub.Infer(pb.InferRequest(**good), timeout=60)          # warm: what is loaded stays
        base = _rss_mb(proc.pid)
        out = {}
        for name, fields in tqdm(cases.items(), desc='server fields', disable=not progress,
                                 leave=False):
            message = pb.InferRequest(**fields)     # built before the clock starts
            t0 = time.perf_counter()
            try:
                stub.Infer(message, timeout=30)
                code, detail = 'OK', ''
            except grpc.RpcError as exc:
                code, detail = exc.code().name, exc.details()
            out[name] = dict(code=code, detail=detail,
                             refusal_ms=1e3 * (time.perf_counter() - t0),
                             rss_growth_mb=_rss_mb(proc.pid) - base)
        t0 = time.perf_counter()
        stub.Infer(pb.InferRequest(**good), timeout=60)
        serving = dict(after_all=True, infer_ms=1e3 * (time.perf_counter() - t0))
    finally:
        channel.close()
        proc.terminate()
        proc.wait(timeout=10)
    refused = all(v['code'] in ('INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED') for v in out.values())
    fields = [v for k, v in out.items() if k != 'message_past_receive_limit']
    return dict(fields=out, receive_limit_bytes=limit, all_refused=refused,
                slowest_field_refusal_ms=max(v['refusal_ms'] for v in fields),
                transport_refusal_ms=out['message_past_receive_limit']['refusal_ms'],
                slowest_refusal_ms=max(v['refusal_ms'] for v in out.values()),
                largest_rss_growth_mb=max(v['rss_growth_mb'] for v in out.values()),
                still_serving=serving)


# ---- typos in parameter files ---------------------------------------------------------------

TYPO_CASES = {
    'policy_section': ('policy_node', {'/**/policy_node': {'ros__parameters': {
        'memory': {'checkpiont': 'x.safetensors'}}}}, 'memory.checkpoint'),
    'wildcard_section': ('perception_node', {'/**': {'ros__parameters': {
        'backbone': {'image_sise': 64}}}}, 'backbone.image_size'),
    'sim_section': ('sim_arm_node', {'/**/sim_arm_node': {'ros__parameters': {
        'episods': 3}}}, 'episodes'),
    'opted_out': ('perception_node', {'/**/perception_node': {'ros__parameters': {
        'strict_parameters': False, 'some_other_package_key': 1}}}, None),
}


def typo_refusals(timeout=60.0):
    """Each case as a real node process with a --params-file: refused with the line, or (opted
    out) running after 3 s."""
    import yaml

    from aura_ros.tools.processes import executable
    out = {}
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    with tempfile.TemporaryDirectory() as tmp:
        for name, (node, data, closest) in TYPO_CASES.items():
            path = Path(tmp) / f'{name}.yaml'
            path.write_text(yaml.safe_dump(data))
            proc = subprocess.Popen([executable(node), '--ros-args', '--params-file',
                                     str(path)], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, env=env)
            try:
                text, _ = proc.communicate(timeout=3.0 if closest is None else timeout)
                status = proc.returncode
            except subprocess.TimeoutExpired:
                proc.terminate()
                text, _ = proc.communicate(timeout=10)
                status = None                       # still running: accepted
            lines = [line for line in text.splitlines() if 'unknown parameter' in line]
            out[name] = dict(node=node, exit_status=status, line=lines[0] if lines else '',
                             refused=status == 2 and bool(lines),
                             names_closest=bool(closest) and bool(lines)
                             and closest in lines[0])
    ok = all(v['refused'] and v['names_closest'] for k, v in out.items() if k != 'opted_out')
    return dict(cases=out, typos_refused=ok, opt_out_runs=out['opted_out']['exit_status']
                is None)


# ---- recording: gate events published vs recorded -------------------------------------------

def recording_launches(launches=20, episodes=1, out='bench/results/reliability_work',
                       progress=True):
    """``launches`` two-arm graphs through the real nodes; per arm and launch: gate events
    published (the highest sequence number) and recorded (in the arm's bag)."""
    from aura_ros.tools import bag_report
    from aura_ros.tools.demo import run_arms
    rows = []
    for i in tqdm(range(launches), desc='two-arm launches', disable=not progress):
        work = Path(out) / f'launch_{i:02d}'
        ok, results, bags = run_arms(['left', 'right'], episodes, seed=5000 + 10 * i,
                                     out=str(work), verbose=False)
        for arm, bag in bags.items():
            try:
                contents = bag_report.read_bag(bag)
                seqs = [r.sequence for r in contents.gate if r.sequence]
                published, recorded = (max(seqs) if seqs else 0), len(set(seqs))
            except bag_report.BagError:
                published = recorded = 0
            rows.append(dict(launch=i, arm=arm, ok=ok, episodes=len(results[arm]),
                             published=published, recorded=recorded,
                             lost=published - recorded))
    lost = sum(r['lost'] for r in rows)
    return dict(launches=launches, arms=2, rows=rows, published=sum(r['published']
                                                                     for r in rows),
                recorded=sum(r['recorded'] for r in rows), lost=lost,
                all_ran=all(r['ok'] for r in rows))


# ---- shutdown: SIGINT to process exit --------------------------------------------------------

def _shutdown_cases(params, tmp):
    """node -> its arguments: each in the state where a stop could hang (the policy node
    active with its model, the sim blocked waiting 30 s for a command, recorders writing)."""
    return {
        'policy_node': ['--params-file', params],
        'perception_node': ['--params-file', params],
        'sim_arm_node': ['-p', 'lockstep:=true', '-p', 'command_timeout:=30.0', '-p',
                         'policy:=""'],
        'gate_recorder': ['-p', f'output:={tmp}/gate_bag'],
        'episode_recorder': ['-p', f'output:={tmp}/episode_bag'],
    }


def shutdown_times(params, repeats=5, settle_s=6.0, progress=True):
    """Each node as a real process, ``settle_s`` after its start (model loaded, waiting or
    recording): SIGINT, then the seconds until the process has exited, its status and whether
    it printed a traceback; ``repeats`` times per node."""
    import shutil
    import signal

    from aura_ros.tools.processes import executable
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cases = _shutdown_cases(params, tmp)
        bar = tqdm(total=len(cases) * repeats, desc='SIGINT to exit', disable=not progress)
        for node, args in cases.items():
            runs = []
            for _ in range(repeats):
                for bag in Path(tmp).glob('*_bag'):
                    shutil.rmtree(bag)
                proc = subprocess.Popen([executable(node), '--ros-args', *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
                time.sleep(settle_s)
                start = time.monotonic()
                proc.send_signal(signal.SIGINT)
                try:
                    text, _ = proc.communicate(timeout=30)
                    seconds = time.monotonic() - start
                except subprocess.TimeoutExpired:
                    proc.kill()
                    text, _ = proc.communicate()
                    seconds = None
                runs.append(dict(seconds=seconds, exit_status=proc.returncode,
                                 traceback='Traceback' in text))
                bar.update(1)
            times = [r['seconds'] for r in runs if r['seconds'] is not None]
            out[node] = dict(runs=runs, median_s=float(np.median(times)) if times else None,
                             max_s=max(times) if len(times) == repeats else None,
                             clean=all(r['exit_status'] == 0 and not r['traceback']
                                       for r in runs))
        bar.close()
    slowest = [v['max_s'] for v in out.values()]
    return dict(nodes=out, repeats=repeats, settle_s=settle_s,
                all_clean=all(v['clean'] for v in out.values()),
                slowest_s=None if None in slowest else max(slowest),
                all_within_1s=None not in slowest and max(slowest) < 1.0)


PARTS = ('limits', 'server', 'typos', 'recording', 'shutdown')


def run(parts=PARTS, steps=10_000, launches=20,
        params=None, progress=True):
    from aura_ros.paths import package_share
    params = params or str(Path(package_share('aura_ros')) / 'config' / 'default.yaml')
    result = dict(parts=list(parts))
    if 'limits' in parts:
        result['limits'] = {kind: limits_run(kind, steps, seed=i, progress=progress)
                            for i, kind in enumerate(('sync', 'async'))}
    if 'server' in parts:
        result['server'] = server_limits(params, progress)
    if 'typos' in parts:
        result['typos'] = typo_refusals()
    if 'recording' in parts:
        result['recording'] = recording_launches(launches, progress=progress)
    if 'shutdown' in parts:
        result['shutdown'] = shutdown_times(params, progress=progress)
    return result


def plot(result, path):
    """Largest distance of a command from its reference as a share of the step limit (1 = at
    the limit) per execution, and gate events published vs recorded per launch and arm."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={'width_ratios': [1, 2]})
    limits = result.get('limits', {})
    ax = axes[0]
    if limits:
        kinds = list(limits)
        shares = [limits[k]['largest_from_reference'] / limits[k]['step_limit'] for k in kinds]
        ax.bar(kinds, shares, color='tab:blue', width=0.5)
        ax.axhline(1.0, color='tab:red', ls='--', label='step limit')
        for i, k in enumerate(kinds):
            ax.text(i, shares[i] / 2, f"{limits[k]['commands']:,} commands\n"
                    f"{limits[k]['holds_caused']} holds\n{limits[k]['violations']} violations",
                    ha="center", va="center", color="white", fontsize=7)
        ax.set_ylim(0, 1.3)
        ax.set_ylabel('largest distance from reference / step limit')
        ax.set_title('the command rule, randomized runs')
        ax.legend(fontsize=8, loc='upper right')
    rec = result.get('recording')
    ax = axes[1]
    if rec:
        rows = rec['rows']
        x = np.arange(len(rows))
        ax.bar(x, [r['recorded'] for r in rows], color='tab:green', label='recorded')
        ax.scatter(x, [r['published'] for r in rows], color='k', marker='_', s=60,
                   label='published (policy sequence)', zorder=3)
        ax.set_xlabel('launch x arm (left, right)')
        ax.set_ylabel('gate events')
        ax.set_title(f"{rec['recorded']:,} of {rec['published']:,} gate events recorded "
                     f"({rec['lost']} lost, {rec['launches']} two-arm launches)")
        ax.legend(fontsize=8, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
