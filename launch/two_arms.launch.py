"""Two simulated arms side by side, each with its own perception, policy and gate recorder, in
the namespaces ``left`` and ``right`` (every aura_ros topic name is relative, so nothing is
shared). Shuts down when both arms have finished their episodes.

    ros2 launch aura_ros two_arms.launch.py episodes:=3

test/ros2/test_launch_files.py launches it with the upstream launch tools and checks that
each policy drives only its own arm; ``aura_ros.tools.demo.run_arms`` starts the same graph as
processes (the reliability benchmark's two-arm launches).
"""
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

ARMS = ('left', 'right')


def generate_launch_description():
    params_file = LaunchConfiguration('params_file')
    finished = set()
    actions = [
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [FindPackageShare('aura_ros'), 'config', 'default.yaml'])),
        DeclareLaunchArgument('episodes', default_value='3'),
        DeclareLaunchArgument('bag', default_value='', description='bag directory prefix: '
                              'each arm records to <bag>_<arm> ("": aura_bag_<arm>_<time>)'),
    ]
    for i, arm in enumerate(ARMS):
        sim = Node(package='aura_ros', executable='sim_arm_node', name='sim_arm_node',
                   namespace=arm, output='screen',
                   parameters=[{'episodes': LaunchConfiguration('episodes'),
                                'seed': 1000 * (i + 1)}])

        def on_exit(event, context, arm=arm):
            finished.add(arm)
            return [EmitEvent(event=Shutdown())] if finished == set(ARMS) else []

        actions += [
            Node(package='aura_ros', executable='perception_node', name='perception_node',
                 namespace=arm, output='screen', parameters=[params_file]),
            Node(package='aura_ros', executable='policy_node', name='policy_node',
                 namespace=arm, output='screen', parameters=[params_file]),
            Node(package='aura_ros', executable='gate_recorder', name='gate_recorder',
                 namespace=arm, output='screen',
                 parameters=[{'output': PythonExpression(
                     ["'", LaunchConfiguration('bag'), "' and '", LaunchConfiguration('bag'),
                      f"_{arm}' or ''"])}]),
            sim,
            RegisterEventHandler(OnProcessExit(target_action=sim, on_exit=on_exit)),
        ]
    return LaunchDescription(actions)
