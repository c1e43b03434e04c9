"""Every node parameter in one table: name, default, description, range, read-only.

The nodes declare from these tables (with ParameterDescriptor), the README's parameter tables
are checked against them by a test, and offline tools (benchmarks, the remote backbone server)
read the same parameter files without ROS through ``read_params_file``.
No rclpy import here.
"""
import difflib
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from aura_ros import topics

STRING, INTEGER, DOUBLE, BOOL = 'string', 'integer', 'double', 'bool'
STRING_ARRAY, DOUBLE_ARRAY = 'string_array', 'double_array'


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    default: object
    description: str
    range: tuple = None          # (lo, hi) inclusive for integer/double
    choices: tuple = None        # allowed strings
    read_only: bool = False      # structural: fixed once the node starts

    def check(self, value):
        """Reason the value is refused, or None."""
        if value is None:
            return None
        if self.range is not None:
            lo, hi = self.range
            if isinstance(value, float) and not math.isfinite(value):
                return f'{self.name} must be finite, got {value}'
            if not lo <= value <= hi:
                return f'{self.name} must be in [{lo}, {hi}], got {value}'
        if self.choices is not None and value not in self.choices:
            return f'{self.name} must be one of {list(self.choices)}, got {value!r}'
        if self.type == DOUBLE_ARRAY and any(not math.isfinite(v) for v in value):
            return f'{self.name} must contain finite numbers only'
        return None


def _backbone():
    b = 'backbone.'
    return [
        ParamSpec(b + 'adapter', STRING, 'hf_pi0', 'backbone adapter',
                  choices=('hf_pi0', 'vision_features', 'openvla_oft', 'remote'), read_only=True),
        ParamSpec(b + 'model_path', STRING, '', 'model folder: absolute, relative to the '
                  'parameter file, or package://aura_ros/...', read_only=True),
        ParamSpec(b + 'local_files_only', BOOL, True, 'never download weights', read_only=True),
        ParamSpec(b + 'trust_remote_code', BOOL, False, 'allow model code shipped with the '
                  'checkpoint (only a parameter file turns this on)', read_only=True),
        ParamSpec(b + 'dtype', STRING, 'float32', 'model dtype',
                  choices=('float32', 'float16', 'bfloat16'), read_only=True),
        ParamSpec(b + 'device', STRING, 'cpu', "torch device ('cpu', 'cuda', 'cuda:N')",
                  read_only=True),
        ParamSpec(b + 'image_size', INTEGER, 64, 'square backbone input side (pixels)',
                  range=(8, 4096), read_only=True),
        ParamSpec(b + 'action_dim', INTEGER, 3, 'action width (joints)', range=(1, 64),
                  read_only=True),
        ParamSpec(b + 'chunk_size', INTEGER, 8, 'actions per predicted chunk', range=(1, 1024),
                  read_only=True),
        ParamSpec(b + 'steps_per_chunk', INTEGER, 4, 'chunk actions executed before a new '
                  'chunk is predicted', range=(1, 1024), read_only=True),
        ParamSpec(b + 'action_mean', DOUBLE_ARRAY, [], 'action un-normalisation mean '
                  '(empty: identity)', read_only=True),
        ParamSpec(b + 'action_std', DOUBLE_ARRAY, [], 'action un-normalisation std',
                  read_only=True),
        ParamSpec(b + 'state_mean', DOUBLE_ARRAY, [], 'proprioception normalisation mean',
                  read_only=True),
        ParamSpec(b + 'state_std', DOUBLE_ARRAY, [], 'proprioception normalisation std',
                  read_only=True),
        ParamSpec(b + 'feature_source', STRING, 'prefix_mean', 'hidden states pooled into '
                  'the memory features (adapter-specific)', read_only=True),
        ParamSpec(b + 'num_inference_steps', INTEGER, 4, 'flow-matching steps (hf_pi0)',
                  range=(1, 1000), read_only=True),
        ParamSpec(b + 'instruction', STRING, '', 'default task instruction', read_only=True),
        ParamSpec(b + 'seed', INTEGER, 0, 'noise seed for sampled action chunks',
                  range=(0, 2**31 - 1), read_only=True),
        ParamSpec(b + 'noise_scale', DOUBLE, 1.0, 'scale of the flow-matching start noise '
                  '(hf_pi0 only; other adapters ignore it): 1 samples the chunk distribution, '
                  '0 integrates from its mean (the same chunk for the same observation)',
                  range=(0.0, 10.0),
                  read_only=True),
        ParamSpec(b + 'delay_ms', DOUBLE, 0.0, 'added to every observation the backbone '
                  'encodes (ms): emulates a slower VLA for latency experiments',
                  range=(0.0, 60000.0), read_only=True),
        ParamSpec(b + 'options.host', STRING, '127.0.0.1', 'remote/openvla_oft: server host',
                  read_only=True),
        ParamSpec(b + 'options.port', INTEGER, 5601, 'remote/openvla_oft: server port '
                  '(gRPC, aura_ros.backbones.server)', range=(1, 65535), read_only=True),
        ParamSpec(b + 'options.timeout_s', DOUBLE, 10.0, 'remote/openvla_oft: deadline of '
                  'every call (s)', range=(0.1, 600.0), read_only=True),
        ParamSpec(b + 'options.tls_ca', STRING, '', 'remote/openvla_oft: CA certificate (PEM) '
                  'to verify the server with: TLS ("" = plaintext, loopback only)',
                  read_only=True),
        ParamSpec(b + 'options.tls_cert', STRING, '', 'remote/openvla_oft: client certificate '
                  '(PEM), for servers that verify clients', read_only=True),
        ParamSpec(b + 'options.tls_key', STRING, '', 'remote/openvla_oft: client private key '
                  '(PEM)', read_only=True),
        ParamSpec(b + 'options.token_file', STRING, '', 'remote/openvla_oft: file holding the '
                  "server's bearer token (\"\": the AURA_BACKBONE_TOKEN environment variable, "
                  'if set)', read_only=True),
        ParamSpec(b + 'options.connect_timeout_s', DOUBLE, 60.0, 'remote/openvla_oft: wait '
                  'for the server to accept', range=(0.1, 3600.0), read_only=True),
        ParamSpec(b + 'options.server_command', STRING_ARRAY, [], 'remote/openvla_oft: argv '
                  'that starts the server (empty: already running)', read_only=True),
        ParamSpec(b + 'options.action_head', STRING, 'action_head.safetensors',
                  'vision_features: action head file in the model folder', read_only=True),
        ParamSpec(b + 'options.unnorm_key', STRING, '', 'openvla_oft: dataset statistics key',
                  read_only=True),
        ParamSpec(b + 'options.camera_key', STRING, '', 'lerobot (server): the checkpoint '
                  'camera the frame feeds, e.g. observation.images.front ("": its first)',
                  read_only=True),
        ParamSpec(b + 'options.other_cameras', STRING, 'error', "lerobot (server): the "
                  "checkpoint's further cameras get the same frame, a black one, are left out, "
                  'or refuse to start', choices=('error', 'copy', 'zeros', 'omit'),
                  read_only=True),
        ParamSpec(b + 'options.joint_units', STRING, 'rad', 'lerobot (server): units of the '
                  "checkpoint's state and actions (deg: LeRobot's SO-101 follower; the robot "
                  'side stays in radians)', choices=('rad', 'deg'), read_only=True),
    ]


def _memory():
    m = 'memory.'
    return [
        ParamSpec(m + 'checkpoint', STRING, '', 'AURA memory .safetensors (empty: no memory, '
                  'the frozen policy alone)', read_only=True),
        ParamSpec(m + 'enabled', BOOL, True, 'add the memory residual (false: base action '
                  'only; the memory still steps)'),
        ParamSpec(m + 'gate_threshold', DOUBLE, 0.5, 'write iff gate probability > this',
                  range=(0.01, 0.99)),
        ParamSpec(m + 'durable', BOOL, False, 'snapshot the memory state to disk on every gate '
                  'write and restore it on configure', read_only=True),
        ParamSpec(m + 'snapshot_path', STRING, '', 'durable snapshot file (.safetensors)',
                  read_only=True),
    ]


POLICY_PARAMS = _backbone() + _memory() + [
    ParamSpec('command.type', STRING, 'joint_trajectory', 'command message: trajectory_msgs/'
              'JointTrajectory or std_msgs/Float64MultiArray',
              choices=('joint_trajectory', 'float64_multi_array'), read_only=True),
    ParamSpec('command.topic', STRING, topics.JOINT_COMMANDS, 'joint command topic',
              read_only=True),
    ParamSpec('command.joint_names', STRING_ARRAY, ['joint_1', 'joint_2', 'joint_3'],
              'commanded joints, in action order', read_only=True),
    ParamSpec('command.lower_limits', DOUBLE_ARRAY, [-3.14, -3.14, -3.14],
              'joint position lower limits (rad)', read_only=True),
    ParamSpec('command.upper_limits', DOUBLE_ARRAY, [3.14, 3.14, 3.14],
              'joint position upper limits (rad)', read_only=True),
    ParamSpec('command.max_delta', DOUBLE, 0.1, 'largest change of a joint command per step '
              '(rad)', range=(1e-4, 3.2)),
    ParamSpec('command.action_type', STRING, 'delta', "actions are joint deltas added to the "
              "measured positions ('delta') or absolute targets ('absolute')",
              choices=('delta', 'absolute'), read_only=True),
    ParamSpec('command.time_from_start', DOUBLE, 0.1, 'JointTrajectory point time (s)',
              range=(0.0, 10.0)),
    ParamSpec('command.max_velocity', DOUBLE, 10.0, 'async: largest joint speed of the '
              'commands (rad/s; a step is at most this x the control period)',
              range=(1e-3, 100.0)),
    ParamSpec('start_armed', BOOL, False, 'command from the start (false: nothing is sent '
              'until ~/arm is called; robots start disarmed)', read_only=True),
    ParamSpec('execution', STRING, 'sync', "'sync': one command per processed frame "
              "(lockstep simulation, benchmarks); 'async': inference on the newest frame in a "
              'worker, commands from time-stamped chunks at control_rate',
              choices=('sync', 'async'), read_only=True),
    ParamSpec('control_rate', DOUBLE, 100.0, 'async: commands per second', range=(1.0, 500.0)),
    ParamSpec('control_priority', INTEGER, 0, 'async: SCHED_FIFO priority of the control '
              'thread (1-99; 0: the normal scheduler). Needs CAP_SYS_NICE or an rtprio limit; '
              'refused: normal scheduler, /diagnostics says why', range=(0, 99),
              read_only=True),
    ParamSpec('chunk.transition', STRING, 'blend', 'async: how a new chunk meets the one being '
              "executed: 'latest' (switch), 'temporal_ensemble' (weighted average of live "
              "chunks), 'blend' (continuous: the gap fades over chunk.blend_s); the peers' "
              "handovers: 'lerobot_weighted' (LeRobot async inference: 0.3 old + 0.7 new on "
              "overlapping actions, a new chunk when half a chunk is left), 'open_loop' "
              '(openpi: the chunk runs whole, or its first chunk.open_loop_steps actions, then '
              'the arm holds while the next one is inferred)',
              choices=('latest', 'temporal_ensemble', 'blend', 'lerobot_weighted', 'open_loop')),
    ParamSpec('chunk.blend_s', DOUBLE, 0.1, 'async blend: fade of the gap between chunks (s)',
              range=(1e-3, 10.0)),
    ParamSpec('chunk.ensemble_decay', DOUBLE, 0.0, 'async temporal_ensemble: weight '
              'exp(-decay i), i = 0 for the oldest live chunk (0: plain mean)',
              range=(0.0, 100.0)),
    ParamSpec('chunk.open_loop_steps', INTEGER, 0, 'async open_loop: actions of each chunk '
              'run before the next is inferred (0: the whole chunk)', range=(0, 10000)),
    ParamSpec('chunk.max_age', DOUBLE, 1.0, 'async: hold instead of executing a chunk whose '
              'frame is older than this (s; open_loop: that started longer ago than this)',
              range=(0.01, 60.0)),
    ParamSpec('chunk.action_period', DOUBLE, 1 / 30, 'async: time between the actions of a '
              'chunk (s; the frame period the backbone was trained at)', range=(1e-3, 10.0),
              read_only=True),
    ParamSpec('frames_topic', STRING, topics.FRAMES, 'input frames (from perception_node)',
              read_only=True),
    ParamSpec('joint_states_topic', STRING, topics.JOINT_STATES, 'proprioception', read_only=True),
    ParamSpec('instruction_topic', STRING, topics.INSTRUCTION, 'instruction updates',
              read_only=True),
    ParamSpec('instruction', STRING, '', 'task instruction (empty: backbone.instruction)'),
    ParamSpec('frame_timeout', DOUBLE, 0.5, 'watchdog: hold position after this long without '
              'frames (s)', range=(0.02, 60.0)),
    ParamSpec('joint_state_timeout', DOUBLE, 1.0, 'refuse to command when joint states are '
              'older than this (s)', range=(0.02, 60.0)),
    ParamSpec('status_rate', DOUBLE, 1.0, 'MemoryStatus and /diagnostics rate (Hz)',
              range=(0.1, 100.0), read_only=True),
    ParamSpec('autostart', BOOL, True, 'configure and activate on start-up (else wait for '
              'lifecycle transitions)', read_only=True),
    ParamSpec('torch_threads', INTEGER, 1, 'torch intra-op threads for inference',
              range=(1, 256), read_only=True),
]

PERCEPTION_PARAMS = [
    ParamSpec('camera_topic', STRING, topics.CAMERA, 'camera input (sensor data QoS)',
              read_only=True),
    ParamSpec('output_topic', STRING, topics.FRAMES, 'backbone-ready RGB frames',
              read_only=True),
    ParamSpec('backbone.image_size', INTEGER, 64, 'output side: frames are cropped and resized '
              'to image_size x image_size', range=(8, 4096), read_only=True),
    ParamSpec('crop', STRING, 'center', "'center': central square crop; 'none': squash",
              choices=('center', 'none')),
    ParamSpec('max_frame_age', DOUBLE, 0.0, 'drop frames whose stamp is older than this (s; '
              '0 = never)', range=(0.0, 60.0)),
    ParamSpec('max_image_bytes', INTEGER, 64 * 1024 * 1024, 'refuse larger images',
              range=(1, 2**31 - 1), read_only=True),
    ParamSpec('diagnostics_rate', DOUBLE, 1.0, '/diagnostics rate (Hz)', range=(0.1, 100.0),
              read_only=True),
]


SIM_PARAMS = [
    ParamSpec('engine', STRING, 'planar', "'planar': the 3-joint arm drawn with numpy; "
              "'mujoco': the SO-101 (5 joints) in MuJoCo with a perspective camera",
              choices=('planar', 'mujoco'), read_only=True),
    ParamSpec('joint_names', STRING_ARRAY, [], "the arm's joint names in /joint_states and "
              "commands ([] = the engine's: joint_1..3, or the SO-101's shoulder_pan, "
              'shoulder_lift, elbow_flex, wrist_flex, wrist_roll)', read_only=True),
    ParamSpec('variant', STRING, 'memory', "task variant (task v2, aura_ros/sim/arm.py; "
              "'colour': planar only)",
              choices=('visible', 'memory', 'memory_switch', 'memory_hard', 'colour'),
              read_only=True),
    ParamSpec('image_size', INTEGER, 64, 'camera image side (pixels)', range=(16, 512),
              read_only=True),
    ParamSpec('episodes', INTEGER, 0, 'episodes to run, then exit (0 = run forever)',
              range=(0, 2**31 - 1), read_only=True),
    ParamSpec('seed', INTEGER, 0, 'seed of the first episode; episode i uses seed + i',
              range=(0, 2**31 - 1), read_only=True),
    ParamSpec('lockstep', BOOL, True, 'wait for the command answering each frame (false: '
              'real time: physics at physics_rate, frames at rate, whatever the policy does)',
              read_only=True),
    ParamSpec('rate', DOUBLE, 30.0, 'real time: camera frames per second (the task clock)',
              range=(1.0, 1000.0), read_only=True),
    ParamSpec('physics_rate', DOUBLE, 500.0, 'real time: joint integration rate (Hz)',
              range=(10.0, 5000.0), read_only=True),
    ParamSpec('joint_state_rate', DOUBLE, 100.0, 'real time: /joint_states rate (Hz)',
              range=(1.0, 1000.0), read_only=True),
    ParamSpec('command_timeout', DOUBLE, 2.0, 'lockstep: step without a command after this (s)',
              range=(0.01, 600.0), read_only=True),
    ParamSpec('command_type', STRING, 'joint_trajectory', "command message ('joint_trajectory': "
              'in real time followed as joint_trajectory_controller does, linear to each point '
              "by its time_from_start; in lockstep a frame's command is the last point)",
              choices=('joint_trajectory', 'float64_multi_array'), read_only=True),
    ParamSpec('command_topic', STRING, topics.JOINT_COMMANDS, 'joint position commands',
              read_only=True),
    ParamSpec('camera_topic', STRING, topics.CAMERA, 'camera output', read_only=True),
    ParamSpec('joint_states_topic', STRING, topics.JOINT_STATES, 'joint state output',
              read_only=True),
    ParamSpec('policy', STRING, topics.POLICY_NODE, 'the policy node the sim serves (relative '
              'name): each episode starts once its lifecycle state is active, its '
              '~/reset_memory is called at each episode start and its ~/disarm after the last '
              'of a set number of episodes ("" = no policy: teleoperation, recording)',
              read_only=True),
    ParamSpec('start_delay', DOUBLE, 0.0, 'seconds to wait before the first episode',
              range=(0.0, 3600.0), read_only=True),
]

RECORDER_PARAMS = [
    ParamSpec('topics', STRING_ARRAY, list(topics.RECORDED), 'topics to record (relative names '
              "resolve in the recorder's namespace)", read_only=True),
    ParamSpec('output', STRING, '', 'bag directory (empty: aura_bag_<namespace>_<time>)',
              read_only=True),
    ParamSpec('storage', STRING, 'mcap', 'bag storage', choices=('mcap', 'sqlite3'),
              read_only=True),
    ParamSpec('flush_period', DOUBLE, 1.0, 'seconds between flushes to disk',
              range=(0.01, 3600.0), read_only=True),
]

EPISODE_RECORDER_PARAMS = [
    ParamSpec('topics', STRING_ARRAY, list(topics.EPISODE_RECORDED), 'topics to record: the '
              'camera (or aura/frames), joint states, the demonstrated commands (teleop or '
              'leader arm: JointTrajectory, Float64MultiArray or JointState), the instruction '
              'and the episode events (relative names resolve in the namespace)',
              read_only=True),
    ParamSpec('output', STRING, '', 'bag directory (empty: aura_episodes_<namespace>_<time>)',
              read_only=True),
    *RECORDER_PARAMS[2:],
    ParamSpec('instruction', STRING, '', 'task instruction written into every START event '
              '(a message on aura/instruction replaces it)'),
]

SIM_TELEOP_PARAMS = [
    *SIM_PARAMS[:2],                   # engine, joint_names: the sim's
    ParamSpec('variant', STRING, 'memory', "task variant (the sim's)",
              choices=('visible', 'memory', 'memory_switch', 'memory_hard', 'colour'),
              read_only=True),
    ParamSpec('noise', DOUBLE, 0.3, "operator noise: std of each command's deviation from the "
              "expert, as a fraction of the arm's max joint speed per frame (DART)",
              range=(0.0, 2.0), read_only=True),
    ParamSpec('seed', INTEGER, 0, 'seed of the operator noise', range=(0, 2**31 - 1),
              read_only=True),
    ParamSpec('command_type', STRING, 'joint_trajectory', 'demonstrated command message',
              choices=('joint_trajectory', 'float64_multi_array', 'joint_state'),
              read_only=True),
    ParamSpec('command_topic', STRING, topics.TELEOP_COMMANDS, 'demonstrated commands output',
              read_only=True),
    ParamSpec('camera_topic', STRING, topics.CAMERA, 'camera input (one command per frame)',
              read_only=True),
    ParamSpec('joint_states_topic', STRING, topics.JOINT_STATES, 'joint state input',
              read_only=True),
    ParamSpec('events_topic', STRING, topics.SIM_EPISODE_EVENTS, "the sim's episode events",
              read_only=True),
    ParamSpec('episodes', INTEGER, 0, 'exit after this many episodes ended (0 = never)',
              range=(0, 2**31 - 1), read_only=True),
]

MONITOR_PARAMS = [
    ParamSpec('max_events', INTEGER, 0, 'exit after this many gate events (0 = never)',
              range=(0, 2**31 - 1), read_only=True),
    ParamSpec('idle_timeout', DOUBLE, 0.0, 'exit after this many seconds without messages '
              '(0 = never)', range=(0.0, 86400.0), read_only=True),
]

STATUS_PUBLISHER_PARAMS = [
    ParamSpec('count', INTEGER, 20, 'messages to publish before exiting (0 = forever)',
              range=(0, 1_000_000), read_only=True),
    ParamSpec('period', DOUBLE, 0.05, 'seconds between messages', range=(0.001, 10.0),
              read_only=True),
    ParamSpec('write_every', INTEGER, 5, 'write on every N-th step', range=(1, 1000),
              read_only=True),
    ParamSpec('wait_for_subscriber', DOUBLE, 0.0, 'seconds to wait for a gate-events '
              'subscriber before publishing (0 = start at once)', range=(0.0, 600.0),
              read_only=True),
]

# Every node's opt-out of the parameter-file check (``check_parameter_files``).
STRICT = ParamSpec('strict_parameters', BOOL, True, 'refuse a parameter file key this node does '
                   'not declare (a typo), naming the closest declared name; false: log it at '
                   'WARN (files shared with other packages)', read_only=True)
NODE_PARAMS = {'policy_node': POLICY_PARAMS, 'perception_node': PERCEPTION_PARAMS,
               'sim_arm_node': SIM_PARAMS, 'gate_recorder': RECORDER_PARAMS,
               'episode_recorder': EPISODE_RECORDER_PARAMS, 'sim_teleop': SIM_TELEOP_PARAMS,
               'gate_monitor': MONITOR_PARAMS, 'status_publisher': STATUS_PUBLISHER_PARAMS}
for _table in NODE_PARAMS.values():
    _table.append(STRICT)
# Parameters rclpy declares on every node itself.
BUILTIN_PARAMS = ('use_sim_time', 'start_type_description_service')
BUILTIN_PREFIXES = ('qos_overrides.',)


def _md_value(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(str(v) for v in value) + ']'
    return str(value)


def markdown_rows(specs):
    """The README's parameter table rows (one per spec); a test keeps the README equal."""
    rows = []
    for s in specs:
        limits = (f'[{s.range[0]}, {s.range[1]}]' if s.range is not None
                  else ', '.join(s.choices) if s.choices else '')
        rows.append(f'| `{s.name}` | {s.type} | `{_md_value(s.default)}` | {limits} | '
                    f"{'yes' if s.read_only else 'no'} | {s.description} |")
    return rows


def spec_table(specs):
    return {s.name: s for s in specs}


def read_params_file(path, node_name=None, check=True):
    """Parameters of one node from a ROS 2 parameter file, nested blocks flattened to dotted
    names, plus the file's folder (for relative paths). Merges ``/**``, then ``node_name``
    (``/node_name``, ``/**/node_name``: the namespace-agnostic form the shipped files use).
    ``check``: refuse keys the node does not declare (``unknown_parameters``'s rule, the nodes'
    own: a typo is refused, not ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'parameter file not found: {path}')
    sections = file_sections(path)
    merged = {}
    if node_name:
        own = [(pattern, values) for pattern, values in sections
               if pattern in ('/**', f'/{node_name}', f'/**/{node_name}')]
        for pattern in ('/**', f'/{node_name}', f'/**/{node_name}'):
            for section, values in own:
                if section == pattern:
                    merged.update(values)
        if check and node_name in NODE_PARAMS:
            declared = {spec.name for spec in NODE_PARAMS[node_name]}
            problems = unknown_parameters(own, '/' + node_name, declared)
            if problems and merged.get('strict_parameters', True):
                raise ValueError(f'{path}: {problems[0]}; set strict_parameters: false to '
                                 f'allow keys of other packages')
    if not merged and len(sections) == 1:   # a single node block under another name
        merged = dict(sections[0][1])
    return merged, path.parent.resolve()


def file_sections(path):
    """[(node pattern, {dotted name: value}), ...] of a parameter file, in file order: each
    ``ros__parameters`` block with the keys above it joined into an absolute node pattern
    (``/**``, ``/left/policy_node``, ``/**/policy_node``)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f'{path}: a parameter file maps node names to ros__parameters')
    out = []

    def walk(block, parts):
        for key, value in block.items():
            if key == 'ros__parameters' and isinstance(value, dict):
                out.append(('/' + '/'.join(parts) if parts else '/**', flatten(value)))
            elif isinstance(value, dict):
                walk(value, parts + [p for p in str(key).split('/') if p])
    walk(data, [])
    return out


def _matches(pattern, name_tokens):
    """rcl's node-name wildcards: ``**`` any number of tokens, ``*`` exactly one."""
    pat = [t for t in pattern.split('/') if t]

    def match(i, j):
        if i == len(pat):
            return j == len(name_tokens)
        if pat[i] == '**':
            return any(match(i + 1, k) for k in range(j, len(name_tokens) + 1))
        return (j < len(name_tokens) and pat[i] in ('*', name_tokens[j])
                and match(i + 1, j + 1))
    return match(0, 0)


def names_node(pattern, node_name):
    """Whether a section is the node's own (its last token is the node's name) rather than a
    wildcard shared by every node (``/**``, ``/left/**``, ``/*``)."""
    tokens = [t for t in pattern.split('/') if t]
    return bool(tokens) and tokens[-1] == node_name


def package_declared():
    """Every parameter name a node of this package declares."""
    return {spec.name for table in NODE_PARAMS.values() for spec in table}


def _builtin(name):
    return name in BUILTIN_PARAMS or name.startswith(BUILTIN_PREFIXES)


def unknown_parameters(sections, fq_name, declared, extra=()):
    """Why keys in the parameter file sections that apply to node ``fq_name`` are refused:
    a key under a section that names the node (``policy_node``, ``/**/policy_node``) that the
    node does not ``declare``; a key under a wildcard section (``/**``, shared by all nodes)
    only when no node of this package declares it. ``extra``: override names from elsewhere
    (``-p name:=value``), held to the node's own rule. One line per key, naming the closest
    declared name."""
    tokens = [t for t in fq_name.split('/') if t]
    node_name = tokens[-1]
    shared = package_declared()
    problems, seen = [], set()

    def refuse(name, where):
        if name in seen:
            return
        seen.add(name)
        close = difflib.get_close_matches(name, sorted(declared), n=1, cutoff=0.6)
        hint = f' (did you mean {close[0]}?)' if close else ''
        problems.append(f'unknown parameter {name!r} under {where} for {node_name}{hint}')

    for pattern, values in sections:
        if not _matches(pattern, tokens):
            continue
        own = names_node(pattern, node_name)
        for name in values:
            if name in declared or _builtin(name):
                continue
            if own or name not in shared:
                refuse(name, f"'{pattern}'" + ('' if own else ' (a section every node reads; '
                                               'no node of aura_ros declares it)'))
    for name in extra:
        if name not in declared and not _builtin(name):
            refuse(name, 'the command line (-p)')
    return problems


def params_files_and_overrides(argv):
    """(--params-file paths, -p names) of a ROS argument list (the parts inside --ros-args)."""
    files, names, inside = [], [], False
    argv = list(argv or [])
    for i, arg in enumerate(argv):
        if arg == '--ros-args':
            inside = True
        elif arg == '--':
            inside = False
        elif inside and arg == '--params-file' and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif inside and arg in ('-p', '--param') and i + 1 < len(argv):
            name = argv[i + 1].split(':=', 1)[0]
            names.append(name.split(':')[-1])
    return files, names


def flatten(block, prefix=''):
    out = {}
    for key, value in block.items():
        if isinstance(value, dict):
            out.update(flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def with_defaults(params, specs):
    """params completed with the table's defaults; refuses unknown-typed or out-of-range."""
    out = {s.name: s.default for s in specs}
    for name, value in params.items():
        if name in out:
            reason = spec_table(specs)[name].check(value)
            if reason:
                raise ValueError(reason)
        out[name] = value
    return out


def backbone_block(params):
    """The ``backbone:`` block as the dict BackboneConfig takes (options nested)."""
    full = with_defaults({k: v for k, v in params.items() if k.startswith('backbone.')},
                         _backbone())
    block, options = {}, {}
    for name, value in full.items():
        key = name[len('backbone.'):]
        if key.startswith('options.'):
            options[key[len('options.'):]] = value
        else:
            block[key] = value
    block['options'] = options
    return block
