"""Every topic and service name of the package, in one place and relative: launched in a
namespace (``namespace:=left``) a whole arm's graph moves under ``/left`` and two arms run side
by side without crosstalk. ``/diagnostics`` stays absolute (one aggregator per robot, the ROS
convention). No rclpy here."""
FRAMES = 'aura/frames'                        # sensor_msgs/Image rgb8, backbone-ready
GATE_EVENTS = 'aura/gate_events'              # aura_ros/GateEvent, one per memory step
MEMORY_STATUS = 'aura/memory_status'          # aura_ros/MemoryStatus
JOINT_COMMANDS = 'aura/joint_commands'        # JointTrajectory or Float64MultiArray
INSTRUCTION = 'aura/instruction'              # std_msgs/String
CAMERA = 'camera/image_raw'                   # sensor_msgs/Image from the camera driver
JOINT_STATES = 'joint_states'                 # sensor_msgs/JointState
EPISODE_RESULT = 'sim/episode_result'         # aura_ros/EpisodeResult (simulated arm)
SIM_EPISODE_EVENTS = 'sim/episode_events'     # aura_ros/EpisodeEvent (simulated arm)
FRAME_TRUTH = 'sim/frame_truth'               # aura_ros/FrameTruth (simulated arm, per frame)
EPISODE_EVENTS = 'aura/episode_events'       # aura_ros/EpisodeEvent (episode_recorder)
TELEOP_COMMANDS = 'teleop/joint_commands'    # demonstrated commands (sim_teleop, a leader arm)
POLICY_NODE = 'policy_node'                   # the policy node (services under its name)
POLICY_RESET = 'policy_node/reset_memory'     # std_srvs/Trigger (the policy's ~/reset_memory)
POLICY_REPORT = 'policy_node/report_memory'   # std_srvs/Trigger (the policy's ~/report_memory)
DIAGNOSTICS = '/diagnostics'                  # diagnostic_msgs/DiagnosticArray
# The types of the package's own topics and of the standard inputs: a recorder subscribes to
# these at start (no wait for discovery); a topic whose type varies (joint commands:
# JointTrajectory or Float64MultiArray) is subscribed once its publisher appears, or named with
# its type as ``topic:pkg/msg/Type``.
TYPES = {FRAMES: 'sensor_msgs/msg/Image', GATE_EVENTS: 'aura_ros/msg/GateEvent',
         MEMORY_STATUS: 'aura_ros/msg/MemoryStatus', INSTRUCTION: 'std_msgs/msg/String',
         CAMERA: 'sensor_msgs/msg/Image', JOINT_STATES: 'sensor_msgs/msg/JointState',
         EPISODE_RESULT: 'aura_ros/msg/EpisodeResult',
         SIM_EPISODE_EVENTS: 'aura_ros/msg/EpisodeEvent',
         EPISODE_EVENTS: 'aura_ros/msg/EpisodeEvent',
         FRAME_TRUTH: 'aura_ros/msg/FrameTruth'}
LATCHED = (GATE_EVENTS, SIM_EPISODE_EVENTS, EPISODE_EVENTS)   # transient-local publishers
RECORDED = [GATE_EVENTS, MEMORY_STATUS, JOINT_COMMANDS, FRAME_TRUTH]   # gate_recorder's
EPISODE_RECORDED = [CAMERA, JOINT_STATES, TELEOP_COMMANDS, INSTRUCTION, EPISODE_EVENTS,
                    FRAME_TRUTH]
