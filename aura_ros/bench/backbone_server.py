"""The backbone server under load: 1-16 simulated arms against one server, batching on and off.

    python -m aura_ros.bench backbone-server --json bench/results/backbone_server.json

The server (``python -m aura_ros.backbones.server``, the embedded tiny PI0 of
config/default.yaml) runs in its own process with ``--threads`` torch threads; each arm is a
process of its own (``arms='threads'``: threads of this process), a robot with one request in
flight: it asks for features and a chunk (asynchronous execution: every observation a chunk)
at 30 Hz, or as soon as the previous answer came back when the server is slower. Per point
(clients, mode): throughput (answers per second), p50/p99 latency per request, the server's
CPU use (CPU-seconds per wall second) and its mean batch size, each the median of
``repeats`` runs. ``unbatched`` is the server with ``--max-batch 1``: one request at a time
through the backbone, what the retired one-client TCP server did.
"""
import json
import subprocess
import sys
import threading
import time

import numpy as np
from tqdm.auto import tqdm

CLIENTS = (1, 2, 4, 8, 16)
RATE_HZ = 30.0


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _connect(target):
    """A channel of its own (its own TCP connection, as each robot has) and the stub."""
    import grpc

    from aura_ros.backbones.proto import backbone_pb2_grpc as pb_grpc
    channel = grpc.insecure_channel(target, [('grpc.use_local_subchannel_pool', 1)])
    grpc.channel_ready_future(channel).result(timeout=120)
    return channel, pb_grpc.BackboneStub(channel)


def _arm_main(target, seed, image_size):
    """One arm as a process of its own (``python -m aura_ros.bench.backbone_server TARGET SEED
    SIZE``): connect, print 'ready' after its first answer, run until a line arrives on stdin,
    print the log (JSON)."""
    stop, log = threading.Event(), []
    arm = threading.Thread(target=_arm, args=(target, seed, stop, log, image_size))
    arm.start()
    while not log and arm.is_alive():
        time.sleep(0.01)
    print('ready', flush=True)
    sys.stdin.readline()
    stop.set()
    arm.join()
    print(json.dumps(log), flush=True)


def _arm(target, seed, stop, out, image_size):
    """One robot on a channel of its own: features + chunk at RATE_HZ (or back to back when
    the server is slower), one request in flight; ``out`` gets (start, latency, batch)."""
    from aura_ros.backbones.proto import backbone_pb2 as pb
    channel, stub = _connect(target)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
    state = rng.normal(size=3).astype(np.float32).tolist()
    period, next_tick, k = 1.0 / RATE_HZ, time.monotonic(), 0
    while not stop.is_set():
        wait = next_tick - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        t0 = time.monotonic()
        reply = stub.Infer(pb.InferRequest(image=image.tobytes(), height=image_size,
                                           width=image_size, state=state, want_chunk=True,
                                           has_seed=True, seed=seed * 100_000 + k), timeout=60)
        out.append((t0, time.monotonic() - t0, reply.batch_size))
        k += 1
        next_tick = max(next_tick + period, time.monotonic() - period)
    channel.close()


def _start_arms(kind, clients, target, size):
    """Start the arms; -> (stop(), [each arm's log getter]) once every arm is connected."""
    if kind == 'threads':
        stop, logs = threading.Event(), [[] for _ in range(clients)]
        arms = [threading.Thread(target=_arm, args=(target, i + 1, stop, logs[i], size),
                                 daemon=True) for i in range(clients)]
        for arm in arms:
            arm.start()

        def thread_log(i):
            arms[i].join(timeout=120)
            return logs[i]
        return stop.set, [lambda i=i: thread_log(i) for i in range(clients)]
    procs = [subprocess.Popen([sys.executable, '-m', 'aura_ros.bench.backbone_server', target,
                               str(i + 1), str(size)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for i in range(clients)]
    for proc in procs:
        if proc.stdout.readline().strip() != 'ready':
            raise RuntimeError(f'arm process exited with {proc.wait()} before connecting')

    def stop():
        for proc in procs:
            proc.stdin.write('stop\n')
            proc.stdin.flush()

    def process_log(i):
        log = json.loads(procs[i].stdout.readline())
        procs[i].wait(timeout=30)
        return log
    return stop, [lambda i=i: process_log(i) for i in range(clients)]


def run_point(params, clients, max_batch, max_wait_ms, seconds, threads, warmup=1.0,
              arms='processes'):
    import grpc

    from aura_ros.backbones.proto import backbone_pb2 as pb
    from aura_ros.backbones.proto import backbone_pb2_grpc as pb_grpc
    from aura_ros.sim.process import cpu_seconds
    port = _free_port()
    server = subprocess.Popen([sys.executable, '-m', 'aura_ros.backbones.server', '--params',
                               str(params), '--bind', f'127.0.0.1:{port}', '--max-batch',
                               str(max_batch), '--max-wait-ms', str(max_wait_ms), '--threads',
                               str(threads)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        channel = grpc.insecure_channel(f'127.0.0.1:{port}')
        grpc.channel_ready_future(channel).result(timeout=120)
        stub = pb_grpc.BackboneStub(channel)
        size = stub.Info(pb.InfoRequest(), timeout=30).image_size
        stop, logs = _start_arms(arms, clients, f'127.0.0.1:{port}', size)
        time.sleep(warmup)
        stat = f'/proc/{server.pid}/stat'
        t0, cpu0 = time.monotonic(), cpu_seconds(stat)     # CLOCK_MONOTONIC: one per machine
        time.sleep(seconds)
        t1, cpu1 = time.monotonic(), cpu_seconds(stat)
        stop()
        logs = [log() for log in logs]
        channel.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    done = [(lat, b) for log in logs for (start, lat, b) in log if t0 <= start and
            start + lat <= t1]
    lat = np.array([d[0] for d in done]) * 1e3
    return {'throughput': len(done) / (t1 - t0),
            'p50_ms': float(np.percentile(lat, 50)) if len(lat) else None,
            'p99_ms': float(np.percentile(lat, 99)) if len(lat) else None,
            'server_cpu': (cpu1 - cpu0) / (t1 - t0),
            'mean_batch': float(np.mean([d[1] for d in done])) if done else None,
            'requests': len(done)}


def run(params=None, clients=CLIENTS, seconds=10.0, max_batch=8, max_wait_ms=5.0, threads=1,
        progress=True, arms='processes', repeats=3):
    """Every (clients, mode) point ``repeats`` times, batched and unbatched interleaved (so slow
    spells of the machine hit both); the blocks hold medians over the repeats, ``repeats`` the
    raw runs, and the ratios are medians of the paired ones."""
    from aura_ros.paths import package_share
    params = params or f"{package_share('aura_ros')}/config/default.yaml"
    result = {'clients': list(clients), 'rate_hz': RATE_HZ, 'seconds': seconds,
              'max_batch': max_batch, 'max_wait_ms': max_wait_ms, 'server_threads': threads,
              'params': str(params), 'arms': arms, 'repeats': repeats}
    points = [(r, n, mode) for r in range(repeats) for n in clients
              for mode in ('unbatched', 'batched')]
    raw = {mode: [[] for _ in clients] for mode in ('batched', 'unbatched')}
    for _, n, mode in tqdm(points, desc='backbone server', disable=not progress):
        raw[mode][list(clients).index(n)].append(run_point(
            params, n, max_batch if mode == 'batched' else 1,
            max_wait_ms if mode == 'batched' else 0.0, seconds, threads, arms=arms))
    for mode, runs in raw.items():
        result[mode] = {key: [float(np.median([run[key] for run in point])) for point in runs]
                        for key in runs[0][0]}
    result['runs'] = raw
    ratios = [[b['throughput'] / u['throughput'] for b, u in zip(bs, us)]
              for bs, us in zip(raw['batched'], raw['unbatched'])]
    result['throughput_ratio'] = [float(np.median(r)) for r in ratios]
    result['throughput_ratio_runs'] = ratios
    b, u = result['batched'], result['unbatched']
    targets = {}
    if 8 in clients:
        i = list(clients).index(8)
        targets['throughput_ratio_at_8'] = result['throughput_ratio'][i]
        targets['throughput_ratio_at_8_range'] = [min(ratios[i]), max(ratios[i])]
        targets['throughput_3x_at_8'] = bool(targets['throughput_ratio_at_8'] >= 3)
        targets['p99_below_unbatched_at_8'] = bool(b['p99_ms'][i] < u['p99_ms'][i])
    if 1 in clients:
        i = list(clients).index(1)
        bound = max_wait_ms + 1.1 * u['p99_ms'][i]
        targets['p99_at_1_ms'] = {'batched': b['p99_ms'][i], 'unbatched': u['p99_ms'][i],
                                  'bound': bound}
        targets['p99_at_1_within_wait_plus_10pct'] = bool(b['p99_ms'][i] <= bound)
    result['targets'] = targets
    return result


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for mode, style in (('unbatched', 'o--'), ('batched', 'o-')):
        block = result[mode]
        axes[0].plot(result['clients'], block['throughput'], style, label=mode)
        axes[1].plot(result['clients'], block['p50_ms'], style, label=f'{mode} p50')
        axes[1].plot(result['clients'], block['p99_ms'], style, alpha=0.5, label=f'{mode} p99')
    axes[0].plot(result['clients'], [n * result['rate_hz'] for n in result['clients']], ':',
                 color='grey', label='demand (30 Hz per arm)')
    axes[0].set_ylabel('answers per second')
    axes[1].set_ylabel('latency per request (ms)')
    axes[1].set_yscale('log')
    for ax in axes:
        ax.set_xscale('log', base=2)
        ax.set_xlabel('concurrent arms')
        ax.legend()
    fig.suptitle(f"backbone server, tiny PI0, {result['server_threads']} torch threads, "
                 f"batches of up to {result['max_batch']} ({result['max_wait_ms']:g} ms wait)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == '__main__':
    _arm_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
