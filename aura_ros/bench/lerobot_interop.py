"""LeRobot interoperability end to end on the MuJoCo SO-101 (issue 30): the memory trained from
a LeRobot dataset, and a LeRobot ACT policy as the frozen backbone.

    python -m aura_ros.bench lerobot --json bench/results/lerobot.json \\
        [--lerobot-python .lerobot-venv/bin/python] [--work bench/results/lerobot_work]

Needs the LeRobot env (bench/lerobot/setup_env.sh) for the ACT part; every stage is kept under
``--work`` and resumed (hours on 2 cores). The recordings are the learning curve's MuJoCo bags
(``bench/results/tfr_work/mujoco/bags``, recorded through the nodes if missing: task v2, plain
variant, the scripted expert as a teleop device with operator noise 0.3).

1. **Export.** The first ``--episodes`` (100) and all ``--act-episodes`` (400) recorded episodes
   through ``train export-lerobot`` (LeRobotDataset v3.0, AV1 video, degrees).
2. **Import.** AURA, ``no_memory`` and ``cue_oracle`` trained from the 100-episode *dataset*
   (``train episodes``'s code: the curve's ``train_point``), on the tiny PI0
   (config/sim_mujoco.yaml); evaluated in closed loop in process on the curve's 200 evaluation
   seeds (so the numbers sit beside the curve's 100-episode point, trained from the same
   episodes' bags), and AURA deployed by ``train deploy``'s edit of the parameter file and run
   through the nodes (``--node-episodes``, lockstep).
3. **ACT.** ``lerobot-train`` (LeRobot's own trainer, in its env) trains a small ACT from scratch
   on the 400-episode dataset (``ACT_ARGS``: one 64x64 camera, chunk 16, dim_model 128,
   ResNet-18 without pretrained weights, no VAE, lr 1e-4, ``--act-steps``). The server serves
   it (``--backend lerobot``, ``joint_units: deg``: LeRobot's degrees to the robot's radians;
   ``action_type: absolute``: ACT predicts joint targets); AURA and ``no_memory`` are trained
   on its features from the 100-episode dataset; the frozen ACT alone and ACT + AURA run
   through the nodes on the same seeds.
"""
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import yaml

ACT_ARGS = ['--policy.type=act', '--policy.device=cpu', '--policy.push_to_hub=false',
            '--policy.pretrained_backbone_weights=null', '--policy.chunk_size=16',
            '--policy.n_action_steps=16', '--policy.dim_model=128',
            '--policy.dim_feedforward=512', '--policy.n_encoder_layers=2',
            '--policy.n_decoder_layers=1', '--policy.use_vae=false',
            '--policy.optimizer_lr=1e-4', '--policy.optimizer_lr_backbone=1e-4',
            '--batch_size=16', '--num_workers=0', '--seed=0', '--wandb.enable=false',
            '--dataset.video_backend=pyav', '--log_freq=100']
IMPORT_ARMS = ('aura', 'no_memory', 'cue_oracle')
ACT_ARMS = ('aura', 'no_memory')
NODE_SEED = 7000                 # the nodes' episodes (sim seeds NODE_SEED + i)
PORT = 5611                      # the LeRobot server's (loopback)


def export(bags, params, out, progress):
    """A LeRobot dataset of ``bags`` at ``out``, kept while the bags and the code that reads
    and writes them are the same (``out``/aura_ros_export.json), else written again."""
    import json

    from aura_ros.bench.code_key import code_digest, result_key
    from aura_ros.train.episodes import Settings, export_lerobot, source_key
    key = result_key(code=code_digest('train'), bags=[source_key(b) for b in bags],
                     params=Path(params).read_text())
    marker = out / 'aura_ros_export.json'
    if marker.is_file() and json.loads(marker.read_text()).get('key') == key:
        return out
    shutil.rmtree(out, ignore_errors=True)
    export_lerobot([str(b) for b in bags], str(params), out, Settings(progress=progress))
    marker.write_text(json.dumps({'key': key}) + '\n')
    return out


def deployed(params, checkpoint, out):
    """``train deploy``'s edit: the parameter file with memory.checkpoint set (or the memory
    disabled with ``checkpoint=None``)."""
    from aura_ros.train.__main__ import set_checkpoint
    text = Path(params).read_text()
    if checkpoint is None:
        data = yaml.safe_load(text)
        data['/**/policy_node']['ros__parameters']['memory'] = {'checkpoint': '',
                                                                'enabled': False}
        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = set_checkpoint(text, str(Path(checkpoint).resolve()))
    out.write_text(text)
    return out


def through_nodes(params, episodes, logs, extra_key=None):
    """``run_deployed`` on the parameter file, cached (``logs``/result.json) by the file's text,
    the checkpoint it loads, the episodes and the code that runs them; ``extra_key``: what
    else the run depends on (the served policy's checkpoint)."""
    import hashlib

    from aura_ros.bench.code_key import code_digest, load_cached, result_key, store
    from aura_ros.bench.train_from_recordings import EVALUATED_BY, run_deployed
    if episodes <= 0:
        return None
    text = Path(params).read_text()
    memory = yaml.safe_load(text)['/**/policy_node']['ros__parameters']['memory']
    weights = (hashlib.sha256(Path(memory['checkpoint']).read_bytes()).hexdigest()
               if memory.get('checkpoint') else None)
    key = result_key(code=code_digest(*EVALUATED_BY, 'nodes'), params=text, weights=weights,
                     episodes=episodes, seed=NODE_SEED, extra=extra_key)
    cache = Path(logs) / 'result.json'
    cached = load_cached(cache, key)
    if cached is None:
        cached = run_deployed(params, episodes, NODE_SEED, logs,
                              timeout=120.0 + 30.0 * episodes)
        store(cache, key, cached)
    return cached


def train_act(lerobot_python, dataset, out, steps, log=print):
    """LeRobot's own trainer on ``dataset``; returns the final pretrained_model folder, kept
    while the trainer's arguments and the dataset are the same (``out``/aura_ros_act.json),
    else trained again from scratch."""
    import json

    from aura_ros.bench.code_key import result_key
    from aura_ros.train.episodes import source_key
    final = out / 'checkpoints' / 'last' / 'pretrained_model'
    args = [*ACT_ARGS, f'--steps={steps}', f'--save_freq={steps}']
    key = result_key(args=args, dataset=source_key(dataset))
    marker = out / 'aura_ros_act.json'
    if (final / 'model.safetensors').is_file() and marker.is_file() and \
            json.loads(marker.read_text()).get('key') == key:
        return final
    shutil.rmtree(out, ignore_errors=True)
    trainer = Path(lerobot_python).parent / 'lerobot-train'
    cmd = [str(trainer), f'--dataset.repo_id=local/{dataset.name}', f'--dataset.root={dataset}',
           *args, f'--output_dir={out}']
    log(' '.join(cmd))
    env = dict(os.environ, HF_HUB_OFFLINE='1', HF_LEROBOT_HOME=str(out.parent / 'hf_home'))
    with open(out.parent / 'act_train.log', 'w') as fh:
        subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=True)
    marker.write_text(json.dumps({'key': key, 'args': args}) + '\n')
    return final


def act_params(base_params, checkpoint, port, out):
    """The robot's parameter file for the served ACT: the SO-101 file with a ``remote``
    backbone (the server is started by this benchmark: ``options.server_command`` could start
    it instead) and absolute joint targets."""
    data = yaml.safe_load(Path(base_params).read_text())
    data['/**']['ros__parameters']['backbone'] = {
        'adapter': 'remote', 'model_path': str(checkpoint), 'local_files_only': True,
        'device': 'cpu', 'image_size': 64, 'action_dim': 5, 'chunk_size': 16,
        'steps_per_chunk': 4, 'instruction': 'reach the marked pad', 'seed': 0,
        'options': {'host': '127.0.0.1', 'port': port, 'timeout_s': 30.0,
                    'connect_timeout_s': 120.0, 'camera_key': 'observation.images.front',
                    'joint_units': 'deg'}}
    policy = data['/**/policy_node']['ros__parameters']
    policy['command']['action_type'] = 'absolute'
    policy['memory'] = {'checkpoint': '', 'enabled': True, 'gate_threshold': 0.5,
                        'durable': False}
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


class Server:
    """``python -m aura_ros.backbones.server --backend lerobot`` in the LeRobot env."""

    def __init__(self, lerobot_python, params, port, log_path):
        here = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=str(here), HF_HUB_OFFLINE='1')
        self.log = open(log_path, 'w')
        self.proc = subprocess.Popen([str(lerobot_python), '-m', 'aura_ros.backbones.server',
                                      '--params', str(params), '--backend', 'lerobot',
                                      '--bind', f'127.0.0.1:{port}'], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def check_port(port):
    """The server's port must be free (it is part of the cached files' keys, so it is fixed)."""
    with socket.socket() as s:
        try:
            s.bind(('127.0.0.1', port))
        except OSError:
            raise RuntimeError(f'127.0.0.1:{port} is in use: stop what listens there or pass '
                               f'--port') from None


def run(work='bench/results/lerobot_work', lerobot_python='.lerobot-venv/bin/python',
        episodes=100, act_episodes=400, eval_episodes=200, node_episodes=50, act_steps=2500,
        params=None, port=PORT, progress=True):
    import torch

    from aura_ros.bench.train_from_recordings import (
        CHUNK,
        evaluate_point,
        record_chunks,
        train_point,
    )
    from aura_ros.paths import package_share
    from aura_ros.train.episodes import Settings, load_deployment
    torch.set_num_threads(1)
    t0 = time.monotonic()
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    params = Path(params or Path(package_share('aura_ros')) / 'config' / 'sim_mujoco.yaml')
    bags = record_chunks('bench/results/tfr_work', 'mujoco', act_episodes // CHUNK, 0.3,
                         progress)
    small = export(bags[:episodes // CHUNK], params, work / f'so101_sim_{episodes}', progress)
    large = export(bags, params, work / f'so101_sim_{act_episodes}', progress)
    settings = Settings(steps=2000, seed=0, progress=progress,
                        cache_dir=str(work / 'features_pi0'))
    # 2. the memory from a LeRobot dataset, on the tiny PI0
    folder = work / f'import_{episodes}'
    trained = train_point([small], params, folder, IMPORT_ARMS, settings)
    backbone = load_deployment(str(params)).backbone
    imported = evaluate_point(backbone, trained, folder, eval_episodes, 'mujoco', progress)
    for arm, (_, seconds) in trained.items():
        imported[arm]['train_seconds'] = seconds
    node = through_nodes(deployed(params, folder / 'memory_aura.safetensors',
                                  folder / 'deployed.yaml'), node_episodes, folder / 'nodes')
    # 3. a LeRobot ACT as the frozen backbone
    result = {'task': 'v2, plain variant (memory): one cue at a random onset',
              'engine': 'mujoco', 'episodes': episodes, 'eval_episodes': eval_episodes,
              'node_episodes': node_episodes, 'node_first_seed': NODE_SEED,
              'datasets': {p.name: yaml.safe_load((p / 'meta' / 'info.json').read_text())[
                  'total_frames'] for p in (small, large)},
              'import': {'arms': imported, 'through_nodes': node}}
    if not Path(lerobot_python).exists():
        result['act'] = None
        print(f'{lerobot_python} missing: the ACT part needs bench/lerobot/setup_env.sh')
        result['elapsed_s'] = time.monotonic() - t0
        return result
    act_dir = work / 'act'
    act_dir.mkdir(parents=True, exist_ok=True)
    # the venv's python, not what its symlink points at: lerobot-train lies beside it
    checkpoint = train_act(Path(os.path.abspath(lerobot_python)), large.resolve(),
                           (act_dir / 'train').resolve(), act_steps)
    check_port(port)
    robot = act_params(params, checkpoint, port, act_dir / 'act_so101.yaml')
    import hashlib
    served = hashlib.sha256((checkpoint / 'model.safetensors').read_bytes()).hexdigest()
    with Server(lerobot_python, robot, port, act_dir / 'server.log'):
        act_settings = Settings(steps=2000, seed=0, progress=progress,   # one cache per ACT
                                cache_dir=str(work / f'features_act_{served[:12]}'))
        act_trained = train_point([small], robot, act_dir, ACT_ARMS, act_settings)
        base = through_nodes(deployed(robot, None, act_dir / 'act_alone.yaml'),
                             node_episodes, act_dir / 'nodes_alone', served)
        with_memory = through_nodes(deployed(robot, act_dir / 'memory_aura.safetensors',
                                             act_dir / 'act_aura.yaml'), node_episodes,
                                    act_dir / 'nodes_aura', served)
    result['act'] = {'lerobot_train': ACT_ARGS + [f'--steps={act_steps}'],
                     'checkpoint': str(checkpoint.relative_to(work.resolve())
                                       if checkpoint.is_relative_to(work.resolve())
                                       else checkpoint),
                     'train_seconds': {a: s for a, (_, s) in act_trained.items()},
                     'through_nodes': {'act_alone': base, 'act_aura': with_memory}}
    if base and with_memory:
        result['act']['aura_minus_alone'] = with_memory['success'] - base['success']
    result['elapsed_s'] = time.monotonic() - t0
    return result


def section(lr, curve=None):
    """The report's lines (bench/report.py); ``curve``: train_from_recordings.json's MuJoCo
    curve, to set the import beside the same episodes' bags."""
    def cell(r):
        lo, hi = r['success_ci95']
        return f"{r['success']:.3f} [{lo:.3f}, {hi:.3f}] @ {r['writes_per_episode']:.2f} w/ep"
    n = lr['episodes']
    lines = ['## LeRobot interoperability (`lerobot.json`)', '',
             f"The MuJoCo SO-101's recorded episodes exported as LeRobotDataset v3.0 "
             f"(`train export-lerobot`), then used as a LeRobot user would ({lr['task']}).", '',
             f"**The memory trained from the dataset** ({n} episodes, the tiny PI0, "
             f"{lr['eval_episodes']} lockstep closed-loop episodes on the curve's seeds; the "
             f'bags of the same episodes: the learning curve\'s {n}-episode point):', '',
             '| arm | from the LeRobot dataset | from the bags (curve) |', '|---|---|---|']
    point = (curve or {}).get('curve', {}).get(str(n), {}).get('arms', {})
    for arm, r in lr['import']['arms'].items():
        lines.append(f'| {arm} | {cell(r)} | {cell(point[arm]) if arm in point else "-"} |')
    node = lr['import']['through_nodes']
    if node:
        lines += ['', f"Deployed (`train deploy`'s edit of config/sim_mujoco.yaml) and run "
                  f"through the nodes, {node['episodes']} episodes (seeds "
                  f"{lr['node_first_seed']}+): {cell(node)}."]
    act = lr.get('act')
    if act:
        alone, aura = act['through_nodes']['act_alone'], act['through_nodes']['act_aura']
        lines += ['', '**A LeRobot ACT as the frozen backbone** (trained from scratch with '
                  '`lerobot-train` on the 400-episode export, served by `python -m '
                  'aura_ros.backbones.server --backend lerobot`; AURA trained on its encoder '
                  f'features from the {n}-episode export), through the nodes on the same '
                  'seeds:', '', '| policy | success, writes/episode |', '|---|---|',
                  f'| ACT alone | {cell(alone)} |', f'| ACT + AURA | {cell(aura)} |']
    return lines + ['']

