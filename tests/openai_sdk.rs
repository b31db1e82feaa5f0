//! Runs the OpenAI Python SDK compatibility suite (`tests/python/test_openai_sdk.py`) against the
//! binary this `cargo test` just built (see `common::sdk` for where Python comes from).

mod common;

#[test]
fn openai_python_sdk_suite() {
    common::sdk::pytest("test_openai_sdk.py", "OpenAI SDK");
}
