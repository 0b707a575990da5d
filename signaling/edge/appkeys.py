"""Typed application state shared by the server's modules."""

from __future__ import annotations

import weakref
from pathlib import Path

from aiohttp import web
from peercam.signaling.registry.streams import StreamRegistry
from peercam.signaling.settings.config import ServerConfig
from peercam.signaling.settings.limits import ConnectionsByAddress

CONFIG = web.AppKey("config", ServerConfig)
REGISTRY = web.AppKey("registry", StreamRegistry)
SOCKETS = web.AppKey("sockets", weakref.WeakSet)
CONNECTIONS_BY_ADDRESS = web.AppKey("connections_by_address", ConnectionsByAddress)
WEB_ROOT = web.AppKey("web_root", Path)
RECORDINGS = web.AppKey("recordings", object)  # --record-dir: Recordings (signaling/recording/recordings.py)
CLUSTER = web.AppKey("cluster", object)  # --redis: Cluster (signaling/cluster/cluster.py)
METRICS = web.AppKey("metrics", object)  # Metrics (signaling/edge/metrics.py; it imports this module)
