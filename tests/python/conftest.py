"""Fixtures for the OpenAI SDK compatibility suite.

* ``mock_upstream``: an OpenAI-compatible server (standard library only) that records every request
  it receives and answers from a per-test script (normal answers, tool calls, SSE streams, errors,
  hangs). Unscripted requests get a plain answer.
* ``gateway`` / ``auth_gateway``: the switchyard binary running as a subprocess on a free port, with a
  temporary config whose ``openai`` provider points at the mock (the second one requires a gateway
  key).

The binary is ``$SWITCHYARD_BIN``, by default ``target/debug/switchyard`` under the repository root.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The key switchyard must send to the provider, and keys clients send to switchyard. They are long
# enough (>= 6 characters) for the gateway's redactor to scrub them from error messages.
PROVIDER_KEY = "sk-upstream-provider-key-7f3a9c"
CLIENT_KEY = "sk-client-key-never-forwarded-51d2"
GATEWAY_KEY = "sk-gateway-accepted-key-0b8e44"

# Model names as clients see them, and the ids the provider knows them by.
FAST, FAST_UPSTREAM = "fast-model", "upstream-fast-001"
SMART, SMART_UPSTREAM = "smart-model", "upstream-smart-002"
SLOW, SLOW_UPSTREAM = "slow-model", "upstream-slow-003"
EMBED, EMBED_UPSTREAM = "embed-model", "upstream-embed-004"
# Vector size the mock answers with when a request names no `dimensions`.
EMBED_DIMENSIONS = 8

# How long a gateway may take to print its listening line and to report ready.
START_DEADLINE_S = 30.0
# How long the gateway may take to exit after SIGTERM (the config's drain_timeout is shorter).
STOP_DEADLINE_S = 20.0
# The slow provider's timeout in the config: a hanging upstream makes the gateway give up after it.
SLOW_PROVIDER_TIMEOUT = "1s"
# Upper bound for anything the mock waits on (a gate, a hang) so that no test can hang forever.
MOCK_WAIT_LIMIT_S = 15.0

DEFAULT_USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


# --------------------------------------------------------------------------------------------------
# The mock upstream
# --------------------------------------------------------------------------------------------------


@dataclass
class ToolCall:
    name: str
    arguments: str
    id: str = "call_mock_1"


@dataclass
class Reply:
    """A successful answer: JSON for ``stream: false``, SSE chunks for ``stream: true``."""

    content: str | None = "Hello from the mock upstream."
    # Answer "echo: <the last user message>" instead of ``content``.
    echo: bool = False
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_USAGE))
    # Streaming only: after the first chunk carrying content, wait until this event is set (or
    # MOCK_WAIT_LIMIT_S passed, which the mock counts in ``gate_timeouts``).
    gate: threading.Event | None = None
    # Streaming only: drop the connection (no terminating chunk) after this many SSE events.
    break_after: int | None = None
    # Streaming only: end the body cleanly after this many SSE events, before the finish_reason
    # chunk and [DONE]: an answer cut off by a proxy restart or an idle timeout.
    end_after: int | None = None
    # Streaming only: send everything (finish_reason, usage) but no final [DONE], as some
    # OpenAI-compatible servers do.
    omit_done: bool = False
    # Streaming only: instead of finishing, send this OpenAI error object as an event.
    stream_error: dict[str, Any] | None = None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


@dataclass
class Fail:
    """An HTTP error with an OpenAI-shaped body. ``{key}`` in the message is replaced with the
    API key the request carried, the way real providers echo a wrong key back."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Raw:
    """Any status and body, e.g. a proxy's HTML error page or a 200 that is not JSON."""

    status: int
    body: str
    content_type: str = "text/html"


@dataclass
class Hang:
    """Answers nothing until the test ends (or MOCK_WAIT_LIMIT_S passed)."""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _MockServer(ThreadingHTTPServer):
    daemon_threads = True
    mock: MockUpstream


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _MockServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _receive(self) -> tuple[Any, dict[str, str]]:
        """Reads and records the request; returns its body (JSON, else text) and headers."""
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.mock._record(Recorded(self.command, self.path, headers, body))
        return body, headers

    def _handle(self) -> None:
        mock = self.server.mock
        body, headers = self._receive()
        try:
            if self.command == "POST" and self.path == "/v1/embeddings":
                action = mock._next(body.get("model") if isinstance(body, dict) else None)
                if isinstance(action, Fail):
                    err = _error_body(action.message, action.type, action.code, action.param)
                    self._json(action.status, err, action.headers)
                else:
                    self._json(200, _embeddings(body))
                return
            if self.command != "POST" or self.path != "/v1/chat/completions":
                self._json(404, _error_body(f"mock: no route {self.command} {self.path}", "not_found"))
                return
            model = body.get("model") if isinstance(body, dict) else None
            action = mock._next(model)
            if isinstance(action, Reply) and action.echo:
                action = dataclasses.replace(action, content=f"echo: {_last_user_text(body)}", echo=False)
            if isinstance(action, Hang):
                mock._release.wait(MOCK_WAIT_LIMIT_S)
                action = Reply()
            if isinstance(action, Raw):
                self._send(action.status, action.body.encode(), action.content_type)
            elif isinstance(action, Fail):
                key = headers.get("authorization", "").removeprefix("Bearer ")
                err = _error_body(action.message.format(key=key), action.type, action.code, action.param)
                self._json(action.status, err, action.headers)
            elif isinstance(body, dict) and body.get("stream") is True:
                self._stream(body, action)
            else:
                self._json(200, _completion(body, action))
        except (BrokenPipeError, ConnectionResetError):
            # The gateway gave up on us (a timeout test, a client that went away).
            self.close_connection = True

    def _json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", extra)

    def _send(self, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        # HTTP/1.1 chunked transfer coding; an empty chunk ends the body.
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        mock = self.server.mock
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        events, first_content = _chunks(body, reply)
        for i, event in enumerate(events):
            if reply.break_after is not None and i == reply.break_after:
                # Cut the connection mid-body: no terminating chunk, no [DONE].
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if reply.end_after is not None and i == reply.end_after:
                # A clean end of the body (the terminating chunk) in the middle of the answer.
                self._chunk(b"")
                return
            self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            if reply.gate is not None and i == first_content:
                if not reply.gate.wait(MOCK_WAIT_LIMIT_S):
                    mock._gate_timed_out()
        if reply.stream_error is None and not reply.omit_done:
            self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")


def _last_user_text(body: Any) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c or [])
    return ""


def _error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's embeddings answer: vector ``i`` is ``[i, i + 0.5, ...]`` (``dimensions`` long),
    base64-encoded little-endian float32s when asked; one token per word or token id."""
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        items = [raw]
    else:
        items = list(raw or [])
    dims = int(body.get("dimensions") or EMBED_DIMENSIONS)
    data = []
    tokens = 0
    for i, item in enumerate(items):
        tokens += len(item.split()) if isinstance(item, str) else len(item)
        vector = [i + j * 0.5 for j in range(dims)]
        if body.get("encoding_format") == "base64":
            embedding: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        else:
            embedding = vector
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _completion(body: Any, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in reply.tool_calls
        ]
    return {
        "id": "chatcmpl-mock-0001",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body.get("model") if isinstance(body, dict) else None,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": reply.usage,
    }


def _chunks(body: dict[str, Any], reply: Reply) -> tuple[list[dict[str, Any]], int]:
    """The SSE events of a streamed answer, as OpenAI sends them, and the index of the first event
    that carries content."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {
            "id": "chatcmpl-mock-0002",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": body.get("model"),
            "system_fingerprint": "fp_mock",
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            # OpenAI sends `usage: null` on every chunk but the last when usage was asked for.
            c["usage"] = None
        return c

    events = [chunk({"role": "assistant", "content": "" if reply.content is not None else None})]
    for piece in re.findall(r"\S+\s*", reply.content or ""):
        events.append(chunk({"content": piece}))
    for i, t in enumerate(reply.tool_calls):
        events.append(
            chunk(
                {
                    "tool_calls": [
                        {"index": i, "id": t.id, "type": "function", "function": {"name": t.name, "arguments": ""}}
                    ]
                }
            )
        )
        for start in range(0, len(t.arguments), 7):
            frag = t.arguments[start : start + 7]
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": frag}}]}))
    first_content = 1 if len(events) > 1 else 0
    if reply.stream_error is not None:
        events.append({"error": reply.stream_error})
        return events, first_content
    events.append(chunk({}, reply.finish_reason))
    if include_usage:
        last = chunk(None)
        last["usage"] = reply.usage
        events.append(last)
    return events, first_content


class MockUpstream:
    """An OpenAI-compatible upstream on 127.0.0.1 that records requests and follows a script."""

    # What answers each request; another wire format's mock subclasses both.
    handler: type[BaseHTTPRequestHandler] = _Handler

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._script: list[tuple[str | None, Reply | Fail | Raw | Hang]] = []
        self._release = threading.Event()
        self._gate_timeouts = 0
        self._server = _MockServer(("127.0.0.1", 0), self.handler)
        self._server.mock = self
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, name="mock-upstream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def script(self, *actions: Reply | Fail | Raw | Hang, model: str | None = None) -> None:
        """Queues answers. Each request takes the first queued answer whose ``model`` (the upstream
        model id) matches its own, or that has none; with nothing queued it gets ``Reply()``."""
        with self._lock:
            self._script.extend((model, a) for a in actions)

    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests() if r.path == "/v1/chat/completions"]

    def embedding_requests(self) -> list[Recorded]:
        return [r for r in self.requests() if r.path == "/v1/embeddings"]

    def only_chat_request(self) -> Recorded:
        calls = self.chat_requests()
        assert len(calls) == 1, f"expected exactly one upstream call, got {len(calls)}: {calls}"
        return calls[0]

    @property
    def gate_timeouts(self) -> int:
        with self._lock:
            return self._gate_timeouts

    def pending(self) -> list[tuple[str | None, Reply | Fail | Raw | Hang]]:
        with self._lock:
            return list(self._script)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._gate_timeouts = 0
            # Let hanging handlers go, and arm a fresh event for the next test.
            self._release.set()
            self._release = threading.Event()

    def _record(self, r: Recorded) -> None:
        with self._lock:
            self._requests.append(r)

    def _gate_timed_out(self) -> None:
        with self._lock:
            self._gate_timeouts += 1

    def _next(self, model: str | None) -> Reply | Fail | Raw | Hang:
        with self._lock:
            for i, (want, action) in enumerate(self._script):
                if want is None or want == model:
                    del self._script[i]
                    return action
        return Reply()


# --------------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------------


def write_config(directory: Path, upstream: MockUpstream, api_keys: list[str] | None = None) -> Path:
    """Three tiers over two providers that both point at the mock: ``cheap`` (the default) falls back
    to ``strong``; ``edge`` is served by a provider with a short timeout and falls back to ``strong``;
    ``strong`` has no fallback. Rules send reasoning prompts and ``metadata.task_type: review`` to
    ``strong``."""
    keys = ""
    if api_keys:
        keys = "  api_keys:\n" + "".join(f'    - "{k}"\n' for k in api_keys)
    text = f"""\
server:
  listen: "127.0.0.1:0"
  drain_timeout: 5s
{keys}
providers:
  mock:
    kind: openai
    base_url: "{upstream.base_url}"
    api_key: "{PROVIDER_KEY}"
    timeout: 20s
  mock-slow:
    kind: openai
    base_url: "{upstream.base_url}"
    api_key: "{PROVIDER_KEY}"
    timeout: {SLOW_PROVIDER_TIMEOUT}

models:
  - {{ name: {FAST}, provider: mock, model: {FAST_UPSTREAM}, price: {{ input: 0.15, output: 0.60 }} }}
  - {{ name: {SMART}, provider: mock, model: {SMART_UPSTREAM}, price: {{ input: 3.00, output: 15.00 }} }}
  - {{ name: {SLOW}, provider: mock-slow, model: {SLOW_UPSTREAM}, price: {{ input: 0.10, output: 0.40 }} }}
  - {{ name: {EMBED}, provider: mock, model: {EMBED_UPSTREAM}, price: {{ input: 0.02 }}, kind: embedding }}

tiers:
  cheap:  {{ models: [{FAST}], description: "routine work" }}
  strong: {{ models: [{SMART}], description: "hard reasoning" }}
  edge:   {{ models: [{SLOW}], description: "a deployment with a short timeout" }}

routing:
  default: cheap
  counterfactual: strong
  rules:
    - name: reasoning
      when: {{ keywords: [prove, "step by step"] }}
      tier: strong
    - name: review
      when: {{ task_type: [review] }}
      tier: strong

fallbacks:
  cheap: [strong]
  edge: [strong]

# One upstream call per scripted answer and no state carried between tests: these tests check what
# the SDK sees for each answer. Retries and cooldowns have their own suite (tests/reliability.rs).
reliability:
  retries: 0
  policies:
    authentication: {{ retries: 0 }}
    not_found: {{ retries: 0 }}
  cooldown: {{ enabled: false }}
"""
    path = directory / ("switchyard-auth.yaml" if api_keys else "switchyard.yaml")
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------------
# The gateway process
# --------------------------------------------------------------------------------------------------

_LISTENING = re.compile(r"switchyard listening on (127\.0\.0\.1:\d+)")
_RUNNING: list[GatewayProcess] = []


def gateway_binary() -> Path:
    raw = os.environ.get("SWITCHYARD_BIN") or "target/debug/switchyard"
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        raise RuntimeError(f"the gateway binary {path} does not exist: run `cargo build` or set SWITCHYARD_BIN")
    return path


class GatewayProcess:
    def __init__(self, name: str, config: Path) -> None:
        self.name = name
        self.config = config
        self.addr = ""
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._addr_q: queue.Queue[str] = queue.Queue()
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.addr}/v1"

    def log(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def log_tail(self, n: int = 60) -> str:
        with self._lock:
            return "".join(self._lines[-n:])

    def _pump(self) -> None:
        # Reads the child's output to the end so that its pipe never fills and blocks it.
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self._lock:
                self._lines.append(line)
            m = _LISTENING.search(line)
            if m:
                self._addr_q.put(m.group(1))

    def start(self) -> None:
        env = dict(os.environ)
        env["RUST_LOG"] = "info"  # the listening line is logged at info
        env.pop("SWITCHYARD_CONFIG", None)
        env.pop("SWITCHYARD_LOG_FORMAT", None)
        cmd = [
            str(gateway_binary()),
            "serve",
            "--config",
            str(self.config),
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        _RUNNING.append(self)
        self._reader = threading.Thread(target=self._pump, name=f"{self.name}-stdout", daemon=True)
        self._reader.start()

        deadline = time.monotonic() + START_DEADLINE_S
        while not self.addr:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise RuntimeError(f"{self.name}: no listening line within {START_DEADLINE_S}s:\n{self.log()}")
            try:
                self.addr = self._addr_q.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None:
                    self._reader.join(timeout=5)
                    raise RuntimeError(
                        f"{self.name}: exited with status {self.proc.returncode} before listening:\n{self.log()}"
                    ) from None

        last_error: object = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.addr}/health/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last_error = resp.status
            except (urllib.error.URLError, OSError) as e:
                last_error = e
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)  # poll interval; the deadline bounds the wait
        self.stop()
        raise RuntimeError(f"{self.name}: /health/ready never answered 200 ({last_error}):\n{self.log()}")

    def stop(self) -> int | None:
        """SIGTERM, then wait for the exit (SIGKILL after STOP_DEADLINE_S). Returns the exit status,
        or None when the process had to be killed."""
        if self.proc is None:
            return None
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                killed = True
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self in _RUNNING:
            _RUNNING.remove(self)
        return None if killed else self.proc.returncode


def _run_gateway(name: str, config: Path):
    gw = GatewayProcess(name, config)
    gw.start()
    yield gw
    status = gw.stop()
    assert status == 0, f"{name} did not exit cleanly on SIGTERM (status {status}):\n{gw.log_tail()}"


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mock_upstream():
    upstream = MockUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


@pytest.fixture(autouse=True)
def _fresh_upstream(request):
    """Every test starts with an empty script and an empty request log, and must use up what it
    scripted: a leftover answer means the gateway did not make a call the test expected."""
    if "mock_upstream" not in request.fixturenames:
        yield
        return
    upstream: MockUpstream = request.getfixturevalue("mock_upstream")
    upstream.reset()
    yield
    leftover = upstream.pending()
    upstream.reset()
    assert not leftover, f"scripted upstream answers were never requested: {leftover}"


@pytest.fixture(scope="session")
def config_path(tmp_path_factory, mock_upstream) -> Path:
    return write_config(tmp_path_factory.mktemp("config"), mock_upstream)


@pytest.fixture(scope="session")
def auth_config_path(tmp_path_factory, mock_upstream) -> Path:
    return write_config(tmp_path_factory.mktemp("config-auth"), mock_upstream, api_keys=[GATEWAY_KEY])


@pytest.fixture(scope="session")
def gateway(config_path):
    yield from _run_gateway("gateway", config_path)


@pytest.fixture(scope="session")
def auth_gateway(auth_config_path):
    yield from _run_gateway("auth-gateway", auth_config_path)


@pytest.fixture
def client(gateway, mock_upstream):
    import openai

    c = openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    yield c
    c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for gw in list(_RUNNING):
            report.sections.append((f"switchyard log ({gw.name}, last lines)", gw.log_tail(40)))
