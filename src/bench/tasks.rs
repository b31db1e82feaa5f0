//! The task file: task types, each with prompts (a string or a messages array, an optional
//! reference answer) and the scorer that grades answers to them. YAML for hand-written sets, JSONL
//! (one prompt per line) for large ones; either way a mistake is a config error naming the file,
//! the line and the key.
//!
//! ```yaml
//! defaults: { params: { temperature: 0 } }
//! tasks:
//!   - name: sentiment
//!     scorer: exact
//!     system: "Answer with one word: positive, negative or neutral."
//!     params: { max_tokens: 5 }
//!     prompts:
//!       - { prompt: "I loved every minute of it.", reference: positive }
//!   - name: arithmetic
//!     scorer: { type: numeric, tolerance: 0.01 }
//!     prompts_file: arithmetic.jsonl        # {"prompt": "...", "reference": "42"} per line
//! ```

use crate::config::ConfigError;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use serde_saphyr::Spanned;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A whole task file, checked.
#[derive(Debug, Clone)]
pub struct TaskSet {
    pub file: PathBuf,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone)]
pub struct Task {
    /// The task type: what `metadata.task_type` and the routing map call it.
    pub name: String,
    pub scorer: Scorer,
    /// Extra fields of every request (`temperature`, `max_tokens`, `response_format`…).
    pub params: Map<String, Value>,
    pub prompts: Vec<Prompt>,
    /// Where the scorer was written, for errors found once the routing table is known.
    pub scorer_at: Location,
}

#[derive(Debug, Clone)]
pub struct Prompt {
    pub id: String,
    /// The conversation sent, system prompt included.
    pub messages: Vec<Value>,
    pub reference: Option<String>,
}

/// A file position, for errors about a task that are found after parsing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Location {
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// How an answer is graded. Every scorer gives a score in [0, 1].
#[derive(Debug, Clone)]
pub enum Scorer {
    /// The normalised answer equals the normalised reference.
    Exact,
    /// The answer settles on the reference's option (letter or number).
    Choice,
    /// The answer's final number is the reference's, within `tolerance` (absolute or relative).
    Numeric { tolerance: f64 },
    /// The answer matches `pattern`, or the prompt's reference read as a regular expression.
    Regex { pattern: Option<Arc<regex::Regex>> },
    /// The normalised answer contains the normalised reference as whole words.
    Contains,
    /// The answer (or its fenced JSON block) is JSON valid against the schema.
    JsonSchema {
        schema: Value,
        validator: Arc<jsonschema::Validator>,
    },
    /// ROUGE-L F1 of the answer's words against the reference's.
    RougeL,
    /// A model of the routing table grades the answer 1–10 against a rubric (and the reference,
    /// when given); 1–10 maps onto 0–1.
    Judge {
        model: String,
        rubric: Option<String>,
    },
}

pub const SCORERS: &str = "exact, choice, numeric, regex, contains, json_schema, rouge_l, judge";

impl Scorer {
    pub fn name(&self) -> &'static str {
        match self {
            Scorer::Exact => "exact",
            Scorer::Choice => "choice",
            Scorer::Numeric { .. } => "numeric",
            Scorer::Regex { .. } => "regex",
            Scorer::Contains => "contains",
            Scorer::JsonSchema { .. } => "json_schema",
            Scorer::RougeL => "rouge_l",
            Scorer::Judge { .. } => "judge",
        }
    }

    /// Whether every prompt needs a reference answer to be graded.
    fn needs_reference(&self) -> bool {
        match self {
            Scorer::Exact | Scorer::Choice | Scorer::Numeric { .. } | Scorer::Contains => true,
            Scorer::RougeL => true,
            Scorer::Regex { pattern } => pattern.is_none(),
            Scorer::JsonSchema { .. } | Scorer::Judge { .. } => false,
        }
    }
}

/// The scorer as written: a name (`exact`) or a map with `type` and its settings.
#[derive(Debug, Clone)]
struct ScorerSpec(Tagged);

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Tagged {
    Exact,
    Choice,
    Numeric {
        #[serde(default = "default_tolerance")]
        tolerance: f64,
    },
    Regex {
        #[serde(default)]
        pattern: Option<String>,
    },
    Contains,
    JsonSchema {
        schema: Value,
    },
    RougeL,
    Judge {
        model: String,
        #[serde(default)]
        rubric: Option<String>,
    },
}

fn default_tolerance() -> f64 {
    1e-6
}

impl<'de> Deserialize<'de> for ScorerSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ScorerSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a scorer name ({SCORERS}) or a map with `type`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ScorerSpec, E> {
                Ok(ScorerSpec(match v {
                    "exact" => Tagged::Exact,
                    "choice" => Tagged::Choice,
                    "numeric" => Tagged::Numeric {
                        tolerance: default_tolerance(),
                    },
                    "regex" => Tagged::Regex { pattern: None },
                    "contains" => Tagged::Contains,
                    "rouge_l" => Tagged::RougeL,
                    "json_schema" => {
                        return Err(E::custom(
                            "json_schema needs its schema: write { type: json_schema, schema: {...} }",
                        ));
                    }
                    "judge" => {
                        return Err(E::custom(
                            "judge needs a model: write { type: judge, model: NAME, rubric: \"...\" }",
                        ));
                    }
                    other => {
                        return Err(E::custom(format!(
                            "unknown scorer `{other}` (known: {SCORERS})"
                        )));
                    }
                }))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ScorerSpec, A::Error> {
                Tagged::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ScorerSpec)
                    .map_err(|e| {
                        let m = e.to_string();
                        // serde says "unknown variant"; the user wrote a scorer type.
                        if m.starts_with("unknown variant") {
                            serde::de::Error::custom(format!(
                                "unknown scorer {} (known: {SCORERS})",
                                m.trim_start_matches("unknown variant ")
                                    .split(", expected")
                                    .next()
                                    .unwrap_or("")
                            ))
                        } else {
                            e
                        }
                    })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    tasks: Vec<RawTask>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    params: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    name: Spanned<String>,
    scorer: Spanned<ScorerSpec>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    params: Map<String, Value>,
    #[serde(default)]
    prompts: Vec<Spanned<RawPrompt<Verbatim>>>,
    /// JSONL, one prompt per line, relative to the task file.
    #[serde(default)]
    prompts_file: Option<Spanned<String>>,
}

/// One prompt as written: in a YAML task (`R` = [`Verbatim`]; `task` and `scorer` come from the
/// task it is listed under) or as a line of a JSONL file (`R` = a JSON value), where the first
/// line of a task also names its scorer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "R: Deserialize<'de>"))]
struct RawPrompt<R> {
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    scorer: Option<ScorerSpec>,
    /// Overrides the task's system prompt for this prompt.
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Value>>,
    #[serde(default)]
    reference: Option<R>,
}

/// A YAML scalar exactly as written: `reference: yes` is the word "yes", not the boolean YAML 1.1
/// would make of it, and `reference: 1.50` keeps its trailing zero.
#[derive(Debug)]
struct Verbatim(String);

impl<'de> Deserialize<'de> for Verbatim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Verbatim;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Verbatim, E> {
                Ok(Verbatim(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Verbatim, E> {
                Ok(Verbatim(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Verbatim, E> {
                Ok(Verbatim(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Verbatim, E> {
                Ok(Verbatim(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Verbatim, E> {
                Ok(Verbatim(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// Reads a task file: `.jsonl` as one prompt per line, anything else as YAML.
pub fn load(path: &Path) -> Result<TaskSet, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::whole_file(&file, format!("cannot read the task file: {e}")))?;
    let tasks = if path.extension().is_some_and(|e| e == "jsonl") {
        from_jsonl(&text, &file, None)?
    } else {
        from_yaml(
            &text,
            &file,
            path.parent().unwrap_or_else(|| Path::new(".")),
        )?
    };
    if tasks.is_empty() {
        return Err(ConfigError::whole_file(
            &file,
            "the task file defines no task",
        ));
    }
    Ok(TaskSet {
        file: path.to_path_buf(),
        tasks,
    })
}

fn loc_of(l: serde_saphyr::Location) -> Location {
    Location {
        line: u32::try_from(l.line()).ok().filter(|&l| l > 0),
        column: u32::try_from(l.column()).ok().filter(|&c| c > 0),
    }
}

fn err_at(file: &str, text: &str, at: Location, path: String, message: String) -> ConfigError {
    ConfigError::at(file, text, at.line, at.column, &path, message)
}

fn from_yaml(text: &str, file: &str, base: &Path) -> Result<Vec<Task>, ConfigError> {
    let mut err_path = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, RawFile>(de).map_err(|e| {
            err_path = e.path().to_string();
            e.into_inner()
        })
    });
    let raw = parsed
        .map_err(|e| ConfigError::from_yaml(&e, &without_span_segments(&err_path), file, text))?;
    let mut tasks: Vec<Task> = Vec::new();
    for (i, t) in raw.tasks.into_iter().enumerate() {
        let path = format!("tasks[{i}]");
        let name_at = loc_of(t.name.referenced);
        let name = t.name.value.trim().to_string();
        if name.is_empty() {
            return Err(err_at(
                file,
                text,
                name_at,
                format!("{path}.name"),
                "a task needs a name (its task type)".into(),
            ));
        }
        if tasks.iter().any(|x| x.name == name) {
            return Err(err_at(
                file,
                text,
                name_at,
                format!("{path}.name"),
                format!("task `{name}` is defined twice"),
            ));
        }
        let scorer_at = loc_of(t.scorer.referenced);
        let scorer = compile(t.scorer.value.0)
            .map_err(|m| err_at(file, text, scorer_at, format!("{path}.scorer"), m))?;
        let system = t.system.or_else(|| raw.defaults.system.clone());
        let mut params = raw.defaults.params.clone();
        params.extend(t.params);
        check_params(&params)
            .map_err(|(k, m)| err_at(file, text, name_at, format!("{path}.params.{k}"), m))?;
        let mut prompts = Vec::new();
        for (j, p) in t.prompts.into_iter().enumerate() {
            let at = loc_of(p.referenced);
            let ppath = format!("{path}.prompts[{j}]");
            if p.value.task.is_some() || p.value.scorer.is_some() {
                return Err(err_at(
                    file,
                    text,
                    at,
                    ppath,
                    "a prompt belongs to the task it is listed under: leave out `task` and `scorer`"
                        .into(),
                ));
            }
            let prompt_system = p.value.system.as_deref().or(system.as_deref());
            let prompt = build_prompt(
                &name,
                prompts.len(),
                p.value.id,
                p.value.prompt,
                p.value.messages,
                p.value.reference.map(|v| Value::String(v.0)),
                prompt_system,
                &scorer,
            )
            .map_err(|(k, m)| err_at(file, text, at, join(&ppath, k), m))?;
            prompts.push(prompt);
        }
        if let Some(f) = t.prompts_file {
            let at = loc_of(f.referenced);
            let full = base.join(&f.value);
            let more_text = std::fs::read_to_string(&full).map_err(|e| {
                err_at(
                    file,
                    text,
                    at,
                    format!("{path}.prompts_file"),
                    format!("cannot read {}: {e}", full.display()),
                )
            })?;
            let fixed = FixedTask {
                name: &name,
                scorer: &scorer,
                system: system.as_deref(),
                first: prompts.len(),
            };
            let more = from_jsonl(&more_text, &full.display().to_string(), Some(fixed))?;
            prompts.extend(more.into_iter().flat_map(|t| t.prompts));
        }
        if prompts.is_empty() {
            return Err(err_at(
                file,
                text,
                name_at,
                format!("{path}.prompts"),
                "a task needs at least one prompt (prompts or prompts_file)".into(),
            ));
        }
        tasks.push(Task {
            name,
            scorer,
            params,
            prompts,
            scorer_at,
        });
    }
    check_ids(&tasks).map_err(|m| ConfigError::whole_file(file, m))?;
    Ok(tasks)
}

/// A spanned field's path reads `tasks[0].scorer.value`; the user wrote `tasks[0].scorer`.
fn without_span_segments(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let spanned_parent = i > 0
            && (matches!(parts[i - 1], "name" | "scorer" | "prompts_file")
                || parts[i - 1].starts_with("prompts["));
        if *p == "value" && spanned_parent {
            continue;
        }
        out.push(p);
    }
    out.join(".")
}

fn join(base: &str, key: &str) -> String {
    if key.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// A JSONL file of prompts for one task of a YAML file: its lines carry no task or scorer.
struct FixedTask<'a> {
    name: &'a str,
    scorer: &'a Scorer,
    system: Option<&'a str>,
    first: usize,
}

fn from_jsonl(
    text: &str,
    file: &str,
    fixed: Option<FixedTask<'_>>,
) -> Result<Vec<Task>, ConfigError> {
    let mut tasks: Vec<Task> = Vec::new();
    if let Some(f) = &fixed {
        tasks.push(Task {
            name: f.name.to_string(),
            scorer: f.scorer.clone(),
            params: Map::new(),
            prompts: Vec::new(),
            scorer_at: Location::default(),
        });
    }
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = u32::try_from(i + 1).ok();
        let at = |path: &str, m: String| ConfigError::at(file, text, n, None, path, m);
        let de = &mut serde_json::Deserializer::from_str(line);
        let raw: RawPrompt<Value> = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            at(
                if path == "." { "" } else { &path },
                e.into_inner().to_string(),
            )
        })?;
        let idx = match &fixed {
            Some(f) => {
                if raw.task.as_deref().is_some_and(|t| t != f.name) || raw.scorer.is_some() {
                    return Err(at(
                        "task",
                        format!(
                            "this file holds the prompts of task `{}`: leave out `task` and `scorer`",
                            f.name
                        ),
                    ));
                }
                0
            }
            None => {
                let Some(name) = raw.task.as_deref().map(str::trim).filter(|t| !t.is_empty())
                else {
                    return Err(at("task", "each line names its task type in `task`".into()));
                };
                match tasks.iter().position(|t| t.name == name) {
                    Some(idx) => {
                        if let Some(s) = &raw.scorer {
                            let again = compile(s.0.clone()).map_err(|m| at("scorer", m))?;
                            if again.name() != tasks[idx].scorer.name() {
                                return Err(at(
                                    "scorer",
                                    format!(
                                        "task `{name}` was given scorer `{}` before; one task has one scorer",
                                        tasks[idx].scorer.name()
                                    ),
                                ));
                            }
                        }
                        idx
                    }
                    None => {
                        let Some(s) = raw.scorer.clone() else {
                            return Err(at(
                                "scorer",
                                format!("the first line of task `{name}` names its scorer"),
                            ));
                        };
                        tasks.push(Task {
                            name: name.to_string(),
                            scorer: compile(s.0).map_err(|m| at("scorer", m))?,
                            params: Map::new(),
                            prompts: Vec::new(),
                            scorer_at: Location {
                                line: n,
                                column: None,
                            },
                        });
                        tasks.len() - 1
                    }
                }
            }
        };
        let first = fixed.as_ref().map_or(0, |f| f.first);
        let system = raw
            .system
            .as_deref()
            .or(fixed.as_ref().and_then(|f| f.system));
        let task = &mut tasks[idx];
        let prompt = build_prompt(
            &task.name,
            first + task.prompts.len(),
            raw.id,
            raw.prompt,
            raw.messages,
            raw.reference,
            system,
            &task.scorer,
        )
        .map_err(|(k, m)| at(k, m))?;
        task.prompts.push(prompt);
    }
    if fixed.is_none() {
        check_ids(&tasks).map_err(|m| ConfigError::whole_file(file, m))?;
    }
    Ok(tasks)
}

#[allow(clippy::too_many_arguments)]
fn build_prompt(
    task: &str,
    index: usize,
    id: Option<Value>,
    prompt: Option<String>,
    messages: Option<Vec<Value>>,
    reference: Option<Value>,
    system: Option<&str>,
    scorer: &Scorer,
) -> Result<Prompt, (&'static str, String)> {
    let id = match id {
        None => format!("{task}/{}", index + 1),
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(Value::Number(n)) => format!("{task}/{n}"),
        Some(_) => return Err(("id", "an id is a non-empty string or a number".into())),
    };
    let mut msgs = Vec::new();
    if let Some(s) = system {
        msgs.push(json!({"role": "system", "content": s}));
    }
    match (prompt, messages) {
        (Some(p), None) if !p.trim().is_empty() => msgs.push(json!({"role": "user", "content": p})),
        (None, Some(m)) if !m.is_empty() => {
            for (k, msg) in m.iter().enumerate() {
                let role = msg.get("role").and_then(Value::as_str);
                if !role.is_some_and(|r| crate::openai::ROLES.contains(&r)) {
                    return Err((
                        "messages",
                        format!("message {k} needs a `role` (system, user, assistant, …)"),
                    ));
                }
            }
            // A conversation that brings its own system prompt keeps it.
            if m.iter()
                .any(|x| x.get("role").and_then(Value::as_str) == Some("system"))
            {
                msgs.clear();
            }
            msgs.extend(m);
        }
        (Some(_), Some(_)) => {
            return Err(("prompt", "give `prompt` or `messages`, not both".into()));
        }
        _ => {
            return Err((
                "prompt",
                "a prompt needs `prompt` (a string) or `messages` (a non-empty array)".into(),
            ));
        }
    }
    let reference = match reference {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
        Some(_) => {
            return Err(("reference", "a reference is a string or a number".into()));
        }
    };
    if reference.is_none() && scorer.needs_reference() {
        return Err((
            "reference",
            format!(
                "scorer `{}` grades against a reference: give one",
                scorer.name()
            ),
        ));
    }
    if let (Scorer::Regex { pattern: None }, Some(r)) = (scorer, &reference) {
        regex::Regex::new(r).map_err(|e| ("reference", format!("invalid regex: {e}")))?;
    }
    Ok(Prompt {
        id,
        messages: msgs,
        reference,
    })
}

fn compile(t: Tagged) -> Result<Scorer, String> {
    Ok(match t {
        Tagged::Exact => Scorer::Exact,
        Tagged::Choice => Scorer::Choice,
        Tagged::Numeric { tolerance } => {
            if !tolerance.is_finite() || tolerance < 0.0 {
                return Err(format!(
                    "tolerance {tolerance} must be a non-negative number"
                ));
            }
            Scorer::Numeric { tolerance }
        }
        Tagged::Regex { pattern } => Scorer::Regex {
            pattern: match pattern {
                Some(p) => Some(Arc::new(
                    regex::Regex::new(&p).map_err(|e| format!("invalid regex: {e}"))?,
                )),
                None => None,
            },
        },
        Tagged::Contains => Scorer::Contains,
        Tagged::JsonSchema { schema } => {
            let validator = jsonschema::validator_for(&schema)
                .map_err(|e| format!("the schema does not compile: {e}"))?;
            Scorer::JsonSchema {
                schema,
                validator: Arc::new(validator),
            }
        }
        Tagged::RougeL => Scorer::RougeL,
        Tagged::Judge { model, rubric } => {
            if model.trim().is_empty() {
                return Err("judge needs a model of the routing table".into());
            }
            Scorer::Judge { model, rubric }
        }
    })
}

/// Request fields the benchmark sets itself may not be overridden.
fn check_params(params: &Map<String, Value>) -> Result<(), (String, String)> {
    for k in ["model", "messages", "stream", "n"] {
        if params.contains_key(k) {
            return Err((
                k.to_string(),
                format!("`{k}` is set by the benchmark for each call"),
            ));
        }
    }
    for k in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = params.get(k) {
            if v.as_u64().is_none_or(|n| n == 0) {
                return Err((k.to_string(), "must be a positive integer".into()));
            }
        }
    }
    Ok(())
}

fn check_ids(tasks: &[Task]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for t in tasks {
        for p in &t.prompts {
            if !seen.insert(p.id.as_str()) {
                return Err(format!(
                    "prompt id `{}` is used twice; ids name rows of the outcomes file",
                    p.id
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn yaml(text: &str) -> Result<Vec<Task>, ConfigError> {
        from_yaml(text, "tasks.yaml", Path::new("."))
    }

    #[test]
    fn reads_tasks_prompts_and_scorers() {
        let t = yaml(
            r#"
defaults: { params: { temperature: 0 } }
tasks:
  - name: sentiment
    scorer: exact
    system: "One word."
    params: { max_tokens: 5 }
    prompts:
      - { prompt: "I loved it", reference: positive }
      - { id: s-two, messages: [{ role: user, content: "meh" }], reference: yes }
  - name: sums
    scorer: { type: numeric, tolerance: 0.5 }
    prompts:
      - { prompt: "2+2", reference: 4 }
  - name: shape
    scorer: { type: json_schema, schema: { type: object, required: [a] } }
    prompts: [{ prompt: "give me a" }]
"#,
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].prompts[0].id, "sentiment/1");
        assert_eq!(t[0].prompts[1].id, "s-two");
        assert_eq!(
            t[0].prompts[0].messages,
            vec![
                json!({"role": "system", "content": "One word."}),
                json!({"role": "user", "content": "I loved it"})
            ]
        );
        assert_eq!(
            t[0].prompts[1].reference.as_deref(),
            Some("yes"),
            "not YAML 1.1's true"
        );
        assert_eq!(t[0].params["temperature"], 0);
        assert_eq!(t[0].params["max_tokens"], 5);
        assert!(matches!(t[1].scorer, Scorer::Numeric { tolerance } if tolerance == 0.5));
        assert_eq!(t[1].prompts[0].reference.as_deref(), Some("4"));
        assert_eq!(t[2].scorer.name(), "json_schema");
    }

    #[test]
    fn an_unknown_scorer_names_the_line_and_key() {
        let text =
            "tasks:\n  - name: a\n    scorer: fuzzy\n    prompts: [{ prompt: x, reference: y }]\n";
        let e = yaml(text).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.path, "tasks[0].scorer", "{e}");
        assert!(e.message.contains("unknown scorer `fuzzy`"), "{e}");
        let text = "tasks:\n  - name: a\n    prompts: [{ prompt: x, reference: y }]\n    scorer: { type: fuzzy }\n";
        let e = yaml(text).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("unknown scorer `fuzzy`"), "{e}");
    }

    #[test]
    fn mistakes_in_prompts_name_their_line() {
        let e = yaml("tasks:\n  - name: a\n    scorer: exact\n    prompts:\n      - { prompt: x, reference: y }\n      - { prompt: z }\n").unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert_eq!(e.path, "tasks[0].prompts[1].reference", "{e}");
        let e = yaml("tasks:\n  - name: a\n    scorer: exact\n    prompts:\n      - { prompt: x, reference: y, answer: z }\n").unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("unknown field `answer`"), "{e}");
        let e = yaml("tasks:\n  - name: a\n    scorer: { type: regex, pattern: '(' }\n    prompts: [{ prompt: x }]\n").unwrap_err();
        assert!(e.message.contains("invalid regex"), "{e}");
        let e = yaml("tasks:\n  - name: a\n    scorer: exact\n    prompts: [{ id: p, prompt: x, reference: y }]\n  - name: b\n    scorer: exact\n    prompts: [{ id: p, prompt: x, reference: y }]\n").unwrap_err();
        assert!(e.message.contains("`p` is used twice"), "{e}");
        let e = yaml("tasks:\n  - name: a\n    scorer: exact\n    prompts:\n      - { prompt: x, reference: y }\n      - { prompt: z, reference: y, task: b }\n").unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert_eq!(e.path, "tasks[0].prompts[1]", "{e}");
        assert!(e.message.contains("leave out `task` and `scorer`"), "{e}");
    }

    #[test]
    fn a_yaml_prompt_may_bring_its_own_system_prompt() {
        let t = yaml("tasks:\n  - name: a\n    scorer: exact\n    system: be brief\n    prompts:\n      - { prompt: x, reference: y }\n      - { prompt: z, reference: y, system: be formal }\n").unwrap();
        let systems: Vec<String> = t[0]
            .prompts
            .iter()
            .map(|p| serde_json::to_string(&p.messages[0]).unwrap())
            .collect();
        assert!(systems[0].contains("be brief"), "{systems:?}");
        assert!(systems[1].contains("be formal"), "{systems:?}");
    }

    #[test]
    fn reads_jsonl_with_the_scorer_on_a_tasks_first_line() {
        let text = r#"{"task": "mc", "scorer": "choice", "prompt": "A or B?", "reference": "B"}
{"task": "mc", "id": 7, "prompt": "C or D?", "reference": "C"}

{"task": "sum", "scorer": {"type": "numeric"}, "prompt": "1+1", "reference": 2}
"#;
        let t = from_jsonl(text, "big.jsonl", None).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].prompts.len(), 2);
        assert_eq!(t[0].prompts[1].id, "mc/7");
        let e = from_jsonl(
            "{\"task\": \"mc\", \"scorer\": \"choice\", \"prompt\": \"x\", \"reference\": \"A\"}\n{\"task\": \"mc\", \"scorer\": \"bogus\", \"prompt\": \"y\", \"reference\": \"A\"}\n",
            "big.jsonl",
            None,
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert_eq!(e.path, "scorer", "{e}");
        assert!(e.message.contains("unknown scorer `bogus`"), "{e}");
        assert!(e.to_string().starts_with("big.jsonl:2: scorer: "), "{e}");
        let e = from_jsonl(
            "{\"task\": \"new\", \"prompt\": \"x\"}\n",
            "big.jsonl",
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("names its scorer"), "{e}");
    }
}
