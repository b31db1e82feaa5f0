"""An Anthropic Messages upstream for the Anthropic SDK suite: the OpenAI mock of ``conftest.py``
(recording, scripting, reset) with a handler that speaks ``POST /v1/messages``, answering a
scripted message (text or tool calls) as JSON, or as Anthropic's event stream when asked."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from conftest import MockUpstream, _Handler

USAGE = {"input_tokens": 21, "output_tokens": 6}


@dataclass
class Message:
    """A message: its text, then its tool calls as ``(id, name, input)``."""

    text: str | None = "Hello from the anthropic mock."
    tool_uses: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tool_uses else "end_turn"

    def blocks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.text is not None:
            out.append({"type": "text", "text": self.text})
        for id_, name, input_ in self.tool_uses:
            out.append({"type": "tool_use", "id": id_, "name": name, "input": input_})
        return out


def _message(model: str, reply: Message) -> dict[str, Any]:
    return {
        "id": "msg_mock_0001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.blocks(),
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": dict(USAGE),
    }


def _delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _events(model: str, reply: Message) -> list[tuple[str, dict[str, Any]]]:
    """The stream of ``reply``: text word by word, tool input five characters at a time."""
    start = _message(model, reply)
    start.update(content=[], stop_reason=None, usage={"input_tokens": USAGE["input_tokens"], "output_tokens": 1})
    ev: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    ev.append(("ping", {"type": "ping"}))
    for i, block in enumerate(reply.blocks()):
        opening = {**block, "text": ""} if block["type"] == "text" else {**block, "input": {}}
        ev.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": opening}))
        if block["type"] == "text":
            words = block["text"].split(" ")
            ev.extend(_delta(i, {"type": "text_delta", "text": (" " if k else "") + w}) for k, w in enumerate(words))
        else:
            raw = json.dumps(block["input"])
            ev.extend(_delta(i, {"type": "input_json_delta", "partial_json": raw[s : s + 5]}) for s in range(0, len(raw), 5))
        ev.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    ev.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": USAGE["output_tokens"]},
            },
        )
    )
    ev.append(("message_stop", {"type": "message_stop"}))
    return ev


class _MessagesHandler(_Handler):
    def _handle(self) -> None:
        mock = self.server.mock
        body, _ = self._receive()
        if self.command != "POST" or self.path != "/v1/messages":
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
            return
        reply = mock._next(None)
        if not isinstance(reply, Message):
            reply = Message()
        model = body.get("model", "")
        if body.get("stream") is True:
            data = "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in _events(model, reply))
            self._send(200, data.encode(), "text/event-stream")
        else:
            self._json(200, _message(model, reply))


class AnthropicMock(MockUpstream):
    """Scripted with ``script(Message(...))``; unscripted requests get ``Message()``."""

    handler = _MessagesHandler
