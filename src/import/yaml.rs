//! Another tool's YAML as a tree in which every node knows its line and whether the importer read
//! it. The importer does not know every key another gateway accepts, and must not drop one it does
//! not know without saying so: after the mapping, [`Node::unread`] lists every key nobody looked at.

use crate::config::ConfigError;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::cell::Cell;
use std::fmt;

/// One YAML node: its value, where it is, and whether the importer has read it.
#[derive(Debug)]
pub struct Node {
    pub value: Value,
    /// 1-based; 0 when the parser could not say.
    pub line: u32,
    pub column: u32,
    read: Cell<bool>,
}

#[derive(Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// A mapping's entry. Keys are kept as text: LiteLLM's are always names.
#[derive(Debug)]
pub struct Entry {
    pub key: String,
    /// The key's own line (a block value starts on the next one).
    pub line: u32,
    pub node: Node,
}

impl Node {
    /// Marks this node as read (its children keep their own marks).
    pub fn touch(&self) -> &Node {
        self.read.set(true);
        self
    }

    /// Marks this node and everything under it as read: for values consumed whole.
    pub fn touch_all(&self) {
        self.read.set(true);
        match &self.value {
            Value::Seq(items) => items.iter().for_each(Node::touch_all),
            Value::Map(entries) => entries.iter().for_each(|e| e.node.touch_all()),
            _ => {}
        }
    }

    pub fn is_read(&self) -> bool {
        self.read.get()
    }

    /// The entry `key` of a mapping, marked as read.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key).inspect(|e| {
                e.node.touch();
            }),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[Entry] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    #[cfg(test)]
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// What the node is, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a whole number",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// What the node is, with its value when it is a scalar: `-5`, `"lots"`, `a list`.
    pub fn found(&self) -> String {
        match &self.value {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => format!("{s:?}"),
            _ => self.kind().to_string(),
        }
    }

    /// Every key under this node that was never read, as (YAML path, line), outermost first: an
    /// unread key is listed once, not with everything below it.
    pub fn unread(&self, path: &str) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        self.collect_unread(path, &mut out);
        out
    }

    fn collect_unread(&self, path: &str, out: &mut Vec<(String, u32)>) {
        match &self.value {
            Value::Map(entries) => {
                for e in entries {
                    let p = join(path, &e.key);
                    if e.node.is_read() {
                        e.node.collect_unread(&p, out);
                    } else {
                        out.push((p, e.line));
                    }
                }
            }
            Value::Seq(items) => {
                for (i, n) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    if n.is_read() {
                        n.collect_unread(&p, out);
                    } else {
                        out.push((p, n.line));
                    }
                }
            }
            _ => {}
        }
    }
}

/// `a.b` for a key under `a`; a key with dots or spaces is quoted so the path stays readable.
pub fn join(path: &str, key: &str) -> String {
    let key = if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '*'))
        && !key.is_empty()
    {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// Parses `text`; a syntax error names the file, line and column, like any config error.
pub fn parse(text: &str, file: &str) -> Result<Node, ConfigError> {
    serde_saphyr::from_str::<Node>(text).map_err(|e| ConfigError::from_yaml(&e, "", file, text))
}

fn line_of(loc: serde_saphyr::Location) -> (u32, u32) {
    (
        u32::try_from(loc.line()).unwrap_or(0),
        u32::try_from(loc.column()).unwrap_or(0),
    )
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Value>::deserialize(d)?;
        let (line, column) = line_of(s.referenced);
        Ok(Node {
            value: s.value,
            line,
            column,
            read: Cell::new(false),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        // Beyond i64 only as an approximation: no LiteLLM setting is that large.
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let node = map.next_value::<Node>()?;
            let (line, _) = line_of(key.referenced);
            entries.push(Entry {
                key: key.value.0,
                line: if line == 0 { node.line } else { line },
                node,
            });
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key: any scalar, as text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a plain key (a name or a number)")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_lines_and_what_was_read() {
        let text = "a: 1\nb:\n  c: x\n  d: [1, 2.5, true, ~]\ne: &anchor\n  f: y\ng: *anchor\n";
        let root = parse(text, "t.yaml").unwrap();
        let b = root.get("b").unwrap();
        assert_eq!(b.line, 2);
        let c = b.node.get("c").unwrap();
        assert_eq!((c.line, c.node.line), (3, 3));
        assert!(matches!(&c.node.value, Value::Str(s) if s == "x"));
        let d = b.node.get("d").unwrap();
        assert!(matches!(d.node.items()[1].value, Value::Float(f) if f == 2.5));
        d.node.items()[0].touch();
        // `g` is an alias of `e`'s mapping: its contents arrive whole.
        assert!(root.get("g").unwrap().node.get("f").is_some());
        assert_eq!(
            root.unread(""),
            vec![
                ("a".to_string(), 1),
                ("b.d[1]".to_string(), 4),
                ("b.d[2]".to_string(), 4),
                ("b.d[3]".to_string(), 4),
                ("e".to_string(), 5),
            ]
        );
    }

    #[test]
    fn syntax_errors_and_duplicate_keys_name_the_line() {
        let e = parse("a: 1\nb: [unclosed\n", "bad.yaml").unwrap_err();
        assert_eq!(e.file, "bad.yaml");
        assert!(e.line.is_some(), "{e}");
        let e = parse("a: 1\na: 2\n", "dup.yaml").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }
}
