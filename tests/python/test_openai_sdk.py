"""switchyard as the official OpenAI Python SDK sees it.

Every test drives the real ``openai`` package against the gateway binary, whose only provider is the
mock upstream from ``conftest.py``; assertions cover both what the SDK returns and what the upstream
received.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from conftest import (
    CLIENT_KEY,
    DEFAULT_USAGE,
    EMBED,
    EMBED_DIMENSIONS,
    EMBED_UPSTREAM,
    FAST,
    FAST_UPSTREAM,
    GATEWAY_KEY,
    PROVIDER_KEY,
    SLOW,
    SLOW_UPSTREAM,
    SMART,
    SMART_UPSTREAM,
    Fail,
    Hang,
    Raw,
    Reply,
    ToolCall,
)

USER_ONLY = [{"role": "user", "content": "What is the capital of France?"}]
ALL_NAMES = ["auto", "cheap", "edge", "strong", FAST, SMART, SLOW, EMBED]

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }
]
WEATHER_CHOICE = {"type": "function", "function": {"name": "get_weather"}}
WEATHER_ARGS = '{"city": "Paris", "unit": "celsius"}'


def assert_openai_error_shape(e: openai.APIStatusError, status: int, type_: str, code: str | None) -> dict:
    """The error the SDK raised carries the gateway's status, and the body is OpenAI's
    ``{"error": {message, type, param, code}}`` (the SDK unwraps ``error`` into ``e.body``)."""
    assert e.status_code == status
    raw = e.response.json()
    assert set(raw) == {"error"}, raw
    assert set(raw["error"]) == {"message", "type", "param", "code"}, raw
    assert e.body == raw["error"]
    assert isinstance(e.body["message"], str) and e.body["message"]
    assert e.body["message"] in e.message
    assert e.type == type_
    assert e.code == code
    assert e.request_id and e.request_id == e.response.headers["x-request-id"]
    return e.body


# --------------------------------------------------------------------------------------------------
# Non-streaming completions
# --------------------------------------------------------------------------------------------------


def test_create_returns_the_upstream_answer(client, mock_upstream):
    mock_upstream.script(Reply(content="Paris is the capital of France.", usage={**DEFAULT_USAGE}))
    completion = client.chat.completions.create(model="auto", messages=USER_ONLY)

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Paris is the capital of France."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        12,
        5,
        17,
    )
    # The body is the provider's: it names the deployment that answered.
    assert completion.model == FAST_UPSTREAM
    assert completion.id == "chatcmpl-mock-0001"


def test_raw_response_carries_the_routing_headers(client, mock_upstream):
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=USER_ONLY)
    completion = raw.parse()

    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.headers["x-switchyard-tier"] == "cheap"
    assert raw.headers["x-switchyard-model"] == FAST
    assert raw.headers["x-switchyard-route"] == "default"
    overhead = float(raw.headers["x-switchyard-overhead-ms"])
    assert 0 <= overhead < 10_000
    request_id = raw.headers["x-request-id"]
    assert request_id.startswith("req_") and len(request_id) > len("req_")
    # The SDK exposes the same id.
    assert completion._request_id == request_id
    assert completion.choices[0].message.content == "Hello from the mock upstream."


def test_raw_response_carries_the_cost_headers(client, mock_upstream):
    # 12 prompt tokens (4 of them cached) and 5 completion tokens on the fast model ($0.15 / $0.60
    # per million, no cached rate: cached tokens cost the input rate); the counterfactual tier
    # `strong` charges $3 / $15.
    usage = {**DEFAULT_USAGE, "prompt_tokens_details": {"cached_tokens": 4}}
    mock_upstream.script(Reply(usage=usage), Reply(usage=None))
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=USER_ONLY)
    assert raw.parse().usage.prompt_tokens == 12
    assert raw.headers["x-switchyard-cost-usd"] == "0.0000048000"  # 12 * 0.15 + 5 * 0.60
    assert raw.headers["x-switchyard-counterfactual-usd"] == "0.0001110000"  # 12 * 3 + 5 * 15
    assert "x-switchyard-cost-estimated" not in raw.headers

    # A provider that reports no usage: switchyard counts the tokens and says it did.
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=USER_ONLY)
    assert raw.parse().usage is None
    assert raw.headers["x-switchyard-cost-estimated"] == "true"
    assert float(raw.headers["x-switchyard-cost-usd"]) > 0
    assert float(raw.headers["x-switchyard-counterfactual-usd"]) > float(raw.headers["x-switchyard-cost-usd"])


def test_request_ids_are_unique_and_a_client_id_is_echoed(client, mock_upstream):
    first = client.chat.completions.with_raw_response.create(model="auto", messages=USER_ONLY)
    second = client.chat.completions.with_raw_response.create(model="auto", messages=USER_ONLY)
    assert first.headers["x-request-id"] != second.headers["x-request-id"]

    mine = client.chat.completions.with_raw_response.create(
        model="auto", messages=USER_ONLY, extra_headers={"x-request-id": "trace-abc-123"}
    )
    assert mine.headers["x-request-id"] == "trace-abc-123"
    assert mine.parse()._request_id == "trace-abc-123"


def test_upstream_receives_the_request_rewritten_for_the_provider(client, mock_upstream):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one, please.", "name": "alice"},
    ]
    client.chat.completions.create(
        model="auto",
        messages=messages,
        temperature=0.25,
        max_tokens=64,
        seed=7,
        user="end-user-9",
        metadata={"team": "search"},
        extra_body={"vendor_knob": {"beam_width": 3, "flags": ["a", "b"]}, "top_k": 40},
    )
    call = mock_upstream.only_chat_request()
    assert call.method == "POST"
    assert call.path == "/v1/chat/completions"
    body = call.body
    # The model is replaced by the provider's id; everything else the client sent arrives intact.
    assert body["model"] == FAST_UPSTREAM
    assert body["messages"] == messages
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 64
    assert body["seed"] == 7
    assert body["user"] == "end-user-9"
    assert body["vendor_knob"] == {"beam_width": 3, "flags": ["a", "b"]}
    assert body["top_k"] == 40
    assert not body.get("stream")
    # metadata is for the gateway (routing hints); the provider never sees it.
    assert "metadata" not in body
    # The provider gets the provider key from the config, never the client's key or SDK telemetry.
    assert call.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert call.headers["content-type"].startswith("application/json")
    assert not any(CLIENT_KEY in v for v in call.headers.values())
    assert not any(k.startswith("x-stainless") for k in call.headers)


def test_metadata_routes_without_being_forwarded(client, mock_upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=USER_ONLY, metadata={"task_type": "review"}
    )
    assert raw.headers["x-switchyard-route"] == "rules:review"
    assert raw.headers["x-switchyard-tier"] == "strong"
    body = mock_upstream.only_chat_request().body
    assert body["model"] == SMART_UPSTREAM
    assert "metadata" not in body


@pytest.mark.parametrize(
    ("model", "messages", "route", "tier", "served", "upstream_id"),
    [
        pytest.param(
            "auto",
            [{"role": "user", "content": "Prove that the square root of 2 is irrational."}],
            "rules:reasoning",
            "strong",
            SMART,
            SMART_UPSTREAM,
            id="auto-rule-keyword",
        ),
        pytest.param(
            "auto",
            [{"role": "user", "content": "Walk me through it STEP BY STEP."}],
            "rules:reasoning",
            "strong",
            SMART,
            SMART_UPSTREAM,
            id="auto-rule-case-insensitive-phrase",
        ),
        pytest.param("auto", USER_ONLY, "default", "cheap", FAST, FAST_UPSTREAM, id="auto-default"),
        pytest.param(
            "auto",
            [
                {"role": "user", "content": "Prove Fermat's little theorem."},
                {"role": "assistant", "content": "Done."},
                {"role": "user", "content": "Thanks! Now say hi."},
            ],
            "default",
            "cheap",
            FAST,
            FAST_UPSTREAM,
            id="auto-only-the-last-user-message-counts",
        ),
        pytest.param("strong", USER_ONLY, "tier:strong", "strong", SMART, SMART_UPSTREAM, id="tier-name"),
        pytest.param(
            FAST,
            [{"role": "user", "content": "Prove it step by step."}],
            f"model:{FAST}",
            "cheap",
            FAST,
            FAST_UPSTREAM,
            id="model-name-bypasses-rules",
        ),
    ],
)
def test_model_field_selects_the_route(client, mock_upstream, model, messages, route, tier, served, upstream_id):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    assert raw.headers["x-switchyard-route"] == route
    assert raw.headers["x-switchyard-tier"] == tier
    assert raw.headers["x-switchyard-model"] == served
    call = mock_upstream.only_chat_request()
    assert call.body["model"] == upstream_id
    assert call.body["messages"] == messages


def test_concurrent_requests_get_their_own_answers(client, mock_upstream):
    prompts = [f"question number {i}" for i in range(8)]
    mock_upstream.script(*[Reply(echo=True) for _ in prompts])

    def ask(prompt):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": prompt}]
        )
        return raw.headers["x-request-id"], raw.parse().choices[0].message.content

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        results = list(pool.map(ask, prompts))
    assert [content for _, content in results] == [f"echo: {p}" for p in prompts]
    assert len({rid for rid, _ in results}) == len(prompts)
    assert sorted(c.body["messages"][0]["content"] for c in mock_upstream.chat_requests()) == sorted(prompts)


# --------------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------------


def test_stream_joins_to_the_full_text_without_usage(client, mock_upstream):
    text = "The quick brown fox jumps over the lazy dog."
    mock_upstream.script(Reply(content=text))
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=USER_ONLY, stream=True)
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-switchyard-tier"] == "cheap"
    assert raw.headers["x-switchyard-model"] == FAST
    assert raw.headers["x-switchyard-route"] == "default"
    assert raw.headers["x-request-id"]

    chunks = list(raw.parse())
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(contents) > 1, "the answer should arrive in several chunks"
    assert "".join(contents) == text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    # The client did not ask for usage, so no chunk carries it...
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    # ...but the gateway asked the provider for it (for its own accounting).
    body = mock_upstream.only_chat_request().body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["model"] == FAST_UPSTREAM


def test_stream_with_include_usage_ends_with_a_usage_chunk(client, mock_upstream):
    usage = {"prompt_tokens": 31, "completion_tokens": 9, "total_tokens": 40}
    mock_upstream.script(Reply(content="one two three four", usage=usage))
    stream = client.chat.completions.create(
        model="auto", messages=USER_ONLY, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (31, 9, 40)
    assert [c for c in chunks[:-1] if c.usage is not None] == []
    assert mock_upstream.only_chat_request().body["stream_options"] == {"include_usage": True}


def test_stream_is_delivered_as_it_is_generated(client, mock_upstream):
    """The first words reach the client while the provider is still generating: the mock holds the
    rest of the answer back until the client has seen the first content chunk."""
    gate = threading.Event()
    mock_upstream.script(Reply(content="first second third", gate=gate))
    stream = client.chat.completions.create(model="auto", messages=USER_ONLY, stream=True)
    received = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
            gate.set()
    assert "".join(received) == "first second third"
    assert mock_upstream.gate_timeouts == 0, "the first chunk only reached the client after the whole answer"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(content="partial answer that never ends", break_after=3), id="connection-dropped"),
        # The body ends cleanly, but before the finish_reason chunk and [DONE]: the answer was cut
        # off (a proxy restart, a load balancer's idle timeout), not complete.
        pytest.param(Reply(content="partial answer that stops here", end_after=3), id="clean-end-without-done"),
        pytest.param(
            Reply(
                content="partial answer",
                stream_error={"message": "The server had an error while processing your request.", "type": "server_error"},
            ),
            id="error-event",
        ),
    ],
)
def test_a_stream_that_breaks_off_raises_in_the_sdk(client, mock_upstream, reply):
    mock_upstream.script(reply)
    stream = client.chat.completions.create(model="auto", messages=USER_ONLY, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received, "the content sent before the failure should have been delivered"
    assert "interrupted" in info.value.message
    assert isinstance(info.value.body, dict) and info.value.body.get("type") == "api_error"
    mock_upstream.only_chat_request()


def test_a_stream_cut_off_is_reported_with_what_arrived(client, mock_upstream):
    """The cut-off answer's text reached the client before the error, and the error says why."""
    mock_upstream.script(Reply(content="one two three four five", end_after=3))
    stream = client.chat.completions.create(model="auto", messages=USER_ONLY, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert "".join(received) == "one two "
    assert "cut off" in info.value.message
    assert info.value.code == "cut_off"
    mock_upstream.only_chat_request()


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_stream_without_done_but_with_its_finish_reason_is_complete(client, mock_upstream, include_usage):
    """Servers that never send [DONE] still end each answer with a finish_reason: that is enough."""
    usage = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    mock_upstream.script(Reply(content="one two three four", usage=usage, omit_done=True))
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client.chat.completions.create(model="auto", messages=USER_ONLY, stream=True, **extra))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    if include_usage:
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    mock_upstream.only_chat_request()


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


def test_models_list_offers_auto_tiers_and_models(client):
    page = client.models.list()
    ids = [m.id for m in page.data]
    assert ids[0] == "auto"
    assert sorted(ids) == sorted(ALL_NAMES)
    assert len(ids) == len(set(ids))
    assert all(m.object == "model" for m in page.data)


def test_models_retrieve(client):
    auto = client.models.retrieve("auto")
    assert auto.id == "auto"
    assert auto.object == "model"
    assert auto.owned_by == "switchyard"

    tier = client.models.retrieve("strong")
    assert tier.id == "strong" and tier.owned_by == "switchyard"

    model = client.models.retrieve(FAST)
    assert model.id == FAST
    assert model.owned_by == "mock"


def test_models_retrieve_unknown_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-17-ultra")
    body = assert_openai_error_shape(info.value, 404, "invalid_request_error", "model_not_found")
    assert "gpt-17-ultra" in body["message"]
    for name in ALL_NAMES:
        assert name in body["message"]


# --------------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------------


def test_tool_call_round_trip(client, mock_upstream):
    mock_upstream.script(Reply(content=None, tool_calls=[ToolCall("get_weather", WEATHER_ARGS, id="call_w1")]))
    completion = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=WEATHER_TOOLS,
        tool_choice=WEATHER_CHOICE,
        parallel_tool_calls=False,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.id == "call_w1"
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}

    sent = mock_upstream.only_chat_request().body
    assert sent["tools"] == WEATHER_TOOLS
    assert sent["tool_choice"] == WEATHER_CHOICE
    assert sent["parallel_tool_calls"] is False


def test_tool_results_reach_the_provider_intact(client, mock_upstream):
    """The second turn of a tool conversation: an assistant turn with only tool calls (no content)
    and the tool's answer must arrive exactly as sent."""
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": WEATHER_ARGS}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": '{"temp_c": 18}'},
    ]
    mock_upstream.script(Reply(content="It is 18 °C in Paris."))
    completion = client.chat.completions.create(model="auto", messages=messages, tools=WEATHER_TOOLS)
    assert completion.choices[0].message.content == "It is 18 °C in Paris."
    sent = mock_upstream.only_chat_request().body["messages"]
    assert sent[0] == messages[0]
    assert sent[1]["tool_calls"] == messages[1]["tool_calls"]
    assert sent[1]["role"] == "assistant" and sent[1].get("content") is None
    assert sent[2] == messages[2]


def test_streamed_tool_call_assembles_from_deltas(client, mock_upstream):
    args = '{"city": "Reykjavik", "unit": "fahrenheit"}'
    mock_upstream.script(Reply(content=None, tool_calls=[ToolCall("get_weather", args, id="call_s1")]))
    stream = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Weather in Reykjavik?"}],
        tools=WEATHER_TOOLS,
        tool_choice="required",
        stream=True,
    )
    ids, names, fragments, finish = [], [], [], None
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        for tc in choice.delta.tool_calls or []:
            assert tc.index == 0
            if tc.id:
                ids.append(tc.id)
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            if tc.function and tc.function.arguments:
                fragments.append(tc.function.arguments)
        finish = choice.finish_reason or finish
    assert ids == ["call_s1"]
    assert names == ["get_weather"]
    assert len(fragments) > 1, "the arguments should arrive in several deltas"
    assert json.loads("".join(fragments)) == {"city": "Reykjavik", "unit": "fahrenheit"}
    assert finish == "tool_calls"
    sent = mock_upstream.only_chat_request().body
    assert sent["tools"] == WEATHER_TOOLS
    assert sent["tool_choice"] == "required"


# --------------------------------------------------------------------------------------------------
# Errors, as the SDK's own exception types
# --------------------------------------------------------------------------------------------------


def test_invalid_role_is_a_bad_request(client, mock_upstream):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="auto", messages=[{"role": "robot", "content": "beep"}])
    body = assert_openai_error_shape(info.value, 400, "invalid_request_error", None)
    assert body["param"] == "messages[0].role"
    assert "robot" in body["message"]
    assert mock_upstream.chat_requests() == [], "an invalid request must not reach the provider"


@pytest.mark.parametrize(
    ("message", "code", "param"),
    [
        pytest.param("Invalid value for 'temperature': must be between 0 and 2.", "invalid_value", "temperature", id="invalid-value"),
        pytest.param(
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
            "context_length_exceeded",
            "messages",
            id="context-length",
        ),
    ],
)
def test_upstream_bad_request_keeps_its_details_and_is_not_retried(client, mock_upstream, message, code, param):
    mock_upstream.script(Fail(400, message, code=code, param=param))
    # `auto` lands on `cheap`, which has a fallback tier: a bad request must not escalate to it.
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="auto", messages=USER_ONLY, temperature=1.5)
    body = assert_openai_error_shape(info.value, 400, "invalid_request_error", code)
    assert body["param"] == param
    assert message in body["message"]
    assert info.value.response.headers["x-switchyard-model"] == FAST
    assert mock_upstream.only_chat_request().body["temperature"] == 1.5


def test_unknown_model_is_not_found_and_lists_the_choices(client, mock_upstream):
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model="gpt-4o", messages=USER_ONLY, stream=stream)
        body = assert_openai_error_shape(info.value, 404, "invalid_request_error", "model_not_found")
        assert body["param"] == "model"
        assert "gpt-4o" in body["message"]
        for name in ALL_NAMES:
            assert name in body["message"], f"{name} missing from {body['message']!r}"
    assert mock_upstream.chat_requests() == []


@pytest.mark.parametrize(
    ("upstream_headers", "expected_retry_after"),
    [
        pytest.param({"retry-after": "7"}, "7", id="retry-after-seconds"),
        pytest.param({"retry-after-ms": "1500"}, "2", id="retry-after-ms-rounded-up"),
    ],
)
def test_upstream_rate_limit_is_a_rate_limit_error(client, mock_upstream, upstream_headers, expected_retry_after):
    mock_upstream.script(
        Fail(429, "Rate limit reached for requests", type="requests", code="rate_limit_exceeded", headers=upstream_headers)
    )
    # `strong` has no fallback tier, so the 429 reaches the client.
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="strong", messages=USER_ONLY)
    body = assert_openai_error_shape(info.value, 429, "rate_limit_error", "rate_limit_exceeded")
    assert "Rate limit reached" in body["message"]
    assert info.value.response.headers["retry-after"] == expected_retry_after
    mock_upstream.only_chat_request()


def test_upstream_rate_limit_before_a_stream_starts(client, mock_upstream):
    mock_upstream.script(Fail(429, "Slow down", code="rate_limit_exceeded", headers={"retry-after": "3"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="strong", messages=USER_ONLY, stream=True)
    assert_openai_error_shape(info.value, 429, "rate_limit_error", "rate_limit_exceeded")
    assert info.value.response.headers["retry-after"] == "3"
    mock_upstream.only_chat_request()


def test_upstream_server_error_is_an_internal_server_error(client, mock_upstream):
    mock_upstream.script(Fail(500, "The server had an error while processing your request.", type="server_error"))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=SMART, messages=USER_ONLY)
    body = assert_openai_error_shape(info.value, 500, "api_error", "upstream_error")
    assert "had an error" in body["message"]
    assert info.value.response.headers["x-switchyard-model"] == SMART
    mock_upstream.only_chat_request()


@pytest.mark.parametrize(
    ("answer", "status", "code", "needle"),
    [
        pytest.param(
            Raw(503, "<html><body>503 Service Unavailable</body></html>"),
            503,
            "upstream_error",
            "503 Service Unavailable",
            id="proxy-html-503",
        ),
        pytest.param(
            Raw(200, "<html>not json</html>"), 502, "upstream_invalid_response", "not valid JSON", id="200-not-json"
        ),
        pytest.param(
            Raw(200, '{"object": "chat.completion"}', "application/json"),
            502,
            "upstream_invalid_response",
            "choices",
            id="200-without-choices",
        ),
    ],
)
def test_unusable_upstream_answers_are_server_errors(client, mock_upstream, answer, status, code, needle):
    mock_upstream.script(answer)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="strong", messages=USER_ONLY)
    body = assert_openai_error_shape(info.value, status, "api_error", code)
    assert needle in body["message"]
    mock_upstream.only_chat_request()


def test_upstream_timeout_is_a_gateway_timeout(client, mock_upstream):
    mock_upstream.script(Hang())
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=SLOW, messages=USER_ONLY)
    assert_openai_error_shape(info.value, 504, "timeout_error", "upstream_timeout")
    assert mock_upstream.only_chat_request().body["model"] == SLOW_UPSTREAM


@pytest.mark.parametrize(
    ("status", "type_", "code"),
    [
        pytest.param(401, "upstream_authentication_error", "upstream_authentication_failed", id="401"),
        pytest.param(403, "upstream_permission_error", "upstream_permission_denied", id="403"),
    ],
)
def test_upstream_auth_failure_is_reported_without_the_key(client, mock_upstream, status, type_, code):
    """The provider rejecting the gateway's own key is a gateway-side failure (502): the SDK must
    not raise AuthenticationError / PermissionDeniedError as if the client's key were wrong."""
    mock_upstream.script(Fail(status, "Incorrect API key provided: {key}.", code="invalid_api_key"))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="strong", messages=USER_ONLY)
    assert not isinstance(info.value, (openai.AuthenticationError, openai.PermissionDeniedError))
    body = assert_openai_error_shape(info.value, 502, type_, code)
    assert "Incorrect API key provided" in body["message"]
    # The provider echoed the key it got; the gateway must not show it to its clients.
    assert PROVIDER_KEY not in info.value.response.text
    assert "[redacted]" in body["message"]
    mock_upstream.only_chat_request()


def test_gateway_keys(auth_gateway, mock_upstream):
    wrong = openai.OpenAI(base_url=auth_gateway.base_url, api_key="sk-not-a-gateway-key", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.chat.completions.create(model="auto", messages=USER_ONLY)
    assert_openai_error_shape(info.value, 401, "invalid_request_error", "invalid_api_key")
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    assert mock_upstream.chat_requests() == []

    right = openai.OpenAI(base_url=auth_gateway.base_url, api_key=GATEWAY_KEY, max_retries=0, timeout=30)
    completion = right.chat.completions.create(model="auto", messages=USER_ONLY)
    assert completion.choices[0].message.content == "Hello from the mock upstream."
    assert "auto" in [m.id for m in right.models.list().data]
    # The gateway key stays at the gateway; the provider gets its own key.
    call = mock_upstream.only_chat_request()
    assert call.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert not any(GATEWAY_KEY in v for v in call.headers.values())
    wrong.close()
    right.close()


def test_budget_exceeded_is_raised_at_once_not_retried(auth_gateway, auth_config_path, mock_upstream):
    """A key over its budget gets a 402, which the SDK raises without retrying (it retries 408,
    409, 429 and 5xx by itself): one refusal at the gateway, no call upstream."""
    import subprocess
    import time

    from conftest import gateway_binary

    out = subprocess.run(
        [str(gateway_binary()), "keys", "create", "sdk-spent", "--team", "sdk", "--budget-usd", "0",
         "--json", "--config", str(auth_config_path)],
        capture_output=True, text=True, check=True,
    )
    key = json.loads(out.stdout)["key"]
    c = openai.OpenAI(base_url=auth_gateway.base_url, api_key=key, max_retries=2, timeout=30)
    # The running gateway re-reads its keys every 500 ms; until then the key is unknown (401).
    deadline = time.monotonic() + 5
    while True:
        try:
            c.chat.completions.create(model="auto", messages=USER_ONLY)
            raise AssertionError("a key without budget was served")
        except openai.AuthenticationError:
            assert time.monotonic() < deadline, "the gateway never saw the new key"
            time.sleep(0.05)
        except openai.APIStatusError as e:
            error = e
            break
    assert error.status_code == 402
    assert error.code == "budget_exceeded"
    assert error.body["budget_usd"] == 0 and "resets_at" in error.body
    metrics = urllib.request.urlopen(auth_gateway.base_url.removesuffix("/v1") + "/metrics", timeout=30).read().decode()
    assert 'switchyard_key_refusals_total{reason="budget",team="sdk"} 1' in metrics
    assert mock_upstream.chat_requests() == []
    c.close()


def test_gateway_key_missing(auth_gateway, mock_upstream):
    """Not every client is the SDK: a request without any key gets the OpenAI-shaped 401 too."""
    req = urllib.request.Request(
        f"{auth_gateway.base_url}/chat/completions",
        data=json.dumps({"model": "auto", "messages": USER_ONLY}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 401
    body = json.loads(info.value.read())
    assert body["error"]["code"] == "missing_api_key"
    assert body["error"]["type"] == "invalid_request_error"
    assert info.value.headers["x-request-id"]
    assert mock_upstream.chat_requests() == []


def test_unsupported_endpoint_is_not_found(client, mock_upstream):
    with pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="auto", prompt="hello")
    body = assert_openai_error_shape(info.value, 404, "invalid_request_error", "unknown_url")
    assert "/v1/completions" in body["message"]
    assert mock_upstream.requests() == []


# --------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------


def mock_vector(i: int, dims: int = EMBED_DIMENSIONS) -> list[float]:
    """The mock's vector for input ``i`` (see ``conftest._embeddings``)."""
    return [i + j * 0.5 for j in range(dims)]


def test_embeddings_single_input(client, mock_upstream):
    raw = client.embeddings.with_raw_response.create(model=EMBED, input="the quick brown fox")
    result = raw.parse()
    assert result.object == "list"
    assert [d.index for d in result.data] == [0]
    # The SDK asks for base64 on its own and decodes it: the vector arrives intact.
    assert result.data[0].embedding == mock_vector(0)
    assert result.usage.prompt_tokens == 4 and result.usage.total_tokens == 4
    (call,) = mock_upstream.embedding_requests()
    assert call.body == {"model": EMBED_UPSTREAM, "input": "the quick brown fox", "encoding_format": "base64"}
    assert call.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert raw.headers["x-switchyard-model"] == EMBED
    assert raw.headers["x-switchyard-route"] == f"model:{EMBED}"
    # 4 tokens at $0.02 per million, and an embedding is its own counterfactual.
    assert raw.headers["x-switchyard-cost-usd"] == "0.0000000800"
    assert raw.headers["x-switchyard-counterfactual-usd"] == "0.0000000800"
    assert mock_upstream.chat_requests() == []


def test_embeddings_batch_keeps_the_order(client, mock_upstream):
    texts = ["one", "two words", "three more words"]
    result = client.embeddings.create(model=EMBED, input=texts, user="batch-job")
    assert [d.index for d in result.data] == [0, 1, 2]
    assert [d.embedding for d in result.data] == [mock_vector(i) for i in range(3)]
    assert result.usage.prompt_tokens == 6
    (call,) = mock_upstream.embedding_requests()
    assert call.body["input"] == texts
    assert call.body["user"] == "batch-job"


def test_embeddings_base64_when_asked(client, mock_upstream):
    result = client.embeddings.create(model=EMBED, input=["a", "b"], encoding_format="base64")
    # Asked for explicitly, the SDK hands the base64 text back as it came.
    for i, d in enumerate(result.data):
        assert isinstance(d.embedding, str)
        decoded = list(struct.unpack(f"<{EMBED_DIMENSIONS}f", base64.b64decode(d.embedding)))
        assert decoded == mock_vector(i)
    (call,) = mock_upstream.embedding_requests()
    assert call.body["encoding_format"] == "base64"


def test_embeddings_dimensions_and_token_ids(client, mock_upstream):
    result = client.embeddings.create(model=EMBED, input=[[1, 2, 3], [4, 5]], dimensions=3, encoding_format="float")
    assert [d.embedding for d in result.data] == [mock_vector(0, 3), mock_vector(1, 3)]
    assert result.usage.prompt_tokens == 5
    (call,) = mock_upstream.embedding_requests()
    assert call.body == {
        "model": EMBED_UPSTREAM,
        "input": [[1, 2, 3], [4, 5]],
        "dimensions": 3,
        "encoding_format": "float",
    }


def test_embeddings_refusals_name_the_field(client, mock_upstream):
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=FAST, input="hello")
    body = assert_openai_error_shape(info.value, 400, "invalid_request_error", "model_not_embedding")
    assert body["param"] == "model" and EMBED in body["message"]
    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="text-embedding-9", input="hello")
    body = assert_openai_error_shape(info.value, 404, "invalid_request_error", "model_not_found")
    assert body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=EMBED, input=[])
    assert assert_openai_error_shape(info.value, 400, "invalid_request_error", None)["param"] == "input"
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=EMBED, input=["ok", 7])  # type: ignore[list-item]
    assert assert_openai_error_shape(info.value, 400, "invalid_request_error", None)["param"] == "input[1]"
    # And a chat request cannot name the embedding model.
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=EMBED, messages=USER_ONLY)
    assert assert_openai_error_shape(info.value, 400, "invalid_request_error", "model_not_chat")["param"] == "model"
    assert mock_upstream.requests() == []


# --------------------------------------------------------------------------------------------------
# Fallbacks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "failing_upstream", "failure", "stream", "route"),
    [
        pytest.param("auto", FAST_UPSTREAM, Fail(500, "boom", type="server_error"), False, "default", id="500"),
        pytest.param("auto", FAST_UPSTREAM, Fail(500, "boom", type="server_error"), True, "default", id="500-stream"),
        pytest.param(
            "cheap", FAST_UPSTREAM, Fail(429, "busy", headers={"retry-after": "30"}), False, "tier:cheap", id="429"
        ),
        pytest.param("auto", FAST_UPSTREAM, Raw(200, "<html>oops</html>"), False, "default", id="invalid-json"),
        pytest.param("edge", SLOW_UPSTREAM, Hang(), False, "tier:edge", id="timeout"),
        pytest.param("edge", SLOW_UPSTREAM, Hang(), True, "tier:edge", id="timeout-stream"),
    ],
)
def test_fallback_tier_answers_when_the_first_tier_fails(
    client, mock_upstream, model, failing_upstream, failure, stream, route
):
    mock_upstream.script(failure, model=failing_upstream)
    mock_upstream.script(Reply(content="answered by the fallback tier"), model=SMART_UPSTREAM)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=USER_ONLY, stream=stream)
    assert raw.status_code == 200
    assert raw.headers["x-switchyard-tier"] == "strong"
    assert raw.headers["x-switchyard-model"] == SMART
    assert raw.headers["x-switchyard-route"] == route
    parsed = raw.parse()
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    else:
        text = parsed.choices[0].message.content
    assert text == "answered by the fallback tier"
    calls = mock_upstream.chat_requests()
    assert [c.body["model"] for c in calls] == [failing_upstream, SMART_UPSTREAM]
    assert calls[0].body["messages"] == calls[1].body["messages"] == USER_ONLY


# --------------------------------------------------------------------------------------------------
# The async client
# --------------------------------------------------------------------------------------------------


def test_async_client_streams(gateway, mock_upstream):
    mock_upstream.script(Reply(content="async streaming works fine", usage={**DEFAULT_USAGE}))

    async def run():
        async with openai.AsyncOpenAI(
            base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30
        ) as aclient:
            stream = await aclient.chat.completions.create(
                model="auto",
                messages=[{"role": "user", "content": "Prove that async works."}],
                stream=True,
                stream_options={"include_usage": True},
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "async streaming works fine"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == DEFAULT_USAGE["total_tokens"]
    assert mock_upstream.only_chat_request().body["model"] == SMART_UPSTREAM
