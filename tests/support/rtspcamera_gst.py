"""The RTSP camera's server (run by tests/support/rtspcamera.py under Debian's /usr/bin/python3,
whose gi has GstRtspServer). Prints ``READY rtsp://127.0.0.1:PORT/test`` once it listens."""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

_AUDIO = {
    "opus": "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc "
            "! rtpopuspay name=pay1 pt=97",
    "aac": "audiotestsrc is-live=true ! audioconvert ! audioresample ! voaacenc ! aacparse "
           "! rtpmp4gpay name=pay1 pt=97",
    "pcma": "audiotestsrc is-live=true ! audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1 "
            "! alawenc ! rtppcmapay name=pay1 pt=8",
}


def launch_line(args: argparse.Namespace) -> str:
    if args.file:
        # The file's own pictures, paced in real time, parameter sets before every IDR.
        video = (f"filesrc location={args.file} ! matroskademux ! h264parse config-interval=-1 "
                 "! rtph264pay name=pay0 pt=96")
    else:
        width, height = args.size.split("x")
        raw = (f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
               f"framerate={args.fps}/1")
        if args.enc == "x264":
            sliced = "true" if int(args.threads) > 1 else "false"
            encoder = (f"x264enc tune=zerolatency speed-preset={args.preset} key-int-max={args.gop} "
                       f"bitrate=1000 threads={args.threads} sliced-threads={sliced} "
                       f"{args.x264opts} ! video/x-h264,profile={args.profile}")
        else:
            encoder = f"openh264enc gop-size={args.gop} bitrate=1000000"
        video = (f"{raw} ! {encoder} ! h264parse ! rtph264pay name=pay0 pt=96 "
                 f"config-interval={args.config_interval}")
    audio = _AUDIO.get(args.audio, "")
    return f"( {video} {audio} )"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", default="0")
    parser.add_argument("--enc", default="x264", choices=["x264", "openh264"])
    parser.add_argument("--audio", default="none", choices=["none", *_AUDIO])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--gop", type=int, default=30)
    parser.add_argument("--profile", default="baseline")
    parser.add_argument("--preset", default="ultrafast")
    parser.add_argument("--config-interval", default="-1")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--x264opts", default="")
    parser.add_argument("--file")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(args.port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(False)  # shared, a second client restarts the pipeline for the first
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("user", "media.factory.access", True)
        permissions.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        sys.exit("the RTSP server could not listen")
    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}/test", flush=True)
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    loop.run()


if __name__ == "__main__":
    main()
