"""switchyard as the official Anthropic Python SDK sees it (``ANTHROPIC_BASE_URL`` pointed at the
gateway).

Every test drives the real ``anthropic`` package against the gateway binary, which has two
upstreams: the OpenAI-compatible mock from ``conftest.py`` (the default tier) and an Anthropic
Messages mock (``anthropic_mock.py``, the tier a ``claude-sonnet-4-5`` rule picks). Assertions
cover what the SDK returns and raises, and what each upstream received.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import anthropic
import pytest
from anthropic_mock import USAGE, AnthropicMock, Message
from conftest import (
    DEFAULT_USAGE,
    FAST,
    FAST_UPSTREAM,
    GATEWAY_KEY,
    PROVIDER_KEY,
    Fail,
    Reply,
    ToolCall,
    _run_gateway,
)

OPENAI_ROUTED = "claude-haiku-4-5"  # an alias: routed like `auto`, to the default tier
ANTHROPIC_ROUTED = "claude-sonnet-4-5"  # an alias a rule sends to the Anthropic tier
CLAUDE_UPSTREAM = "claude-upstream-1"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _config(directory: Path, openai_base: str, anthropic_base: str) -> Path:
    text = f"""\
server:
  listen: "127.0.0.1:0"
  drain_timeout: 5s
  api_keys: ["{GATEWAY_KEY}"]
providers:
  mock: {{ kind: openai, base_url: "{openai_base}", api_key: "{PROVIDER_KEY}", timeout: 20s }}
  claude: {{ kind: anthropic, base_url: "{anthropic_base}", api_key: "{PROVIDER_KEY}", timeout: 20s }}
models:
  - {{ name: {FAST}, provider: mock, model: {FAST_UPSTREAM}, price: {{ input: 0.15, output: 0.60 }} }}
  - {{ name: sonnet, provider: claude, model: {CLAUDE_UPSTREAM}, price: {{ input: 3.00, output: 15.00 }} }}
tiers:
  cheap: {{ models: [{FAST}] }}
  claude: {{ models: [sonnet] }}
routing:
  default: cheap
  counterfactual: claude
  aliases: [{OPENAI_ROUTED}, {ANTHROPIC_ROUTED}]
  rules:
    - {{ name: sonnet, when: {{ model: [{ANTHROPIC_ROUTED}] }}, tier: claude }}
reliability:
  retries: 0
  policies:
    authentication: {{ retries: 0 }}
    not_found: {{ retries: 0 }}
  cooldown: {{ enabled: false }}
"""
    path = directory / "switchyard-messages.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def anthropic_upstream():
    m = AnthropicMock()
    m.start()
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def _fresh_anthropic(anthropic_upstream):
    anthropic_upstream.reset()
    yield
    leftover = anthropic_upstream.pending()
    anthropic_upstream.reset()
    assert not leftover, f"scripted Anthropic answers were never requested: {leftover}"


@pytest.fixture(scope="session")
def messages_gateway(tmp_path_factory, mock_upstream, anthropic_upstream):
    path = _config(tmp_path_factory.mktemp("config-messages"), mock_upstream.base_url, anthropic_upstream.base_url)
    yield from _run_gateway("messages-gateway", path)


def _base(gw) -> str:
    # What ANTHROPIC_BASE_URL holds: the gateway's address, without /v1 (the SDK adds it).
    return f"http://{gw.addr}"


@pytest.fixture
def client(messages_gateway, mock_upstream):
    c = anthropic.Anthropic(base_url=_base(messages_gateway), api_key=GATEWAY_KEY, max_retries=0, timeout=30)
    yield c
    c.close()


def test_create_through_an_openai_upstream(client, mock_upstream, anthropic_upstream):
    raw = client.messages.with_raw_response.create(
        model=OPENAI_ROUTED, max_tokens=100, system="Be brief.", messages=QUESTION, stop_sequences=["END"]
    )
    assert raw.headers["x-switchyard-tier"] == "cheap"
    assert float(raw.headers["x-switchyard-cost-usd"]) > 0
    msg = raw.parse()
    assert isinstance(msg, anthropic.types.Message)
    assert msg.role == "assistant"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "Hello from the mock upstream."
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == DEFAULT_USAGE["prompt_tokens"]
    assert msg.usage.output_tokens == DEFAULT_USAGE["completion_tokens"]
    sent = mock_upstream.only_chat_request()
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert sent.body["model"] == FAST_UPSTREAM
    assert sent.body["messages"] == [{"role": "system", "content": "Be brief."}, *QUESTION]
    assert sent.body["max_tokens"] == 100
    assert sent.body["stop"] == ["END"]
    assert anthropic_upstream.requests() == []


def test_create_through_an_anthropic_upstream_is_sent_natively(client, mock_upstream, anthropic_upstream):
    msg = client.messages.create(
        model=ANTHROPIC_ROUTED,
        max_tokens=2048,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=QUESTION,
        thinking={"type": "enabled", "budget_tokens": 1024},
        metadata={"user_id": "user-42"},
        # Sampling settings are not keyword arguments in every SDK release; the body carries them.
        extra_body={"top_k": 7},
    )
    assert msg.content[0].text == "Hello from the anthropic mock."
    assert msg.id == "msg_mock_0001"
    assert msg.usage.input_tokens == USAGE["input_tokens"]
    assert mock_upstream.chat_requests() == []
    [sent] = anthropic_upstream.requests()
    assert sent.headers["x-api-key"] == PROVIDER_KEY
    assert GATEWAY_KEY not in json.dumps(sent.headers)
    assert sent.body == {
        "model": CLAUDE_UPSTREAM,
        "max_tokens": 2048,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": QUESTION,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "top_k": 7,
        "metadata": {"user_id": "user-42"},
    }


def test_async_client(messages_gateway, mock_upstream, anthropic_upstream):
    async def both():
        async with anthropic.AsyncAnthropic(
            base_url=_base(messages_gateway), api_key=GATEWAY_KEY, max_retries=0, timeout=30
        ) as c:
            return await asyncio.gather(
                c.messages.create(model=OPENAI_ROUTED, max_tokens=50, messages=QUESTION),
                c.messages.create(model=ANTHROPIC_ROUTED, max_tokens=50, messages=QUESTION),
            )

    first, second = asyncio.run(both())
    assert first.content[0].text == "Hello from the mock upstream."
    assert second.content[0].text == "Hello from the anthropic mock."


@pytest.mark.parametrize(
    ("model", "text", "output_tokens"),
    [
        (OPENAI_ROUTED, "Hello from the mock upstream.", DEFAULT_USAGE["completion_tokens"]),
        (ANTHROPIC_ROUTED, "Hello from the anthropic mock.", USAGE["output_tokens"]),
    ],
)
def test_stream_text_and_final_message(client, mock_upstream, anthropic_upstream, model, text, output_tokens):
    with client.messages.stream(model=model, max_tokens=100, messages=QUESTION) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1, "the answer arrives in pieces"
    assert "".join(pieces) == text
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == output_tokens


def test_async_stream(messages_gateway, mock_upstream, anthropic_upstream):
    async def run():
        async with anthropic.AsyncAnthropic(
            base_url=_base(messages_gateway), api_key=GATEWAY_KEY, max_retries=0, timeout=30
        ) as c:
            async with c.messages.stream(model=OPENAI_ROUTED, max_tokens=100, messages=QUESTION) as s:
                text = "".join([t async for t in s.text_stream])
                return text, await s.get_final_message()

    text, final = asyncio.run(run())
    assert text == final.content[0].text == "Hello from the mock upstream."


def test_tool_use_round_trip_through_an_openai_upstream(client, mock_upstream):
    mock_upstream.script(Reply(content=None, tool_calls=[ToolCall("get_weather", '{"city": "Paris"}', id="call_w1")]))
    first = client.messages.create(
        model=OPENAI_ROUTED, max_tokens=100, messages=QUESTION, tools=[WEATHER_TOOL], tool_choice={"type": "any"}
    )
    assert first.stop_reason == "tool_use"
    [use] = first.content
    assert use.type == "tool_use"
    assert (use.id, use.name, use.input) == ("call_w1", "get_weather", {"city": "Paris"})
    sent = mock_upstream.chat_requests()[0].body
    assert sent["tool_choice"] == "required"
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]

    second = client.messages.create(
        model=OPENAI_ROUTED,
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[
            *QUESTION,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C, sunny"}]},
        ],
    )
    assert second.content[0].text == "Hello from the mock upstream."
    msgs = mock_upstream.chat_requests()[1].body["messages"]
    assert msgs[1]["tool_calls"][0]["id"] == "call_w1"
    assert json.loads(msgs[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert msgs[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "18C, sunny"}


def test_streamed_tool_use_assembles_its_input(client, mock_upstream):
    mock_upstream.script(
        Reply(content=None, tool_calls=[ToolCall("get_weather", '{"city": "Rome", "days": 3}', id="call_w2")])
    )
    with client.messages.stream(model=OPENAI_ROUTED, max_tokens=100, messages=QUESTION, tools=[WEATHER_TOOL]) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    [use] = final.content
    assert (use.id, use.name, use.input) == ("call_w2", "get_weather", {"city": "Rome", "days": 3})


def test_tool_use_round_trip_through_an_anthropic_upstream(client, anthropic_upstream):
    anthropic_upstream.script(Message(text="Checking.", tool_uses=[("toolu_01", "get_weather", {"city": "Oslo"})]))
    with client.messages.stream(model=ANTHROPIC_ROUTED, max_tokens=100, messages=QUESTION, tools=[WEATHER_TOOL]) as s:
        first = s.get_final_message()
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    assert first.content[1].input == {"city": "Oslo"}
    reply = [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "-3C"}]
    client.messages.create(
        model=ANTHROPIC_ROUTED,
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[*QUESTION, {"role": "assistant", "content": first.content}, {"role": "user", "content": reply}],
    )
    sent = anthropic_upstream.requests()[1].body
    use = sent["messages"][1]["content"][1]
    assert (use["type"], use["id"], use["name"], use["input"]) == ("tool_use", "toolu_01", "get_weather", {"city": "Oslo"})
    assert sent["messages"][2]["content"] == reply
    assert sent["tools"] == [WEATHER_TOOL]


def test_count_tokens(client):
    short = client.messages.count_tokens(model=OPENAI_ROUTED, messages=QUESTION)
    longer = client.messages.count_tokens(
        model=OPENAI_ROUTED, system="You are a geography tutor who answers at length.", messages=QUESTION
    )
    assert 0 < short.input_tokens < longer.input_tokens


def test_wrong_key_is_an_authentication_error(messages_gateway, mock_upstream):
    c = anthropic.Anthropic(base_url=_base(messages_gateway), api_key="sk-not-a-gateway-key-1234", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        c.messages.create(model=OPENAI_ROUTED, max_tokens=10, messages=QUESTION)
    assert e.value.status_code == 401
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "authentication_error"
    assert mock_upstream.chat_requests() == []


def test_bad_requests_name_the_field(client, mock_upstream):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=OPENAI_ROUTED, max_tokens=10, messages=[])
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "messages" in e.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=OPENAI_ROUTED, max_tokens=10, messages=QUESTION, extra_body={"temperature": 3})
    assert "temperature" in e.value.message
    with pytest.raises(anthropic.BadRequestError) as e:
        client.post("/v1/messages", body={"model": OPENAI_ROUTED, "messages": QUESTION}, cast_to=object)
    assert "max_tokens" in e.value.message
    assert mock_upstream.chat_requests() == []


def test_unknown_model_is_not_found(client, mock_upstream):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="claude-nonexistent", max_tokens=10, messages=QUESTION)
    assert e.value.body["error"]["type"] == "not_found_error"
    assert "claude-nonexistent" in e.value.message


def test_upstream_rate_limit_is_a_rate_limit_error(client, mock_upstream):
    mock_upstream.script(Fail(429, "Rate limit reached", type="rate_limit_error", headers={"retry-after": "2"}))
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model=OPENAI_ROUTED, max_tokens=10, messages=QUESTION)
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert e.value.response.headers["retry-after"] == "2"


def test_upstream_server_error_is_an_internal_server_error(client, mock_upstream):
    mock_upstream.script(Fail(500, "upstream exploded", type="server_error"))
    with pytest.raises(anthropic.InternalServerError) as e:
        client.messages.create(model=OPENAI_ROUTED, max_tokens=10, messages=QUESTION)
    assert e.value.body["error"]["type"] == "api_error"


def test_a_stream_that_breaks_raises_in_the_sdk(client, mock_upstream):
    mock_upstream.script(Reply(content="one two three four five", break_after=3))
    with pytest.raises(anthropic.APIStatusError) as e:
        with client.messages.stream(model=OPENAI_ROUTED, max_tokens=100, messages=QUESTION) as s:
            for _ in s.text_stream:
                pass
    assert e.value.body["error"]["type"] == "api_error"
    assert "interrupted" in e.value.body["error"]["message"]
