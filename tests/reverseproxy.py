"""HAProxy and nginx on loopback, configured as the docs show, in front of one server.

The configuration is the docs' own example, read from docs/cluster.md ("Several servers
(Redis)"): only the listening port and the instances' addresses change (one instance here,
on a port of the test's). A test through it checks what the docs tell people to run.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp

from .conftest import ROOT, free_port, require

#: The page whose ```haproxy and ```nginx blocks are the configurations people are told to run.
DOCS_PAGE = ROOT / "docs" / "cluster.md"
#: How long a proxy may take to start and see the instance up.
READY_SECONDS = 15.0


def docs_config(language: str) -> str:
    """The docs' example configuration in a ```language block."""
    match = re.search(rf"^```{language}\n(.*?)^```", DOCS_PAGE.read_text(), re.S | re.M)
    assert match, f"docs/cluster.md has no ```{language} block"
    return match.group(1)


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the docs' example no longer has {old!r}: update tests/reverseproxy.py"
    return text.replace(old, new)


def _one_instance(config: str, backend: int) -> str:
    """The docs' three instances (8081-8083) as the one of the test, on ``backend``."""
    config = _replace(config, "127.0.0.1:8081", f"127.0.0.1:{backend}")
    return "".join(line for line in config.splitlines(keepends=True)
                   if "127.0.0.1:8082" not in line and "127.0.0.1:8083" not in line)


class ReverseProxy:
    """A reverse proxy process on 127.0.0.1:``port``, forwarding to an instance on ``backend``."""

    program = ""

    def __init__(self, folder: Path, backend: int) -> None:
        require(shutil.which(self.program) is not None,
                f"{self.program} is not installed (apt-get install {self.program})")
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"{self.program}.log"
        self._log = open(self.log_path, "w")
        self._process = subprocess.Popen(self.command(self.configure(backend)), stdout=self._log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def configure(self, backend: int) -> Path:
        raise NotImplementedError

    def command(self, config: Path) -> list[str]:
        raise NotImplementedError

    async def ready(self) -> None:
        """Wait until the proxy answers /healthz from the instance."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_SECONDS
        async with aiohttp.ClientSession() as session:
            while True:
                assert self._process.poll() is None, f"{self.program} exited: {self.log_path.read_text()}"
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert loop.time() < deadline, f"{self.program} not ready: {self.log_path.read_text()}"
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


class HAProxy(ReverseProxy):
    program = "haproxy"

    def configure(self, backend: int) -> Path:
        config = _replace(docs_config("haproxy"), "bind :8080", f"bind 127.0.0.1:{self.port}")
        path = self.folder / "haproxy.cfg"
        path.write_text(_one_instance(config, backend))
        return path

    def command(self, config: Path) -> list[str]:
        return ["haproxy", "-db", "-f", str(config)]  # -db: in the foreground


class Nginx(ReverseProxy):
    program = "nginx"

    def configure(self, backend: int) -> Path:
        config = _replace(docs_config("nginx"), "listen 8080;", f"listen 127.0.0.1:{self.port};")
        temp = self.folder / "nginx-temp"
        temp.mkdir()
        # The docs' example is what goes in http { }; around it, what runs nginx as the test's.
        path = self.folder / "nginx.conf"
        path.write_text(f"""daemon off;
worker_processes 1;
pid {self.folder}/nginx.pid;
error_log {self.log_path} info;
events {{ }}
http {{
access_log off;
client_body_temp_path {temp}/body;
proxy_temp_path {temp}/proxy;
fastcgi_temp_path {temp}/fastcgi;
uwsgi_temp_path {temp}/uwsgi;
scgi_temp_path {temp}/scgi;
{_one_instance(config, backend)}
}}
""")
        return path

    def command(self, config: Path) -> list[str]:
        # -e: its log before it reads the configuration, which would go to /var/log otherwise.
        return ["nginx", "-p", str(self.folder), "-e", str(self.log_path), "-c", str(config)]
