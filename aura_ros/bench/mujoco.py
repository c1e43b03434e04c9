"""The whole user path on the SO-101 in MuJoCo, as one benchmark.

    python -m aura_ros.bench mujoco --json bench/results/mujoco.json \\
        --plot bench/results/mujoco.png [--episodes 200] [--demos 400] [--work DIR]

What a user does with a new arm, stage by stage. Each stage keeps its output under ``--work``
(default bench/results/mujoco_work, not committed) and a rerun reuses the stages already done
(``--fresh``: start over); a stage redone makes every later stage run again, and an
evaluation point is reused only for the same settings, parameter values and weights.

1. **Backbone.** The tiny PI0 behaviour-cloned on the ``visible`` variant of the SO-101 task
   (``train_backbone``, the scripted expert with operator noise; 400 demonstrations, 1200
   steps, as models/pi0_so101) -> WORK/backbone; WORK/arm.yaml is config/sim_mujoco.yaml
   pointing at it, with its normalisation statistics (what ``train backbone --params`` does).
2. **Record.** Through ROS (separate processes over DDS): ``sim_arm_node`` (engine mujoco, in
   real time: physics 600 Hz, joint states 100 Hz, camera 30 fps), ``sim_teleop`` (the expert
   + operator noise, as a teleop device, JointTrajectory) and ``episode_recorder`` (MCAP):
   ``--demos`` episodes of the ``memory`` variant. The recorded label is the command that was
   sent, noise included (as with a real teleop device). ``--teleop-noise`` 0.1 (std 0.015 rad
   per joint and frame): at 0.3, the planar benchmark's level, the noise std exceeds the
   spread of the expert's actions on the SO-101's elbow and wrist roll (1.7x and 3.3x), every
   learned arm fits the validation episodes worse than the frozen backbone alone and AURA
   writes on almost every frame after go (bench/notes.md).
3. **Train.** ``train episodes`` on that bag with WORK/arm.yaml: AURA (memory.safetensors)
   and its controls aura_surprise_only, always_write, no_memory.
4. **Deploy.** WORK/deployed.yaml: arm.yaml with the lines ``train episodes`` printed, in
   asynchronous execution at 100 Hz (what the user runs on the robot). The evaluation reads
   backbone, command limits and checkpoints from this file only.
5. **Closed loop in real time.** The arm on the wall clock in a process of its own
   (``SimProcess``, engine mujoco; the loop ``sim_arm_node`` runs with ``lockstep: false``),
   the policy executed as the policy node executes it in ``execution: async`` (``AsyncPolicy``:
   inference on the newest frame, chunks executed by time with blending, the control loop at
   100 Hz under SCHED_FIFO), no DDS (``bench latency`` and the node tests cover the wire).
   ``--episodes`` seeded episodes of ``memory`` per arm, the same seeds for every arm: aura,
   aura_surprise_only, always_write, no_memory (the residual head alone, same data) and base
   (the frozen backbone alone). Success with a Wilson 95% interval, writes per episode,
   the control rate and period jitter (over all episodes and over those without host steal,
   see ``bench realtime``), physics steps per second of episode.
6. **Cost per frame.** In process, in lockstep (the expert driving, 300 frames): MuJoCo
   rendering of the 64x64 camera frame and the 20 physics steps of a 30 fps frame (medians).
7. **Through the nodes** (``--through-ros N``, default 20): the deployed file with the sim in
   real time (``lockstep: false``) and the JointTrajectory points due one control period
   ahead (``time_from_start: 0.01``, as one streams to joint_trajectory_controller), run as
   separate processes over DDS (sim_arm_node, perception_node, policy_node, gate_recorder):
   N episodes, success and writes per episode (a check that the parameter file deploys, not
   the measurement: the in-process evaluation is).
8. **Film.** One successful AURA episode of stage 5 as the policy saw it (64x64 frames,
   enlarged), the frames whose processing opened the gate framed in red and marked WRITE:
   a GIF next to the JSON.

The task is sim_arm_node's in real time (``ArmTaskConfig``, task v2, at 30 fps: go at a random
frame 18-30, the cue 3 frames = 0.1 s at a random onset before it, distractor flashes, 30
frames = 1 s after go to reach and dwell 3 frames on the cued pad): recordings and evaluation
see the same task.
"""
import json
import shutil
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

ARMS = ('aura', 'aura_surprise_only', 'always_write', 'no_memory', 'base')
TRAINED = ('aura', 'aura_surprise_only', 'always_write', 'no_memory')
DEMO_SEED = 60_000
MODE = 'async_blend'
TELEOP_NOISE = 0.1
CONFIG_CHECKPOINT = 'checkpoint: package://aura_ros/models/aura_so101/memory.safetensors'


def realtime_task():
    """sim_arm_node's task (ArmTaskConfig's frame counts, task v2) stated in seconds at 30 fps:
    recordings and evaluation see the same task."""
    from aura_ros.sim.arm import ArmTaskConfig
    from aura_ros.sim.realtime import RealtimeTask
    cfg, fps = ArmTaskConfig(), 30.0
    task = RealtimeTask(variant='memory', cue_onset=cfg.cue_onset,
                        go_s=(cfg.go[0] / fps, cfg.go[1] / fps),
                        go_switch_s=(cfg.go_switch[0] / fps, cfg.go_switch[1] / fps),
                        go_timeout_s=cfg.max_steps_after_go / fps,
                        dwell_s=cfg.dwell_steps / fps, distractor_rate=cfg.distractor_rate,
                        frame_rate=fps)
    same = task.arm_config(cfg.image_size)
    assert all(getattr(same, f.name) == getattr(cfg, f.name) for f in fields(cfg)), same
    return task


class _Stages:
    """Done-markers under the work folder: a stage redone invalidates the later ones."""
    ORDER = ('backbone', 'record', 'train')

    def __init__(self, work, fresh):
        self.work = Path(work)
        if fresh and self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True, exist_ok=True)

    def done(self, name, **settings):
        """The stage's stored output if it ran with these settings, else None."""
        path = self.work / f'stage_{name}.json'
        if not path.is_file():
            return None
        value = json.loads(path.read_text())
        return value if all(value.get(k) == v for k, v in settings.items()) else None

    def finish(self, name, value):
        for later in self.ORDER[self.ORDER.index(name) + 1:]:
            (self.work / f'stage_{later}.json').unlink(missing_ok=True)
        (self.work / f'stage_{name}.json').write_text(json.dumps(value, indent=2) + '\n')
        return value


def train_backbone_stage(work, demos, steps, progress):
    from aura_ros.bench.param_files import write_params_with
    from aura_ros.paths import package_share
    from aura_ros.train.__main__ import update_params_file
    from aura_ros.train.backbone_bc import train_backbone
    t0 = time.monotonic()
    folder = work / 'backbone'
    norm = train_backbone(folder, episodes=demos, steps=steps, engine='mujoco',
                          variant='visible', progress=progress)
    params = write_params_with(
        Path(package_share('aura_ros')) / 'config' / 'sim_mujoco.yaml', work / 'arm.yaml',
        [('model_path: package://aura_ros/models/pi0_so101', f'model_path: {folder.resolve()}')])
    update_params_file(params, {k: norm[k] for k in ('action_mean', 'action_std',
                                                      'state_mean', 'state_std')})
    return {'demos': demos, 'steps': steps, 'seconds': time.monotonic() - t0,
            'params': str(params)}


def record_stage(work, demos, noise, progress):
    from aura_ros.bench.train_from_recordings import record_sim_demonstrations
    t0 = time.monotonic()
    bag = work / 'bags' / 'memory'
    ok, outcomes = record_sim_demonstrations(bag, demos, 'memory', DEMO_SEED, noise,
                                             progress=progress, lockstep=False,
                                             engine='mujoco', timeout=60.0 + 4.0 * demos)
    if not ok:
        raise RuntimeError(f'recording failed: {len(outcomes)}/{demos} episodes; see '
                           f'{bag}_logs')
    return {'episodes': len(outcomes), 'teleop_noise': noise,
            'demonstration_success': float(np.mean(outcomes)),
            'seconds': time.monotonic() - t0, 'bag': str(bag)}


def train_stage(work, steps, progress):
    from aura_ros.bench.param_files import ASYNC_EXECUTION, write_params_with
    from aura_ros.train.episodes import Settings, train_from_recordings
    t0 = time.monotonic()
    out = work / 'memory'
    if out.exists():
        shutil.rmtree(out)
    report = train_from_recordings([str(work / 'bags' / 'memory')], str(work / 'arm.yaml'),
                                   out, Settings(steps=steps, arms=TRAINED, progress=progress))
    deployed = write_params_with(work / 'arm.yaml', work / 'deployed.yaml', [
        (CONFIG_CHECKPOINT, f"checkpoint: {(out / 'memory.safetensors').resolve()}"),
        ASYNC_EXECUTION])
    return {'steps': steps, 'frames': report['frames'],
            'frames_labelled': report['frames_labelled'],
            'episodes': report['episodes'], 'validation': report['validation'],
            'seconds': time.monotonic() - t0, 'params': str(deployed)}


class Film:
    """Keeps the frames and gate writes of the episode running; saves the first successful
    one as a GIF."""

    def __init__(self, path):
        self.path, self.saved = Path(path), None
        self.frames, self.writes = [], []

    def start(self, seed):
        self.frames, self.writes = [], []

    def frame(self, t, image):
        if self.saved is None:
            self.frames.append((t, image))

    def step(self, t, wrote):
        if self.saved is None and wrote:
            self.writes.append(t)

    def end(self, seed, success):
        if self.saved is None and success and self.frames:
            write_gif(self.path, self.frames, set(self.writes), seed)
            self.saved = {'seed': int(seed), 'frames': len(self.frames),
                          'writes': len(self.writes), 'path': str(self.path)}


def write_gif(path, frames, write_times, seed, scale=5):
    """Frames (t, 64x64x3) -> an enlarged GIF at 30 fps; frames whose processing wrote to the
    memory framed in red with WRITE."""
    from PIL import Image, ImageDraw
    images = []
    t0 = frames[0][0]
    for t, frame in frames:
        img = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale),
                                            Image.NEAREST)
        draw = ImageDraw.Draw(img)
        draw.text((4, img.height - 14), f'seed {seed}  t={t - t0:.2f} s', fill=(255, 255, 255))
        if t in write_times:
            draw.rectangle([0, 0, img.width - 1, img.height - 1], outline=(255, 0, 0), width=6)
            draw.text((img.width - 52, 8), 'WRITE', fill=(255, 40, 40))
        images.append(img)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=33, loop=0)


def frame_cost(frames=300):
    """Median ms of rendering and of physics per 30 fps frame, lockstep in process."""
    from aura_ros.sim.arm import ArmTaskConfig
    from aura_ros.sim.mujoco_arm import FRAME_SUBSTEPS, PHYSICS_HZ, MujocoArmEnv
    env = MujocoArmEnv(ArmTaskConfig(variant='memory'))
    render, physics, seed = [], [], 0
    try:
        env.reset(seed)
        while len(render) < frames:
            _, done = env.step(env.q + env.expert_action())
            render.append(env.render_ms)
            physics.append(env.physics_ms)
            if done:
                seed += 1
                env.reset(seed)
    finally:
        env.close()
    return {'render_ms': float(np.median(render)), 'physics_ms': float(np.median(physics)),
            'physics_steps_per_frame': FRAME_SUBSTEPS, 'physics_hz_nominal': PHYSICS_HZ,
            'frames': frames}


def through_ros_stage(work, episodes):
    """The deployed file through the nodes, the sim in real time."""
    from aura_ros.bench.param_files import write_params_with
    from aura_ros.bench.realtime import EVAL_SEED
    from aura_ros.bench.train_from_recordings import run_deployed
    params = write_params_with(work / 'deployed.yaml', work / 'deployed_ros.yaml', [
        ('    engine: mujoco\n', '    engine: mujoco\n    lockstep: false\n'),
        ('time_from_start: 0.1\n', 'time_from_start: 0.01\n')])
    return run_deployed(params, episodes, EVAL_SEED, work / 'ros_logs',
                        timeout=120.0 + 10.0 * episodes)


def evaluate(params, episodes, arms, work, progress, film_path):
    import torch

    from aura_ros.bench.realtime import RealtimeSettings, params_digest, run_point
    from aura_ros.core import load_memory
    from aura_ros.params import read_params_file
    from aura_ros.paths import resolve_path
    from aura_ros.policy import PolicyRunner
    from aura_ros.train.episodes import load_deployment
    torch.set_num_threads(1)
    deployment = load_deployment(params)
    values, base_dir = read_params_file(params, 'policy_node')
    aura = resolve_path(values['memory.checkpoint'], base_dir, kind='memory checkpoint')
    checkpoints = {arm: aura.with_name('memory.safetensors' if arm == 'aura'
                                       else f'memory_{arm}.safetensors') for arm in TRAINED}
    settings = RealtimeSettings(episodes=episodes, engine='mujoco', task=realtime_task(),
                                control_rate=values.get('control_rate', 100.0),
                                max_velocity=deployment.limits.max_velocity)
    film = Film(film_path)
    cache = Path(work) / 'eval'
    cache.mkdir(parents=True, exist_ok=True)
    points = {}
    # a point is reused only with the same settings, parameter values and weights (the
    # digest reads AURA's checkpoint; the arms' files are written together with it)
    key = settings.key(MODE, 0, params_digest(params))
    for arm in tqdm(arms, desc='closed loop (arms)', disable=not progress):
        path = cache / f'{arm}-{key}.json'
        if path.is_file() and (arm != 'aura' or film.path.is_file()):
            points[arm] = json.loads(path.read_text())
            continue

        def build(_latency_ms, arm=arm):
            memory = load_memory(checkpoints[arm]) if arm in checkpoints else None
            return PolicyRunner(deployment.backbone, memory, deployment.limits)

        point = run_point(MODE, 0, settings, build, progress,
                          observer=film if arm == 'aura' else None)
        if arm == 'aura':
            point['film'] = film.saved
        path.write_text(json.dumps(point, indent=2) + '\n')
        points[arm] = point
    return points, asdict(settings)


def run(episodes=200, demos=400, backbone_demos=400, backbone_steps=1200, memory_steps=2000,
        work='bench/results/mujoco_work', fresh=False, arms=ARMS, progress=True,
        film='bench/results/mujoco_episode.gif', through_ros=20, teleop_noise=TELEOP_NOISE):
    stages = _Stages(work, fresh)
    work = stages.work
    t_start = time.monotonic()
    result = {'episodes': episodes, 'mode': MODE, 'task': asdict(realtime_task())}
    steps = [('backbone', dict(demos=backbone_demos, steps=backbone_steps),
              lambda: train_backbone_stage(work, backbone_demos, backbone_steps, progress)),
             ('record', dict(episodes=demos, teleop_noise=teleop_noise),
              lambda: record_stage(work, demos, teleop_noise, progress)),
             ('train', dict(steps=memory_steps), lambda: train_stage(work, memory_steps,
                                                                     progress))]
    redo = False
    for name, expect, stage in steps:
        done = None if redo else stages.done(name, **expect)
        redo = done is None
        result[name] = done if done is not None else stages.finish(name, stage())
    points, settings = evaluate(result['train']['params'], episodes, arms, work, progress,
                                Path(film))
    result['settings'] = settings
    keep = ('success', 'success_ci95', 'successes', 'writes_per_episode', 'control_rate_hz',
            'period_jitter_p99_ms', 'control_rate_hz_steal_free',
            'period_jitter_p99_ms_steal_free', 'steal_share', 'steal_free_episodes',
            'chunk_age_ms_p50', 'chunk_age_ms_p99', 'joint_step_p99', 'physics_hz',
            'physics_overruns', 'cpu_share', 'control_scheduler', 'wall_s')
    result['arms'] = {arm: {k: p.get(k) for k in keep} for arm, p in points.items()}
    result['film'] = points.get('aura', {}).get('film')
    cost = frame_cost()
    result['render_ms'] = cost['render_ms']
    result['physics_ms_per_frame'] = cost['physics_ms']
    rates = [p['physics_hz'] for p in points.values() if p.get('physics_hz')]
    result['physics_hz'] = float(np.median(rates)) if rates else None
    result['frame_cost'] = cost
    if through_ros:
        result['through_ros'] = through_ros_stage(work, through_ros)
    result['targets'] = targets(result)
    result['elapsed_s'] = time.monotonic() - t_start
    return result


def targets(result):
    arms = result['arms']
    out = {}
    if 'aura' in arms and 'base' in arms:
        out['aura_above_base'] = bool(arms['aura']['success_ci95'][0]
                                      > arms['base']['success_ci95'][1])
    if 'aura' in arms and 'always_write' in arms:
        w = arms['aura']['writes_per_episode']
        ratio = arms['always_write']['writes_per_episode'] / w if w else None
        out['write_reduction_vs_always_write'] = ratio
        out['write_reduction_at_least_7x'] = bool(ratio is not None and ratio >= 7)
    rates = [a['control_rate_hz'] for a in arms.values() if a.get('control_rate_hz')]
    out['control_rate_hz_min'] = min(rates) if rates else None
    target = result['settings']['control_rate']
    out['control_rate_within_1pct'] = bool(rates and min(rates) >= 0.99 * target)
    return out


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(result['arms'])
    arms = result['arms']
    s = np.array([arms[n]['success'] for n in names])
    ci = np.array([arms[n]['success_ci95'] for n in names])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].bar(names, s, yerr=[s - ci[:, 0], ci[:, 1] - s], capsize=4)
    axes[0].set_ylabel('success (Wilson 95%)')
    axes[0].set_ylim(0, 1)
    axes[1].bar(names, [arms[n]['writes_per_episode'] for n in names])
    axes[1].set_ylabel('memory writes per episode')
    axes[1].set_yscale('symlog')
    for ax in axes:
        ax.tick_params(axis='x', rotation=20)
    fig.suptitle(f"SO-101 in MuJoCo, real time, {result['mode']} at "
                 f"{result['settings']['control_rate']:.0f} Hz: {result['episodes']} episodes "
                 f"per arm (trained from {result['record']['episodes']} teleop recordings)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
