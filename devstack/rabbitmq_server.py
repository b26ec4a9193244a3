"""RabbitMQ for the AMQP channel, from Debian's own packages (rabbitmq-server 3.10.8 on Erlang
25), unpacked into the git-ignored `.devstack/rabbitmq` without installing anything.

`apt-get install rabbitmq-server` would start a system-wide broker on 5672 (and its epmd on
4369) and leave them running, on a machine whose tests want one on free ports, in a temporary
directory, for as long as they run. So, as for Redis (redis_server.py), `apt-get download` +
`dpkg-deb -x` of the broker and the Erlang applications it depends on (18 packages, 34 MB;
measured: ~1 s to download here, 58 MB unpacked), no root needed and nothing outside the
repository changed. The libraries they link (libssl3, libtinfo6, zlib1g, libsystemd0,
libstdc++6) are on every Debian that runs apt; `ldd` checks the emulator and the crypto NIF.

Two things make an unpacked copy run (measured on Debian 12):
- Debian's `erl` script sets ROOTDIR=/usr/lib/erlang whatever it is told, so each node gets
  an `erl` of its own (in its private directory, first on PATH): the same four variables
  pointing at the unpacked tree, then `erlexec`, which honours them.
- RabbitMQ's scripts find everything from where they sit (RABBITMQ_HOME = sbin/..) and put
  every application under RABBITMQ_HOME/plugins on the code path. Each node gets a home of
  its own: `sbin` linked to the real one and `plugins` holding only the 20 applications the
  broker needs (read from their `.app` files) instead of all 70 (MQTT, STOMP, management,
  federation...): a first boot takes 2.4 s instead of 5.7 s, the rest being the code path
  searched for every module loaded.

A node is private: its own AMQP port, distribution port and epmd (started by us in the
foreground on a reserved port, ERL_EPMD_PORT, so the fixed 4369 is never used and no daemon
outlives it), its own HOME (the Erlang cookie), database, logs and node name, and no config
file (none of the system's). The default `guest` user may connect from loopback only, which
is where the node listens.
"""

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import DevstackError

PACKAGES = (
    "rabbitmq-server",
    "erlang-base",
    "erlang-asn1",
    "erlang-crypto",
    "erlang-eldap",
    "erlang-ftp",
    "erlang-inets",
    "erlang-mnesia",
    "erlang-os-mon",
    "erlang-parsetools",
    "erlang-public-key",
    "erlang-runtime-tools",
    "erlang-snmp",
    "erlang-ssl",
    "erlang-syntax-tools",
    "erlang-tftp",
    "erlang-tools",
    "erlang-xmerl",
)
"""rabbitmq-server and the Erlang packages it depends on, with theirs (apt-cache depends)."""
BOOT_APPLICATIONS = ("rabbit", "rabbitmq_prelaunch")
"""What the node starts; the plugins directory holds these and what they depend on."""
ERLANG_ROOT = Path("usr/lib/erlang")
RABBITMQ_LIB = Path("usr/lib/rabbitmq/lib")
GUEST = "guest"  # the default user: loopback only, which is all a private node serves


class RabbitMQUnavailable(DevstackError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            f"RabbitMQ (for the AMQP channel) is not available: {reason}. The devstack unpacks "
            "Debian's rabbitmq-server and Erlang into .devstack/rabbitmq (`make rabbitmq`); "
            "elsewhere, run a broker yourself and give the channel its URL"
        )


@dataclass(frozen=True)
class RabbitMQInstall:
    """An unpacked broker: the Erlang tree and RabbitMQ's own directory (sbin, plugins)."""

    erlang_root: Path
    rabbitmq_dir: Path

    @property
    def erts_bin(self) -> Path:
        found = sorted(self.erlang_root.glob("erts-*/bin"))
        if not found:
            raise RabbitMQUnavailable(f"no erts-*/bin under {self.erlang_root}")
        return found[-1]

    @property
    def epmd(self) -> Path:
        return self.erts_bin / "epmd"


def ensure_rabbitmq(root: Path) -> RabbitMQInstall:
    """The unpacked broker under `root/rabbitmq`, unpacking it the first time."""
    unpacked = root / "rabbitmq"
    stamp = unpacked / "packages.stamp"
    if stamp.exists() and stamp.read_text() == " ".join(PACKAGES):
        return _install_in(unpacked)
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RabbitMQUnavailable("no apt-get/dpkg-deb here to fetch Debian's packages")
    shutil.rmtree(unpacked, ignore_errors=True)
    unpacked.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as downloads:
        _run(["apt-get", "download", "-q", *PACKAGES], Path(downloads))
        for deb in sorted(Path(downloads).glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(unpacked)], Path(downloads))
    install = _install_in(unpacked)
    missing = _missing_libraries(install)
    if missing:
        raise RabbitMQUnavailable(f"Erlang needs libraries not found: {', '.join(missing)}")
    stamp.write_text(" ".join(PACKAGES))
    return install


def _install_in(unpacked: Path) -> RabbitMQInstall:
    found = sorted((unpacked / RABBITMQ_LIB).glob("rabbitmq_server-*"))
    if not found:
        raise RabbitMQUnavailable(f"no rabbitmq_server-* under {unpacked / RABBITMQ_LIB}")
    return RabbitMQInstall(unpacked / ERLANG_ROOT, found[-1])


def _run(command: list[str], cwd: Path) -> None:
    # As root, apt-get downloads "unsandboxed" and says so on stderr: shown only on failure.
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-6:]
        hint = (
            " (package lists missing: run `apt-get update` first)"
            if any("Unable to locate" in line or "has no installation" in line for line in output)
            else ""
        )
        raise RabbitMQUnavailable(f"`{' '.join(command)}` failed{hint}: {' / '.join(output)}")


def _missing_libraries(install: RabbitMQInstall) -> list[str]:
    binaries = [
        install.erts_bin / "beam.smp",
        *install.erlang_root.glob("lib/crypto-*/priv/lib/*.so"),
    ]
    missing: list[str] = []
    for binary in binaries:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        missing += [line.split()[0] for line in result.stdout.splitlines() if "not found" in line]
    return sorted(set(missing))


@dataclass(frozen=True)
class RabbitMQNode:
    """What it takes to run one private node: two commands (its epmd, then the broker) sharing
    one environment, and where it will listen."""

    name: str
    amqp_port: int
    dist_port: int
    epmd_port: int
    directory: Path
    epmd_command: list[str]
    server_command: list[str]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"amqp://{GUEST}:{GUEST}@127.0.0.1:{self.amqp_port}/"


def prepare_node(
    install: RabbitMQInstall,
    directory: Path,
    base_env: dict[str, str],
    *,
    amqp_port: int,
    dist_port: int,
    epmd_port: int,
) -> RabbitMQNode:
    """Lay out a fresh node in `directory` (emptied first: a dev broker keeps nothing between
    runs) and say how to start it."""
    shutil.rmtree(directory, ignore_errors=True)
    for sub in ("bin", "home", "rabbitmq/plugins", "mnesia", "log"):
        (directory / sub).mkdir(parents=True)
    _write_erl(install, directory / "bin" / "erl")
    home = directory / "rabbitmq"
    # A directory of its own whose sbin is the real one: the scripts take RABBITMQ_HOME from
    # where they are found (a linked directory, not a linked file: they resolve those).
    (home / "sbin").symlink_to(install.rabbitmq_dir / "sbin")
    (home / "escript").symlink_to(install.rabbitmq_dir / "escript")
    for app in boot_applications(install.rabbitmq_dir / "plugins"):
        (home / "plugins" / app.name).symlink_to(app)
    (directory / "enabled_plugins").write_text("[].\n")
    name = f"switchboard-{os.getpid()}-{secrets.token_hex(3)}@localhost"
    # Inherited RABBITMQ_* / ERL_* settings (a system broker's) would steer this node.
    env = {k: v for k, v in base_env.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
    env |= {
        "PATH": os.pathsep.join([str(directory / "bin"), base_env.get("PATH", os.defpath)]),
        "HOME": str(directory / "home"),  # the Erlang cookie
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_LOGS": "-",  # to stdout: the service's log file
        "RABBITMQ_PLUGINS_DIR": str(home / "plugins"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        # Paths that do not exist: no config file and no env file, the system's included.
        "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-start_epmd false",
    }
    epmd = [str(install.epmd), "-port", str(epmd_port), "-address", "127.0.0.1"]
    return RabbitMQNode(
        name=name,
        amqp_port=amqp_port,
        dist_port=dist_port,
        epmd_port=epmd_port,
        directory=directory,
        epmd_command=epmd,
        server_command=[str(home / "sbin" / "rabbitmq-server")],
        env=env,
    )


def _write_erl(install: RabbitMQInstall, path: Path) -> None:
    """Debian's bin/erl with the unpacked ROOTDIR (its own always says /usr/lib/erlang)."""
    path.write_text(
        "#!/bin/sh\n"
        f"ROOTDIR='{install.erlang_root}'\n"
        f"BINDIR='{install.erts_bin}'\n"
        "EMU=beam\n"
        "PROGNAME=erl\n"
        "export ROOTDIR BINDIR EMU PROGNAME\n"
        'exec "$BINDIR/erlexec" "$@"\n'
    )
    path.chmod(0o755)


def boot_applications(plugins: Path) -> list[Path]:
    """The application directories under `plugins` that BOOT_APPLICATIONS need, transitively
    (their `.app` files' `applications` and `included_applications`); OTP's own are in the
    Erlang tree and not listed here."""
    found: dict[str, tuple[Path, list[str]]] = {}
    for directory in plugins.iterdir():
        name = re.sub(r"-[0-9][0-9.]*$", "", directory.name)
        app_file = directory / "ebin" / f"{name}.app"
        if directory.is_dir() and app_file.is_file():
            found[name] = (directory, _dependencies(app_file.read_text()))
    needed: dict[str, Path] = {}
    pending = list(BOOT_APPLICATIONS)
    while pending:
        name = pending.pop()
        if name in needed or name not in found:
            continue
        needed[name] = found[name][0]
        pending += found[name][1]
    missing = [name for name in BOOT_APPLICATIONS if name not in needed]
    if missing:
        raise RabbitMQUnavailable(f"{plugins} has no {', '.join(missing)} application")
    return sorted(needed.values())


def _dependencies(app_text: str) -> list[str]:
    names: list[str] = []
    for key in ("applications", "included_applications"):
        match = re.search(r"\{" + key + r",\s*\[([^\]]*)\]", app_text)
        if match:
            names += [n.strip() for n in match.group(1).split(",") if n.strip()]
    return names


AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def amqp_ready(port: int, host: str = "127.0.0.1") -> bool:
    """The broker answers an AMQP 0-9-1 protocol header with Connection.Start (a method frame,
    type 1, on channel 0): it accepts AMQP, not only TCP (the listener opens late in the boot,
    but a bare accept says nothing about the protocol)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as connection:
            connection.sendall(AMQP_PROTOCOL_HEADER)
            head = connection.recv(3)
    except OSError:
        return False
    return len(head) == 3 and head[0] == 1 and head[1:3] == b"\x00\x00"
