"""RabbitMQ's private node, the parts that need no broker: which applications it boots with,
the environment it gets, and the readiness probe. The node itself starts in
tests/channels/test_amqp.py (once for that module), whose teardown checks it leaves nothing."""

import socket
import threading
from pathlib import Path

from devstack.rabbitmq_server import (
    RabbitMQInstall,
    amqp_ready,
    boot_applications,
    prepare_node,
)


def _app(plugins: Path, directory: str, name: str, deps: str, included: str = "") -> None:
    ebin = plugins / directory / "ebin"
    ebin.mkdir(parents=True)
    extra = f"\n  {{included_applications, [{included}]}}," if included else ""
    (ebin / f"{name}.app").write_text(
        f'{{application, {name}, [\n  {{vsn, "1"}},\n  {{applications, [{deps}]}},{extra}\n'
        "  {env, []}]}.\n"
    )


def _fake_install(tmp_path: Path) -> RabbitMQInstall:
    erlang = tmp_path / "erlang"
    (erlang / "erts-13.1.5" / "bin").mkdir(parents=True)
    broker = tmp_path / "rabbitmq_server-3.10.8"
    (broker / "sbin").mkdir(parents=True)
    (broker / "escript").mkdir()
    plugins = broker / "plugins"
    _app(plugins, "rabbit-3.10.8", "rabbit", "kernel,stdlib,ra,rabbit_common")
    _app(plugins, "rabbitmq_prelaunch-3.10.8", "rabbitmq_prelaunch", "kernel,cuttlefish")
    _app(plugins, "rabbit_common-3.10.8", "rabbit_common", "kernel,jsx", included="recon")
    _app(plugins, "ra-2.2.0", "ra", "kernel,aten")
    _app(plugins, "aten-0.5.8", "aten", "kernel")
    _app(plugins, "jsx-3.1.0", "jsx", "kernel")
    _app(plugins, "recon-2.5.2", "recon", "kernel")
    _app(plugins, "cuttlefish-3.0.1", "cuttlefish", "kernel")
    _app(plugins, "rabbitmq_mqtt-3.10.8", "rabbitmq_mqtt", "kernel,rabbit")
    _app(plugins, "rabbitmq_management-3.10.8", "rabbitmq_management", "kernel,cowboy")
    _app(plugins, "cowboy-2.8.0", "cowboy", "kernel")
    return RabbitMQInstall(erlang, broker)


def test_the_node_boots_with_what_rabbit_needs_and_no_other_plugin(tmp_path: Path) -> None:
    install = _fake_install(tmp_path)
    names = [p.name for p in boot_applications(install.rabbitmq_dir / "plugins")]
    assert names == sorted(
        [
            "aten-0.5.8",
            "cuttlefish-3.0.1",
            "jsx-3.1.0",
            "ra-2.2.0",
            "rabbit-3.10.8",
            "rabbit_common-3.10.8",
            "rabbitmq_prelaunch-3.10.8",
            "recon-2.5.2",
        ]
    )


def test_a_node_has_its_own_ports_home_and_erlang_and_ignores_the_systems_settings(
    tmp_path: Path,
) -> None:
    install = _fake_install(tmp_path)
    inherited = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/root",
        "RABBITMQ_NODE_PORT": "5672",
        "RABBITMQ_CONFIG_FILE": "/etc/rabbitmq/rabbitmq.conf",
        "ERL_LIBS": "/elsewhere",
        "LANG": "C.UTF-8",
    }
    node = prepare_node(
        install, tmp_path / "node", inherited, amqp_port=41001, dist_port=41002, epmd_port=41003
    )
    env = node.env
    assert env["LANG"] == "C.UTF-8"
    assert "ERL_LIBS" not in env
    assert env["RABBITMQ_NODE_PORT"] == "41001"
    assert env["RABBITMQ_DIST_PORT"] == "41002"
    assert env["ERL_EPMD_PORT"] == "41003"
    assert node.epmd_command[1:3] == ["-port", "41003"]
    assert "-start_epmd false" in env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    assert env["HOME"] == str(tmp_path / "node" / "home")
    assert not Path(env["RABBITMQ_CONFIG_FILE"]).exists()
    assert env["RABBITMQ_CONFIG_FILE"].startswith(str(tmp_path / "node"))
    assert env["PATH"].split(":")[0] == str(tmp_path / "node" / "bin")
    erl = (tmp_path / "node" / "bin" / "erl").read_text()
    assert f"ROOTDIR='{install.erlang_root}'" in erl
    assert f"BINDIR='{install.erlang_root / 'erts-13.1.5' / 'bin'}'" in erl
    plugins = sorted(p.name for p in (tmp_path / "node" / "rabbitmq" / "plugins").iterdir())
    assert "rabbitmq_mqtt-3.10.8" not in plugins and "rabbit-3.10.8" in plugins
    assert node.server_command == [str(tmp_path / "node" / "rabbitmq" / "sbin" / "rabbitmq-server")]
    assert node.url == "amqp://guest:guest@127.0.0.1:41001/"
    other = prepare_node(
        install, tmp_path / "other", inherited, amqp_port=1, dist_port=2, epmd_port=3
    )
    assert other.name != node.name and node.name.endswith("@localhost")


def test_a_port_that_accepts_but_does_not_speak_amqp_is_not_ready() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer_nonsense() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(8)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        server = threading.Thread(target=answer_nonsense, daemon=True)
        server.start()
        assert not amqp_ready(port)
        server.join(timeout=5)
    assert not amqp_ready(port)  # nothing listens any more
