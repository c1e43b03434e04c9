# aura_ros — two commands: `make demo` and `make test`. Both build .venv from nothing first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin

# The ROS 2 wheels install a ROS prefix inside the venv; ament and CMake look for it here.
export AMENT_PREFIX_PATH := $(VENV)
export CMAKE_PREFIX_PATH := $(VENV)
# DDS traffic stays on loopback (tests also pick their own ROS_DOMAIN_ID per run).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export PYTHONUNBUFFERED := 1
export MPLBACKEND := Agg

DEPS_STAMP := $(VENV)/.deps-stamp
INSTALL_STAMP := $(VENV)/.install-stamp
PACKAGE_INPUTS := setup.py pyproject.toml CMakeLists.txt package.xml $(wildcard msg/*.msg) \
	$(wildcard cmake/*) $(shell find launch config models -type f 2>/dev/null)

.PHONY: setup demo demo-mujoco test lint colcon-check clean distclean

setup: $(INSTALL_STAMP)

$(DEPS_STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@touch $(VENV)/COLCON_IGNORE
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

# Editable install: Python edits need no reinstall; msg/, launch/, config/ and models/ do.
$(INSTALL_STAMP): $(DEPS_STAMP) $(PACKAGE_INPUTS)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

demo: setup
	$(BIN)/python -m aura_ros.tools.demo --episodes 5 --out demo_output

# The same through the nodes on the SO-101 in MuJoCo (config/sim_mujoco.yaml).
demo-mujoco: setup
	$(BIN)/python -m aura_ros.tools.demo --episodes 5 --params config/sim_mujoco.yaml \
		--out demo_output_mujoco

lint: setup
	$(BIN)/ruff check aura_ros test launch setup.py

test: setup lint
	$(BIN)/python -m pytest test

colcon-check: setup
	rm -rf build/colcon-ws && mkdir -p build/colcon-ws/src && ln -s $(CURDIR) build/colcon-ws/src/aura_ros
	cd build/colcon-ws && $(BIN)/colcon build --cmake-args -DPython3_EXECUTABLE=$(BIN)/python -DBUILD_TESTING=OFF

clean:
	rm -rf build install log aura_ros/msg aura_ros/*.so demo_output demo_output_mujoco .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
