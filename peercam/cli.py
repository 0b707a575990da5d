"""``peercam``: the command line for the server, the camera peer and the viewer."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from peercam.peers.camera.opusbitrates import DEFAULT_AUDIO_BITRATE, MAX_OPUS_KBPS_PER_CHANNEL
from peercam.shared.durations import parse_duration
from peercam.shared.errors import StartupError
from peercam.shared.protocol import ProtocolError, RelayFormat, check_display_name, check_stream_name
from peercam.signaling.edge.auth import make_token
from peercam.signaling.settings.limits import Limits
from peercam.signaling.settings.turn import TurnConfig

# Each command imports what it runs when it runs: `peercam --help`, `peercam token` and
# `peercam serve` load no aiortc, PyAV or OpenCV, and `peercam view` reaches its first
# frame sooner.
if TYPE_CHECKING:
    from peercam.peers.camera.audiosources import AudioSource
    from peercam.peers.camera.camera import CameraOptions
    from peercam.peers.camera.encodedsources import EncodedVideoSource
    from peercam.peers.camera.sources import VideoSource
    from peercam.peers.ice import IceOptions
    from peercam.peers.signaling_client import Servers
    from peercam.shared.recordingconfig import RecordingConfig
    from peercam.signaling.settings.config import ServerConfig


def _add_ice_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ice-server", action="append", default=[], metavar="URL",
                        help="stun:HOST[:PORT] or turn:USER:PASS@HOST[:PORT][?transport=tcp]; "
                             "repeatable; default: the ones the server hands out (none unless configured)")
    parser.add_argument("--ice-host", action="append", default=[], metavar="ADDR",
                        help="a local address or interface ICE may offer (repeatable; 127.0.0.1 works; "
                             "'*' means every interface but loopback); default: every interface but loopback")


#: The signaling server a camera or viewer uses when given no --server.
DEFAULT_SERVER = "http://127.0.0.1:8080"


def _add_peer_options(parser: argparse.ArgumentParser) -> None:
    # No default list here: argparse would append the flags given to it.
    parser.add_argument("--server", action="append", type=_server_url, metavar="URL",
                        help="the signaling server's URL; repeatable: on losing the one in use, the "
                             f"next is tried, round robin (default: {DEFAULT_SERVER})")
    parser.add_argument("--stream", default="demo", help="the stream name")
    _add_ice_options(parser)
    parser.add_argument("--ice-transport", choices=("all", "turn"), default="all",
                        help="'turn' uses TURN relay candidates only (still WebRTC, not the relay)")
    parser.add_argument("--token", default="", help="a token from `peercam token` (when the server asks)")
    parser.add_argument("--ca", help="CA certificate (PEM) for an https:// server with a private CA")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peercam", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: aiortc too)")
    parser.add_argument("--debug", action="store_true", help="a failure shows its traceback too")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", help="run the signaling server and web page")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=_port, default=8080)
    _add_ice_options(serve_cmd)
    serve_cmd.add_argument("--turn-secret",
                           help="coturn's static-auth-secret: mint TURN credentials for each client")
    serve_cmd.add_argument("--turn-url", action="append", default=[], metavar="URL",
                           help="turn:HOST:PORT[?transport=tcp] or turns:HOST:PORT; repeatable")
    serve_cmd.add_argument("--turn-ttl", type=int, default=3600, help="seconds TURN credentials stay valid")
    serve_cmd.add_argument("--secret", help="signs and checks tokens (see `peercam token`)")
    serve_cmd.add_argument("--cert", help="serve HTTPS/WSS with this certificate chain (PEM)")
    serve_cmd.add_argument("--key", help="the private key of --cert (PEM)")
    serve_cmd.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                           help="another browser origin allowed to open /ws besides the server's own "
                                "(repeatable; '*': any)")
    serve_cmd.add_argument("--allowed-host", action="append", default=[], metavar="HOST",
                           help="a host name a server on loopback also answers to (repeatable; "
                                "default: loopback names and addresses only)")
    serve_cmd.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                           help="a reverse proxy (address or network) whose X-Forwarded-For names "
                                "the client (repeatable)")
    serve_cmd.add_argument("--auth", choices=("open", "publish", "all"), default="open",
                           help="open: anyone; publish: cameras need a token; all: viewers too")
    serve_cmd.add_argument("--talk", choices=("off", "viewers", "token"), default="off",
                           help="who may talk back through a camera: nobody, any viewer, or viewers whose "
                                "token carries the talk right (peercam token --role talk)")
    serve_cmd.add_argument("--talk-max", default="60s", metavar="DURATION",
                           help="how long one speaker may hold the floor (default: 60s)")
    defaults = Limits()
    serve_cmd.add_argument("--max-viewers", type=int, default=defaults.viewers_per_stream,
                           help="viewers per stream")
    serve_cmd.add_argument("--max-streams", type=int, default=defaults.streams)
    serve_cmd.add_argument("--max-whip-publishers", type=int, default=defaults.whip_publishers,
                           help="WHIP publishers at once (their media runs through the server's process)")
    serve_cmd.add_argument("--max-connections-per-address", type=int,
                           default=defaults.connections_per_address)
    serve_cmd.add_argument("--max-message-rate", type=float, default=defaults.messages_per_second,
                           help="text messages per second from one viewer")
    serve_cmd.add_argument("--stalled-reader-timeout", type=float, default=defaults.stalled_reader_seconds,
                           metavar="SECONDS", help="drop an MJPEG reader whose socket takes nothing so long")
    serve_cmd.add_argument("--redis", default=os.environ.get("PEERCAM_REDIS"), metavar="URL",
                           help="share state with other instances through Redis, e.g. "
                                "redis://127.0.0.1:6379/0 (default: $PEERCAM_REDIS)")
    serve_cmd.add_argument("--record-dir", metavar="DIR",
                           help="record streams into DIR/STREAM/ (and allow recording through the API)")
    serve_cmd.add_argument("--record", action="append", default=[], metavar="STREAM",
                           help="record this stream whenever it is live ('*': every stream); repeatable")
    _add_recording_options(serve_cmd)
    serve_cmd.add_argument("--record-layer", metavar="LAYER",
                           help="the layer recorded (the nearest the camera has; default: its top layer)")

    token = commands.add_parser("token", help="print a signed token for a stream and a role")
    token.add_argument("--secret", required=True)
    token.add_argument("--stream", required=True, help="a stream name, or * for any")
    token.add_argument("--role", choices=("publish", "view", "talk", "admin"), required=True,
                       help="talk: a view token that may also talk back (serve --talk token)")
    token.add_argument("--ttl", default="1h", help="how long it stays valid: 90s, 15m, 1h, 7d")

    camera = commands.add_parser("camera", help="publish a camera, video file or test pattern")
    _add_peer_options(camera)
    _add_source_options(camera)
    camera.add_argument("--name", default="", help="display name (stream list, chat)")
    camera.add_argument("--chat-log", metavar="FILE", help="append every chat message to FILE as JSON lines")
    camera.add_argument("--connect-timeout", type=_seconds, default=15.0, metavar="S",
                        help="hang up on a viewer whose P2P connection is not up within S seconds")
    camera.add_argument("--record", metavar="DIR",
                        help="also record the top layer (and the sound) here, from this camera's encoders")
    _add_recording_options(camera)
    _add_talk_options(camera)

    view = commands.add_parser("view", help="watch a stream, measure it, record or show it")
    _add_peer_options(view)
    view.add_argument("--duration", type=float, help="seconds of video to receive, then exit with a summary")
    view.add_argument("--warmup", type=float, default=0.0,
                      help="leave the first S seconds after the first frame out of the figures")
    view.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")
    view.add_argument("--record", metavar="FILE",
                      help="record to an .mp4 or .mkv file (H.264, and Opus for the sound)")
    view.add_argument("--name", default="", help="display name (chat, the stream's viewer list)")
    view.add_argument("--chat", action="store_true",
                      help="print chat on stdout; each line typed on stdin is sent")
    view.add_argument("--show", action="store_true", help="open a window (needs OpenCV with GUI support)")
    view.add_argument("--timeout", type=float, default=15.0,
                      help="give up when no video came within this (s)")
    view.add_argument("--wait", type=float, default=0.0,
                      help="wait this long (s) for a stream that is not live yet; default: fail at once")
    view.add_argument("--mode", choices=("auto", "p2p", "relay"), default="auto",
                      help="auto: P2P, falling back to the relay through the server when it cannot connect")
    view.add_argument("--quality", default="auto", type=_quality, metavar="auto|LAYER",
                      help="a layer of the stream (e.g. 480p), or auto: follow the network (default)")
    view.add_argument("--relay-format", choices=("auto", *get_args(RelayFormat)), default="auto",
                      help="what the relay carries: the camera's encoded frames (decoded here), JPEG, "
                           "or auto: encoded where this PyAV decodes the stream's codec")
    view.add_argument("--jpeg-quality", type=int, choices=range(50, 96), metavar="50-95",
                      help="JPEG quality on a JPEG relay (default: the camera's, adapted to the network)")
    view.add_argument("--connect-timeout", type=_seconds, default=5.0,
                      help="P2P not connected within this (s) counts as failed")
    view.add_argument("--p2p-retry", type=float, default=30.0,
                      help="in auto mode on the relay, try P2P again this often (s)")
    view.add_argument("--no-audio", action="store_true",
                      help="receive no sound: P2P offers none and the relay is not asked for it")
    view.add_argument("--talk", metavar="FILE|DEVICE|tone",
                      help="talk back through the camera once (P2P or the relay): an audio file's sound "
                           "(or an ALSA device's, or the test tone's, until Ctrl-C), when the server lets "
                           "viewers talk")

    demo = commands.add_parser("demo", help="server and test-pattern camera in one command")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=_port, default=8080)
    demo.add_argument("--stream", default="demo")
    _add_ice_options(demo)
    _add_source_options(demo)
    demo.add_argument("--talk", choices=("off", "viewers"), default="off",
                      help="whether viewers may talk back through the demo's camera")
    _add_talk_options(demo)
    for command in commands.choices.values():  # `peercam serve --debug` too; SUPPRESS keeps the top's
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="a failure shows its traceback too")
    return parser


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds, more than 0 and less than 3600")
    return seconds


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 0 to 65535")
    return int(text)


def _server_url(text: str) -> str:
    from peercam.peers.signaling_client import websocket_url

    try:
        websocket_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _quality(text: str) -> str:
    if not re.fullmatch(r"auto|[0-9]{2,5}p(@[0-9]{1,3}(\.[0-9]{1,3})?)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: auto, or a layer such as 720p or 360p@15")
    return text


def _add_recording_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record-segment", type=float, default=60.0, metavar="SECONDS",
                        help="start a new segment file this often (at the next keyframe)")
    parser.add_argument("--record-keep", action="append", default=[], metavar="AGE|SIZE",
                        help="delete the oldest segments past an age (7d) or a total size (10GB)")


def _add_talk_options(parser: argparse.ArgumentParser) -> None:
    """Where talk back's sound goes on the camera (the server's --talk says who may talk)."""
    parser.add_argument("--talk-record", metavar="DIR",
                        help="write each viewer's turn of talk back to DIR/YYYYmmdd-HHMMSS-SPEAKER.opus")
    parser.add_argument("--speaker", metavar="DEVICE",
                        help="play talk back on this ALSA device (default, hw:1,0, ...; see aplay -L)")
    parser.add_argument("--talk-duplex", choices=("half", "full"), default="half",
                        help="half: the camera's own sound is silenced to viewers while one talks "
                             "(no echo); full: it is not (an echo-cancelling device)")


def _recording(command: str, directory: str | None, streams: list[str], args: argparse.Namespace,
               ) -> RecordingConfig | None:
    """--record-dir (serve) or --record (camera) with their segment and retention flags."""
    from peercam.shared.recordingconfig import RecordingConfig
    from peercam.shared.retention import Retention
    from peercam.shared.segmentwriter import check_writable

    if directory is None:
        if streams or args.record_keep:
            _fail(command, "--record and --record-keep need a directory to record into")
        return None
    if not 1 <= args.record_segment <= 3600:
        _fail(command, "--record-segment takes 1 to 3600 seconds")
    try:
        for name in streams:
            if name != "*":
                check_stream_name(name)
        retention = Retention.parse(args.record_keep)
    except ProtocolError as exc:
        _fail(command, exc.reason)
    except ValueError as exc:
        _fail(command, str(exc))
    try:
        check_writable(Path(directory))
    except OSError as exc:
        flag = "--record-dir" if command == "serve" else "--record"
        _fail(command, f"cannot record into {directory} ({exc.strerror or exc}): "
                       f"give {flag} a directory this user can write")
    return RecordingConfig(Path(directory), tuple(streams), args.record_segment, retention,
                           getattr(args, "record_layer", None))


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="testsrc",
                        help="testsrc, a camera index (0), a device (/dev/video0), a video file, or an RTSP "
                             "camera, rtsp://[user:pass@]host[:port]/path (its H.264 passes through)")
    parser.add_argument("--source-low", metavar="RTSP_URL",
                        help="the RTSP camera's own sub-stream, passed through as a lower layer")
    parser.add_argument("--rtsp-transport", choices=("tcp", "udp"), default="tcp",
                        help="how RTSP media travels (default: tcp)")
    parser.add_argument("--no-passthrough", dest="passthrough", action="store_false",
                        help="decode and encode an RTSP camera's pictures instead of passing them through "
                             "(keyframes on request and --bitrate, at the CPU's cost)")
    parser.add_argument("--width", type=int,
                        help="bound on the picture's width; it keeps its aspect ratio (default: the "
                             "source's own size, at most 1280x720; the test pattern: 640x480)")
    parser.add_argument("--height", type=int, help="bound on the picture's height, as --width")
    parser.add_argument("--stretch", action="store_true",
                        help="force exactly --width x --height, whatever the source's shape")
    parser.add_argument("--fps", type=float, default=30.0,
                        help="the test pattern's rate, and the rate asked of a camera (a file keeps its own)")
    parser.add_argument("--codec", choices=("vp8", "h264"), default="vp8")
    parser.add_argument("--layers", default="auto", metavar="LIST",
                        help="quality layers, largest first or any order: HEIGHTp or HEIGHTp@FPS, comma-"
                             "separated (e.g. 1080p,720p,480p,360p@15); auto: the capture height and each "
                             "of 720p, 480p and 360p below it")
    parser.add_argument("--bitrate", type=int, help="the top layer's bitrate in kbit/s "
                                                    "(default: what suits its size)")
    parser.add_argument("--jpeg-quality", type=int, default=80, choices=range(1, 101), metavar="1-100",
                        help="JPEG quality of relay frames for readers that pick none")
    parser.add_argument("--relay-fps", type=float, help="cap on relay frames per second (default: all)")
    parser.add_argument("--audio", default="auto", metavar="SOURCE",
                        help="the sound: none, tone (the test tone), an ALSA device (default, hw:1,0) or an "
                             "audio or video file; auto (the default): the tone with testsrc, a video "
                             "file's own track, none with a camera")
    parser.add_argument("--no-audio", dest="audio", action="store_const", const="none",
                        help="publish no sound (as --audio none)")
    parser.add_argument("--audio-bitrate", type=int, default=DEFAULT_AUDIO_BITRATE // 1000, metavar="KBITS",
                        help=f"the sound's Opus bitrate in kbit/s, 6 to 256 a channel (default: "
                             f"{DEFAULT_AUDIO_BITRATE // 1000})")


def _setup_logging(verbose: int, default: int = logging.WARNING) -> None:
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s", level=logging.WARNING)
    # Every module logs under "peercam" (peercam.signaling..., peercam.peers...).
    logging.getLogger("peercam").setLevel(logging.DEBUG if verbose else default)
    if verbose > 1:
        logging.getLogger().setLevel(logging.DEBUG)


def _run(main: Coroutine) -> None:
    """Run until done or until SIGINT/SIGTERM, which cancel it for a clean shutdown."""

    async def runner():
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        return await main

    try:
        asyncio.run(runner())
    except asyncio.CancelledError:
        pass


#: --debug: a failure shows its traceback before its one line.
_show_tracebacks = False


def _fail(command: str, reason: str) -> None:
    if _show_tracebacks and sys.exc_info()[1] is not None:
        traceback.print_exc()
    print(f"peercam {command}: error: {reason}", file=sys.stderr)
    sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    global _show_tracebacks
    args = _build_parser().parse_args(argv)
    _show_tracebacks = args.debug
    try:
        _command(args)
    except Exception as exc:  # unforeseen: one line all the same
        _fail(args.command, f"unexpected {type(exc).__name__}: {exc} (--debug shows the traceback)")


def _command(args: argparse.Namespace) -> None:
    if args.command in ("camera", "view") and not args.server:
        args.server = [DEFAULT_SERVER]
    if args.command == "token":
        try:
            print(make_token(args.secret, args.stream, args.role, parse_duration(args.ttl)))
        except ValueError as exc:
            _fail("token", str(exc))
        return
    from peercam.peers.icesettings import parse_ice_server, resolve_host_addresses

    try:
        ice_servers = [parse_ice_server(url) for url in args.ice_server]
        if args.command == "demo" and not args.ice_host:
            args.ice_host = ["*", "127.0.0.1"]  # one machine: a local browser may use loopback
        resolve_host_addresses(args.ice_host)
    except ValueError as exc:
        _fail(args.command, str(exc))
    try:
        if args.command in ("camera", "view", "demo"):
            check_stream_name(args.stream)
        if args.command in ("camera", "view"):
            check_display_name(args.name)
    except ProtocolError as exc:
        _fail(args.command, exc.reason)
    if args.command == "serve":
        _setup_logging(args.verbose, logging.INFO)
        _run_server(_server_config(args, ice_servers))
    elif args.command == "camera":
        _setup_logging(args.verbose, logging.INFO)
        _run_camera(args, ice_servers)
    elif args.command == "view":
        _setup_logging(args.verbose)
        _run_viewer(args, ice_servers)
    elif args.command == "demo":
        _setup_logging(args.verbose, logging.WARNING)
        _run_demo(args, ice_servers)


def _server_config(args: argparse.Namespace, ice_servers: list) -> ServerConfig:
    """`peercam serve`'s flags checked, as a ServerConfig (exits on a bad one)."""
    from peercam.signaling.settings.clientaddress import parse_networks
    from peercam.signaling.settings.config import ServerConfig

    if bool(args.turn_secret) != bool(args.turn_url):
        _fail("serve", "--turn-secret and --turn-url go together")
    if any(not url.startswith(("turn:", "turns:")) for url in args.turn_url):
        _fail("serve", "--turn-url takes turn: or turns: URLs")
    turn = TurnConfig(args.turn_secret, tuple(args.turn_url), args.turn_ttl) if args.turn_secret else None
    if bool(args.cert) != bool(args.key):
        _fail("serve", "--cert and --key go together")
    if args.redis and not args.redis.startswith(("redis://", "rediss://", "unix://")):
        _fail("serve", "--redis takes a redis://HOST:PORT/DB (or rediss://, unix://) URL")
    if args.auth != "open" and not args.secret:
        _fail("serve", f"--auth {args.auth} needs --secret to check tokens")
    if args.talk == "token" and not args.secret:
        _fail("serve", "--talk token needs --secret to check tokens")
    try:
        talk_max = parse_duration(args.talk_max)
    except ValueError as exc:
        _fail("serve", f"--talk-max: {exc}")
    try:
        trusted_proxies = parse_networks(args.trusted_proxy)
    except ValueError as exc:
        _fail("serve", str(exc))
    return ServerConfig(host=args.host, port=args.port, ice_servers=tuple(ice_servers),
                        ice_hosts=tuple(args.ice_host), turn=turn, secret=args.secret,
                        auth=args.auth, cert_file=args.cert, key_file=args.key,
                        allowed_origins=tuple(args.allowed_origin),
                        allowed_hosts=tuple(h.lower() for h in args.allowed_host),
                        trusted_proxies=trusted_proxies, limits=Limits(
                            messages_per_second=args.max_message_rate,
                            viewers_per_stream=args.max_viewers, streams=args.max_streams,
                            whip_publishers=args.max_whip_publishers,
                            connections_per_address=args.max_connections_per_address,
                            stalled_reader_seconds=args.stalled_reader_timeout),
                        recording=_recording("serve", args.record_dir, args.record, args),
                        redis=args.redis or None, talk=args.talk, talk_max=talk_max)


def _run_server(config: ServerConfig) -> None:
    """Serve until Ctrl-C; the URL is printed once the server listens (and reached Redis)."""
    from peercam.ingest import whip_ingest
    from peercam.signaling.edge.app import start


    async def run() -> None:
        async with await start(config, whip_ingest(config)) as server:
            print(f"peercam serve: {server.url}/", file=sys.stderr, flush=True)
            await asyncio.Event().wait()

    try:
        _run(run())
    except StartupError as exc:
        _fail("serve", str(exc))


def _open_source(command: str, args: argparse.Namespace,
                 ) -> tuple[VideoSource | EncodedVideoSource, AudioSource | None, EncodedVideoSource | None]:
    """The picture's source, the sound's (None: no sound) and the sub-stream's (``--source-low``)."""
    from peercam.peers.camera.audiosources import AudioSourceError
    from peercam.peers.camera.camera import open_sources
    from peercam.peers.camera.sources import SourceError

    if not 6 <= args.audio_bitrate <= 510:
        _fail(command, f"--audio-bitrate {args.audio_bitrate}: Opus takes 6 to 510 kbit/s")
    if args.audio.startswith("push"):
        _fail(command, f"--audio {args.audio}: pushed sound is for the library's Camera.send_audio")
    try:
        video, audio, low = open_sources(args.source, args.audio, args.width, args.height, args.fps,
                                         args.stretch, args.rtsp_transport, args.source_low)
    except AudioSourceError as exc:
        _fail(command, f"--audio: {exc}")
    except SourceError as exc:
        _fail(command, str(exc))
    if audio is not None and args.audio_bitrate > MAX_OPUS_KBPS_PER_CHANNEL * audio.channels:
        for opened in (video, audio, low):
            if opened is not None:
                opened.close()
        _fail(command, f"--audio-bitrate {args.audio_bitrate}: Opus takes at most "
                       f"{MAX_OPUS_KBPS_PER_CHANNEL} kbit/s a channel, and this sound has {audio.channels}")
    return video, audio, low


def _ice_options(args: argparse.Namespace, ice_servers: list) -> IceOptions:
    """Flags given on the command line win; the rest come from the server's welcome."""
    from peercam.peers.ice import IceOptions

    return IceOptions(servers=ice_servers or None, hosts=args.ice_host or None,
                      transport=getattr(args, "ice_transport", "all"))


def _camera_options(args: argparse.Namespace, server: Servers, ice_servers: list) -> CameraOptions:
    from peercam.peers.camera.camera import CameraOptions

    return CameraOptions(
        server=server,
        stream=args.stream,
        codec=args.codec,
        layers=args.layers,
        bitrate=args.bitrate * 1000 if args.bitrate else None,
        name=getattr(args, "name", ""),
        token=getattr(args, "token", ""),
        ca_file=getattr(args, "ca", None),
        chat_log=getattr(args, "chat_log", None),
        connect_timeout=getattr(args, "connect_timeout", 15.0),
        jpeg_quality=args.jpeg_quality,
        relay_fps=args.relay_fps,
        audio_bitrate=args.audio_bitrate * 1000,
        passthrough=args.passthrough,
        talk_record=args.talk_record,
        speaker=args.speaker,
        talk_duplex=args.talk_duplex,
        recording=_recording("camera", args.record, [], args) if args.command == "camera" else None,
        ice=_ice_options(args, ice_servers),
    )


def _run_camera(args: argparse.Namespace, ice_servers: list) -> None:
    from peercam.peers.camera.camera import CameraError, CameraPeer
    from peercam.peers.camera.layers import LayerError
    from peercam.peers.camera.sources import SourceError

    source, audio, low = _open_source("camera", args)
    try:
        camera = CameraPeer(_camera_options(args, args.server, ice_servers), source, audio, low)
    except LayerError as exc:
        _fail("camera", f"--layers: {exc}")
    except SourceError as exc:  # a --source-low that cannot pass through beside --source
        _fail("camera", str(exc))
    try:
        _run(camera.run())
    except CameraError as exc:
        _fail("camera", str(exc))


def _run_viewer(args: argparse.Namespace, ice_servers: list) -> None:
    from peercam.peers.viewer.viewcommand import ViewCommand
    from peercam.peers.viewer.viewer import ViewerError, ViewerOptions

    # What the imports made lives as long as the process: out of the collector's sight, a full
    # collection no longer walks it (25-35 ms, which fell before the first frame).
    gc.freeze()
    # The viewer's figures (time to first frame) count from here, once Python has started and
    # imported what the viewer runs: the viewer's own time, apart from the start-up's.
    started = time.monotonic()
    options = ViewerOptions(
        server=args.server,
        stream=args.stream,
        warmup=args.warmup,
        first_frame_timeout=args.timeout,
        wait=args.wait,
        mode=args.mode,
        quality=args.quality,
        jpeg_quality=args.jpeg_quality,
        relay_format=args.relay_format,
        connect_timeout=args.connect_timeout,
        p2p_retry=args.p2p_retry,
        audio=not args.no_audio,
        ice=_ice_options(args, ice_servers),
        name=args.name,
        token=args.token,
        ca_file=args.ca,
        talk=args.talk,
    )
    try:
        command = ViewCommand(options, started, duration=args.duration, record=args.record, show=args.show,
                              chat=args.chat, status_line=sys.stderr.isatty() and not args.json)
    except ValueError as exc:
        _fail("view", str(exc))
    summary: dict = {}

    async def watch() -> None:
        nonlocal summary
        try:
            summary = await command.run()
        except asyncio.CancelledError:
            summary = command.viewer.stats()

    try:
        _run(watch())
    except ViewerError as exc:
        _fail("view", str(exc))
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print(" ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
    if not summary.get("frames"):
        _fail("view", "no video arrived")


def _run_demo(args: argparse.Namespace, ice_servers: list) -> None:
    from peercam.ingest import whip_ingest
    from peercam.peers.camera.camera import CameraError, CameraPeer
    from peercam.peers.camera.layers import LayerError
    from peercam.peers.camera.sources import SourceError
    from peercam.signaling.edge.app import serve
    from peercam.signaling.settings.config import ServerConfig

    source, audio, low = _open_source("demo", args)
    server = f"http://{args.host}:{args.port}"
    try:
        camera = CameraPeer(_camera_options(args, server, ice_servers), source, audio, low)
    except LayerError as exc:
        _fail("demo", f"--layers: {exc}")
    except SourceError as exc:  # a --source-low that cannot pass through beside --source
        _fail("demo", str(exc))
    config = ServerConfig(host=args.host, port=args.port, ice_servers=tuple(ice_servers),
                          ice_hosts=tuple(args.ice_host), talk=args.talk)

    async def demo() -> None:
        started = asyncio.Event()
        server_task = asyncio.create_task(serve(config, started, whip_ingest(config)))
        await asyncio.wait({server_task, asyncio.create_task(started.wait())},
                           return_when=asyncio.FIRST_COMPLETED)
        if server_task.done():
            server_task.result()
        camera_task = asyncio.create_task(camera.run())
        await asyncio.wait({camera_task, asyncio.create_task(camera.published.wait())},
                           return_when=asyncio.FIRST_COMPLETED)
        if camera_task.done():
            camera_task.result()
        print(f"peercam demo: streaming {args.stream!r} ({source.width}x{source.height}@{source.fps:g} "
              f"{args.codec}); open {server}/view/{args.stream}  (stream list: {server}/)  Ctrl-C stops",
              flush=True)
        try:
            await asyncio.gather(server_task, camera_task)
        finally:
            server_task.cancel()
            camera_task.cancel()
            await asyncio.gather(server_task, camera_task, return_exceptions=True)

    try:
        _run(demo())
    except StartupError as exc:
        _fail("demo", str(exc))
    except CameraError as exc:
        _fail("demo", str(exc))
    print("peercam demo: stopped", file=sys.stderr)

