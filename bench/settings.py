"""Production settings plus the floor view's URL (see bench/floor.py), for bench/load.py only."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor"
