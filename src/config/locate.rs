//! Finding a YAML path (`routing.cascade.rules[0]`) in the config's text, so that an error found
//! after parsing points at the key it is about, not at its section.
//!
//! The document is read once more with the YAML parser serde-saphyr is built on, into a small tree
//! of keys, items and their positions; the error's path is then walked down that tree.

use serde_saphyr::granit_parser::{Event, Parser, Span};

/// A position in the text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

enum Node {
    /// A scalar (its text, for use as a key) or an alias.
    Leaf(String, Pos),
    Seq(Pos, Vec<Node>),
    /// Entries as (key text, key position, value).
    Map(Pos, Vec<(String, Pos, Node)>),
}

impl Node {
    fn pos(&self) -> Pos {
        match self {
            Node::Leaf(_, p) | Node::Seq(p, _) | Node::Map(p, _) => *p,
        }
    }
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: u32::try_from(span.start.line()).unwrap_or(u32::MAX).max(1),
        column: u32::try_from(span.start.col())
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1),
    }
}

/// A collection being read, and for a mapping the key whose value comes next.
enum Open {
    Seq(Pos, Vec<Node>),
    Map(Pos, Vec<(String, Pos, Node)>, Option<(String, Pos)>),
}

impl Open {
    fn close(self) -> Node {
        match self {
            Open::Seq(p, items) => Node::Seq(p, items),
            Open::Map(p, entries, _) => Node::Map(p, entries),
        }
    }
}

/// The first document of `text` as a tree. Built without recursion (a hostile file may nest
/// thousands deep), and up to the first syntax error when there is one: serde reports errors in
/// the part before it, which is all there is to point into.
fn tree(text: &str) -> Option<Node> {
    let mut open: Vec<Open> = Vec::new();
    let mut root = None;
    for item in Parser::new_from_str(text) {
        let Ok((ev, span)) = item else { break };
        let node = match ev {
            Event::SequenceStart(..) => {
                open.push(Open::Seq(pos(&span), Vec::new()));
                continue;
            }
            Event::MappingStart(..) => {
                open.push(Open::Map(pos(&span), Vec::new(), None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match open.pop() {
                Some(o) => o.close(),
                None => break,
            },
            Event::Scalar(text, ..) => Node::Leaf(text.to_string(), pos(&span)),
            Event::Alias(_) => Node::Leaf(String::new(), pos(&span)),
            Event::DocumentEnd | Event::StreamEnd => break,
            _ => continue,
        };
        if let Some(done) = deliver(&mut open, node) {
            root = Some(done);
            break;
        }
    }
    // Cut short by an error: close what is open, innermost first.
    while let Some(o) = open.pop() {
        if let Some(done) = deliver(&mut open, o.close()) {
            root = Some(done);
        }
    }
    root
}

/// Hands a finished node to the collection it belongs to; returns it when it is the document.
fn deliver(open: &mut [Open], node: Node) -> Option<Node> {
    match open.last_mut() {
        None => Some(node),
        Some(Open::Seq(_, items)) => {
            items.push(node);
            None
        }
        Some(Open::Map(_, entries, key)) => {
            match key.take() {
                Some((k, kpos)) => entries.push((k, kpos, node)),
                // A collection used as a key has no text to match a path against.
                None => {
                    let text = match &node {
                        Node::Leaf(t, _) => t.clone(),
                        _ => String::new(),
                    };
                    *key = Some((text, node.pos()));
                }
            }
            None
        }
    }
}

/// Where `path` is in `text`: the key of a mapping entry, the item of a list. When the path
/// leads past the document (a required key that is missing), the deepest part that exists.
pub fn locate(text: &str, path: &str) -> Option<Pos> {
    let root = tree(text)?;
    walk(&root, path, &mut String::new())
}

/// `path` with the segments serde adds for position-carrying wrappers (`when.value.keywords`)
/// removed, so it reads as the document does (`when.keywords`).
pub fn normalize(text: &str, path: &str) -> String {
    let Some(root) = tree(text) else {
        return path.to_string();
    };
    let mut out = String::new();
    walk(&root, path, &mut out);
    out
}

/// Walks `rest` down from `node`, appending the segments it matched to `out`; returns the position
/// of the deepest segment found.
fn walk(node: &Node, rest: &str, out: &mut String) -> Option<Pos> {
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    if rest.is_empty() {
        return None;
    }
    match node {
        Node::Map(_, entries) => {
            // The longest key that the path continues from: map keys may contain dots.
            let found = entries
                .iter()
                .filter(|(k, ..)| continues(rest, k))
                .max_by_key(|(k, ..)| k.len());
            match found {
                Some((k, kpos, value)) => {
                    push_key(out, k);
                    let after = &rest[k.len()..];
                    Some(walk(value, after, out).unwrap_or(*kpos))
                }
                None => skip_wrapper(node, rest, out),
            }
        }
        Node::Seq(_, items) => {
            let Some((index, after)) = index(rest) else {
                return skip_wrapper(node, rest, out);
            };
            out.push_str(&format!("[{index}]"));
            match items.get(index) {
                Some(item) => Some(walk(item, after, out).unwrap_or_else(|| item.pos())),
                None => {
                    out.push_str(after);
                    None
                }
            }
        }
        Node::Leaf(..) => skip_wrapper(node, rest, out),
    }
}

/// A `value` segment the document does not have is serde's view of a `Spanned<T>`: skip it. Any
/// other unmatched rest is kept as written (it names something the file lacks).
fn skip_wrapper(node: &Node, rest: &str, out: &mut String) -> Option<Pos> {
    if continues(rest, "value") {
        return walk(node, &rest["value".len()..], out);
    }
    if !rest.starts_with('[') && !out.is_empty() {
        out.push('.');
    }
    out.push_str(rest);
    None
}

fn push_key(out: &mut String, key: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(key);
}

/// Whether `path` is `key` or continues from it with `.` or `[`.
fn continues(path: &str, key: &str) -> bool {
    path.strip_prefix(key)
        .is_some_and(|after| after.is_empty() || after.starts_with('.') || after.starts_with('['))
}

/// `[3]…` → (3, "…").
fn index(rest: &str) -> Option<(usize, &str)> {
    let inner = rest.strip_prefix('[')?;
    let end = inner.find(']')?;
    let i = inner[..end].parse().ok()?;
    Some((i, &inner[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
server: { listen: \"127.0.0.1:0\" }
tiers:
  budget:
    models: [a, b]
  gpt-4.1:
    models:
      - c
routing:
  rules:
    - name: r
      when: { any: [{ keywords: [x] }, { regex: '(' }] }
";

    fn at(path: &str) -> Option<(u32, u32)> {
        locate(DOC, path).map(|p| (p.line, p.column))
    }

    #[test]
    fn finds_keys_items_and_flow_entries() {
        assert_eq!(at("server.listen"), Some((1, 11)));
        assert_eq!(at("tiers.budget.models[1]"), Some((4, 17)));
        assert_eq!(at("tiers.gpt-4.1.models[0]"), Some((7, 9)));
        assert_eq!(at("routing.rules[0].when.any[1].regex"), Some((11, 42)));
        assert_eq!(at("routing.rules[0].name"), Some((10, 7)));
    }

    #[test]
    fn a_missing_key_points_at_what_exists() {
        assert_eq!(at("routing.cascade.from"), Some((8, 1)));
        assert_eq!(at("tiers.budget.strategy"), Some((3, 3)));
        assert_eq!(at("tiers.budget.models[7]"), Some((4, 5)));
        assert_eq!(at(""), None);
        assert_eq!(at("nothing"), None);
    }

    #[test]
    fn drops_the_wrapper_segment_serde_reports() {
        assert_eq!(
            normalize(DOC, "routing.rules[0].when.value.any[0].keywords"),
            "routing.rules[0].when.any[0].keywords"
        );
        assert_eq!(
            normalize(DOC, "routing.rules[0].when.value.bogus"),
            "routing.rules[0].when.bogus"
        );
        assert_eq!(normalize(DOC, "tiers.budget.nope"), "tiers.budget.nope");
        assert_eq!(normalize("a: [", "a.b"), "a.b");
    }

    #[test]
    fn hostile_nesting_and_broken_files_are_walked_without_recursion() {
        let deep = format!("a: {}1{}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(locate(&deep, "a[0][0]").map(|p| p.line), Some(1));
        let deep_maps = format!("a: {}1{}", "{ b: ".repeat(5000), " }".repeat(5000));
        assert_eq!(locate(&deep_maps, "a.b.b.c").map(|p| p.line), Some(1));
        // Up to the first syntax error.
        let broken = "a:\n  b: 1\n  c: [1, 2\nd: {";
        assert_eq!(locate(broken, "a.b").map(|p| p.line), Some(2));
        let doc = "a: &x { b: 1 }\nc: *x\n";
        assert_eq!(locate(doc, "c.b").map(|p| p.line), Some(2));
    }
}
