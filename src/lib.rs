//! switchyard: an OpenAI-compatible gateway that sends each chat request to the cheapest model tier
//! that clears the team's quality bar. See `README.md` for the tour and `config/` for examples.

pub mod answers;
pub mod anthropic;
pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod console;
pub mod cost;
pub mod db;
pub mod dispatch;
pub mod embed;
pub mod eval;
pub mod gateway;
pub mod import;
pub mod keys;
pub mod openai;
pub mod outcomes;
pub mod providers;
pub mod redact;
pub mod routing;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod tokens;
