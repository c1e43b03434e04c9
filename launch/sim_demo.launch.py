"""The simulated camera arm driven by the embedded default VLA + AURA memory; gate events are
recorded to a rosbag2 directory. Shuts down when the episodes are done.

    ros2 launch aura_ros sim_demo.launch.py episodes:=5 variant:=memory bag:=demo_bag

``namespace:=left`` runs the whole graph under /left (every topic name is relative).
"""
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description():
    params_file = LaunchConfiguration('params_file')
    namespace = LaunchConfiguration('namespace')
    sim = Node(package='aura_ros', executable='sim_arm_node', name='sim_arm_node',
               namespace=namespace, output='screen', parameters=[{
                   'episodes': LaunchConfiguration('episodes'),
                   'variant': LaunchConfiguration('variant'),
                   'seed': LaunchConfiguration('seed')}])
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [FindPackageShare('aura_ros'), 'config', 'default.yaml'])),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the whole graph'),
        DeclareLaunchArgument('episodes', default_value='5'),
        DeclareLaunchArgument('variant', default_value='memory'),
        DeclareLaunchArgument('seed', default_value='1000'),
        DeclareLaunchArgument('bag', default_value='', description='rosbag2 directory for '
                              'the gate events ("": aura_bag_<namespace>_<time>)'),
        Node(package='aura_ros', executable='perception_node', name='perception_node',
             namespace=namespace, output='screen', parameters=[params_file]),
        Node(package='aura_ros', executable='policy_node', name='policy_node',
             namespace=namespace, output='screen', parameters=[params_file]),
        Node(package='aura_ros', executable='gate_recorder', name='gate_recorder',
             namespace=namespace, output='screen',
             parameters=[{'output': LaunchConfiguration('bag')}]),
        sim,
        RegisterEventHandler(OnProcessExit(target_action=sim,
                                           on_exit=[EmitEvent(event=Shutdown())])),
    ])
