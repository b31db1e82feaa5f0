//! Runs the Anthropic Python SDK compatibility suite (`tests/python/test_anthropic_sdk.py`): the
//! SDK's sync and async clients, streams, tools and errors against the binary this `cargo test`
//! just built, with an OpenAI-compatible and an Anthropic upstream (see `common::sdk`).

mod common;

#[test]
fn anthropic_python_sdk_suite() {
    common::sdk::pytest("test_anthropic_sdk.py", "Anthropic SDK");
}
