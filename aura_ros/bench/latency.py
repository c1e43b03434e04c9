"""Camera frame -> joint command latency through the real nodes (separate processes, DDS).

This process plays the camera and the arm: it publishes simulated-arm frames on
/camera/image_raw at ``rate`` Hz and joint states, while perception_node and policy_node run as
their own processes with the default parameter file. For every GateEvent the policy publishes
(right after its command), latency = receive time - the camera frame's stamp (one clock: one
machine). The policy's own timings split each step into backbone and memory; transport is the
rest. Stale frames used come from the policy node's own count (a frame processed although a
newer one had already arrived).
"""
import json
import signal
import time

import numpy as np

from aura_ros.tools.processes import executable


def run(seconds=30.0, rate=60.0, params=None, warmup=3.0, progress=True):
    import os
    import subprocess

    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    from aura_ros.imaging import rgb_to_msg_fields
    from aura_ros.msg import GateEvent
    from aura_ros.paths import package_share
    from aura_ros.sim.arm import ArmEnv, ArmTaskConfig
    params = params or f"{package_share('aura_ros')}/config/default.yaml"
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    args = ['--ros-args', '--params-file', params]
    procs = [subprocess.Popen([executable(n), *args], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
             for n in ('perception_node', 'policy_node')]
    rclpy.init()
    node = rclpy.create_node('latency_bench')
    events, commands = [], []
    node.create_subscription(GateEvent, '/aura/gate_events',
                             lambda m: events.append((time.time(), m)), 1000)
    node.create_subscription(JointTrajectory, '/aura/joint_commands',
                             lambda m: commands.append(time.time()), 1000)
    camera = node.create_publisher(Image, '/camera/image_raw', qos_profile_sensor_data)
    joints = node.create_publisher(JointState, '/joint_states', 10)
    report = node.create_client(Trigger, '/policy_node/report_memory')
    sim = ArmEnv(ArmTaskConfig(variant='memory'))
    frames = [sim.reset(0)]
    while not sim.done:
        frames.append(sim.step(sim.q + sim.expert_action())[0])
    try:
        deadline = time.monotonic() + 120
        while not report.wait_for_service(timeout_sec=0.2) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        while camera.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        period = 1.0 / rate
        start = time.monotonic()
        next_t, i, published = start, 0, 0
        while time.monotonic() - start < seconds + warmup:
            now = time.monotonic()
            if now >= next_t:
                stamp = node.get_clock().now().to_msg()
                js = JointState(name=['joint_1', 'joint_2', 'joint_3'],
                                position=[1.57, -2.5, 2.5])
                js.header.stamp = stamp
                joints.publish(js)
                img = Image(**rgb_to_msg_fields(frames[i % len(frames)]))
                img.header.stamp = stamp
                img.header.frame_id = 'bench_camera'
                camera.publish(img)
                i += 1
                published += 1
                next_t += period
            rclpy.spin_once(node, timeout_sec=max(0.0, min(next_t - time.monotonic(), 0.005)))
        end = time.time()
        future = report.call_async(Trigger.Request())
        t0 = time.monotonic()
        while not future.done() and time.monotonic() - t0 < 10:
            rclpy.spin_once(node, timeout_sec=0.05)
        counts = json.loads(future.result().message)['counts'] if future.done() else {}
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        node.destroy_node()
        rclpy.try_shutdown()
    steady_from = end - seconds
    steady = [(t, m) for t, m in events if t >= steady_from]
    e2e = np.array([1e3 * (t - (m.frame_stamp.sec + 1e-9 * m.frame_stamp.nanosec))
                    for t, m in steady])
    step_ms = np.array([m.step_latency_ms for _, m in steady])
    backbone = np.array([m.backbone_ms for _, m in steady])
    memory = np.array([m.memory_ms for _, m in steady])
    cmd_steady = [t for t in commands if t >= steady_from]
    return dict(
        seconds=seconds, camera_rate_hz=rate, frames_published=published,
        gate_events=len(steady), p50_ms=float(np.percentile(e2e, 50)),
        p99_ms=float(np.percentile(e2e, 99)), mean_ms=float(e2e.mean()),
        rate_hz=len(cmd_steady) / seconds,
        step_ms_median=float(np.median(step_ms)), backbone_ms_median=float(np.median(backbone)),
        memory_ms_median=float(np.median(memory)),
        transport_and_queue_ms_median=float(np.median(e2e - step_ms)),
        memory_share=float(np.median(memory / step_ms)),
        stale_frames=int(counts.get('stale_frames_used', -1)),
        skipped_frames=int(counts.get('skipped_frames', -1)),
        latencies_ms=e2e.round(3).tolist())


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(result['latencies_ms'], bins=60, color='tab:blue')
    for q, style in (('p50_ms', '--'), ('p99_ms', ':')):
        ax.axvline(result[q], color='k', ls=style, label=f"{q[:3]} {result[q]:.1f} ms")
    ax.set_xlabel('camera frame -> joint command (ms)')
    ax.set_title(f"Latency through the nodes: {result['rate_hz']:.1f} Hz sustained, memory "
                 f"{100 * result['memory_share']:.2f}% of a step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
