//! The agreement cascade replayed from recorded answers. Where an outcome file keeps each model's
//! answer (`responses`), `eval` can tell what the cascade would have done without calling anyone:
//! ask a cheap model, then each cheap checker in turn; the first checker whose answer settles on
//! something else sends the request to the premium model, and when every checker agrees the first
//! answer is returned. The bill is every model asked, in the order asked.
//!
//! Which cheap models to chain is chosen on training data only ([`build`]): the first is the
//! cheap model that scores best, and checkers are added one at a time, each the one that buys the
//! most quality per extra dollar. Every prefix of that chain is a cascade the learned layer can
//! route to, beside the single models, so the layer decides per prompt whether one cheap answer
//! is enough, two or more must agree, or the premium model should answer at once.

use super::sweep::Served;
use crate::answers::{self, Compare};

/// A checker may cost at most this share of the premium model per call: a checker as dear as the
/// premium model buys nothing a direct call would not.
const CHECKER_MAX_SHARE: f64 = 0.25;
/// Longest chain of checkers built.
pub const MAX_CHECKERS: usize = 4;

/// The answer text of a recorded response. Some public sets (RouterBench) store each answer as a
/// Python list of strings, `['C\n']` or `["Here's …"]`; those are unwrapped into their text (the
/// items joined by newlines). Anything that is not exactly such a list is the answer as it is.
pub fn answer_text(recorded: &str) -> String {
    python_list(recorded).unwrap_or_else(|| recorded.to_string())
}

fn python_list(s: &str) -> Option<String> {
    let mut chars = s.trim().chars().peekable();
    if chars.next()? != '[' {
        return None;
    }
    let mut items: Vec<String> = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next()? {
            ']' if items.is_empty() => break,
            q @ ('\'' | '"') => items.push(python_string(&mut chars, q)?),
            _ => return None,
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next()? {
            ',' => {}
            ']' => break,
            _ => return None,
        }
    }
    if chars.next().is_some() {
        return None;
    }
    Some(items.join("\n"))
}

/// One Python string literal after its opening quote `q`, escapes decoded.
fn python_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, q: char) -> Option<String> {
    let mut out = String::new();
    loop {
        let c = chars.next()?;
        if c == q {
            return Some(out);
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        match e {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '0' => out.push('\0'),
            '\\' | '\'' | '"' => out.push(e),
            'x' | 'u' | 'U' => {
                let len = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..len).filter_map(|_| chars.next()).collect();
                let decoded = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                match decoded {
                    Some(ch) if hex.len() == len => out.push(ch),
                    _ => {
                        out.push('\\');
                        out.push(e);
                        out.push_str(&hex);
                    }
                }
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
}

/// A cascade over single candidates (indices into the evaluation's candidates).
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub first: usize,
    /// Asked in this order after `first`; the first that disagrees stops the chain.
    pub checkers: Vec<usize>,
    pub premium: usize,
}

/// What was recorded for one prompt, per single candidate: score, cost, and which pairs of
/// answers agree (an answer that is missing or unreadable agrees with nothing).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub quality: Vec<f64>,
    pub cost: Vec<f64>,
    agree: Vec<bool>,
}

impl Recorded {
    /// `answers[m]`: candidate `m`'s recorded answer, already unwrapped by [`answer_text`].
    pub fn new(
        quality: Vec<f64>,
        cost: Vec<f64>,
        answers: &[Option<String>],
        how: Compare,
    ) -> Self {
        let m = answers.len();
        let mut agree = vec![false; m * m];
        for a in 0..m {
            for b in a + 1..m {
                if let (Some(x), Some(y)) = (&answers[a], &answers[b]) {
                    let same = answers::agree(x, y, how);
                    agree[a * m + b] = same;
                    agree[b * m + a] = same;
                }
            }
        }
        Recorded {
            quality,
            cost,
            agree,
        }
    }

    pub fn agrees(&self, a: usize, b: usize) -> bool {
        let m = self.quality.len();
        a < m && b < m && self.agree[a * m + b]
    }

    /// Every score and cost is known, so a cascade over these candidates can be replayed.
    pub fn complete(&self) -> bool {
        self.quality.iter().chain(&self.cost).all(|x| x.is_finite())
    }
}

/// What the cascade comes to on one prompt.
pub fn replay(chain: &Chain, r: &Recorded) -> Served {
    let mut asked = vec![chain.first];
    let mut cost = r.cost[chain.first];
    for &c in &chain.checkers {
        asked.push(c);
        cost += r.cost[c];
        if !r.agrees(chain.first, c) {
            asked.push(chain.premium);
            cost += r.cost[chain.premium];
            return Served::new(chain.premium, asked, r.quality[chain.premium], cost);
        }
    }
    Served::new(chain.first, asked, r.quality[chain.first], cost)
}

/// The table's own `routing.cascade`, over the evaluation's candidates (its tiers).
#[derive(Debug, Clone, PartialEq)]
pub struct TableCascade {
    pub from: usize,
    pub to: usize,
    /// The `agree` model. It is called beside `from` whatever the outcome, so it may be a model no
    /// tier stands for: its index is then past the candidates.
    pub second: Option<usize>,
    /// `empty` is among `escalate_on`.
    pub on_empty: bool,
}

/// What one prompt's recorded outcome says for the table's cascade: the answers of the cheap
/// tier and of the `agree` model, and each one's cost.
#[derive(Debug, Clone, PartialEq)]
pub struct CascadeInputs<'a> {
    pub cheap: &'a str,
    pub second: Option<(&'a str, f64)>,
    /// Score and cost of the cheap and premium tiers.
    pub from: (f64, f64),
    pub to: (f64, f64),
}

/// One prompt through the table's cascade, as `dispatch` runs it: the cheap tier answers (with
/// `agree`, the second model answers the same request in parallel and is billed either way);
/// an empty cheap answer (with `empty`) or two answers that settle on different things send the
/// request to the premium tier, whose answer is returned.
pub fn replay_table(c: &TableCascade, r: &CascadeInputs<'_>, how: Compare) -> Served {
    let mut asked = vec![c.from];
    let mut cost = r.from.1;
    let mut escalate = c.on_empty && r.cheap.trim().is_empty();
    if let (Some(s), Some((answer, second_cost))) = (c.second, r.second) {
        asked.push(s);
        cost += second_cost;
        escalate |= !answers::agree(r.cheap, answer, how);
    }
    if escalate {
        asked.push(c.to);
        return Served::new(c.to, asked, r.to.0, cost + r.to.1);
    }
    Served::new(c.from, asked, r.from.0, cost)
}

fn totals(chain: &Chain, rows: &[&Recorded]) -> (f64, f64) {
    rows.iter().fold((0.0, 0.0), |(q, c), r| {
        let s = replay(chain, r);
        (q + s.quality, c + s.cost)
    })
}

/// The cascades to offer the learned layer, chosen on `rows` (training prompts) alone: every
/// prefix (one checker, two, …) of one greedily built chain that costs less than the premium
/// model alone. The premium model is the candidate
/// that scores best; the first is the best-scoring candidate costing at most a quarter of it; each
/// checker added is the one with the most quality gained per extra dollar. Empty when nothing
/// qualifies.
pub fn build(rows: &[&Recorded], candidates: usize) -> Vec<Chain> {
    if rows.is_empty() || candidates < 3 {
        return Vec::new();
    }
    let n = rows.len() as f64;
    let mean = |f: &dyn Fn(&Recorded) -> f64| rows.iter().map(|r| f(r)).sum::<f64>() / n;
    let quality: Vec<f64> = (0..candidates).map(|m| mean(&|r| r.quality[m])).collect();
    let cost: Vec<f64> = (0..candidates).map(|m| mean(&|r| r.cost[m])).collect();
    // Better: higher quality, then lower cost, then the earlier candidate.
    let better = |a: usize, b: usize| {
        quality[a]
            .total_cmp(&quality[b])
            .then(cost[b].total_cmp(&cost[a]))
            .then(b.cmp(&a))
    };
    let Some(premium) = (0..candidates).max_by(|&a, &b| better(a, b)) else {
        return Vec::new();
    };
    let pool: Vec<usize> = (0..candidates)
        .filter(|&m| m != premium && cost[m] <= CHECKER_MAX_SHARE * cost[premium])
        .collect();
    let Some(&first) = pool.iter().max_by(|&&a, &&b| better(a, b)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut chain = Chain {
        first,
        checkers: Vec::new(),
        premium,
    };
    let (mut q, mut c) = (quality[first] * n, cost[first] * n);
    while chain.checkers.len() < MAX_CHECKERS {
        let mut best: Option<(f64, usize, f64, f64)> = None;
        for &m in &pool {
            if m == first || chain.checkers.contains(&m) {
                continue;
            }
            let mut next = chain.clone();
            next.checkers.push(m);
            let (q2, c2) = totals(&next, rows);
            if q2 <= q + 1e-12 {
                continue;
            }
            let gain = (q2 - q) / (c2 - c).max(1e-12);
            if best.is_none_or(|b| gain > b.0) {
                best = Some((gain, m, q2, c2));
            }
        }
        let Some((_, m, q2, c2)) = best else { break };
        chain.checkers.push(m);
        (q, c) = (q2, c2);
        // A cascade that costs as much as the premium model alone is worse than asking it.
        if c < cost[premium] * n {
            out.push(chain.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_python_list_answers() {
        assert_eq!(answer_text("['C\\n']"), "C\n");
        assert_eq!(
            answer_text(r#"["Here's a function:\n```python\nx = 'a'\n```"]"#),
            "Here's a function:\n```python\nx = 'a'\n```"
        );
        assert_eq!(answer_text(r"['it\'s \\ \x41\u00e9']"), "it's \\ Aé");
        assert_eq!(answer_text("['a', \"b\"]"), "a\nb");
        assert_eq!(answer_text("[]"), "");
        // Not such a list: the text as it is.
        for s in [
            "B",
            "['unterminated",
            "['a'] trailing",
            "[1, 2]",
            "['a' 'b']",
            "",
        ] {
            assert_eq!(answer_text(s), s, "{s:?}");
        }
    }

    fn rec(quality: &[f64], cost: &[f64], answers: &[&str]) -> Recorded {
        let a: Vec<Option<String>> = answers
            .iter()
            .map(|s| (!s.is_empty()).then(|| (*s).to_string()))
            .collect();
        Recorded::new(quality.to_vec(), cost.to_vec(), &a, Compare::Choice)
    }

    #[test]
    fn a_cascade_stops_at_the_first_disagreement_and_bills_every_call() {
        let chain = Chain {
            first: 0,
            checkers: vec![1, 2],
            premium: 3,
        };
        let costs = [1.0, 2.0, 4.0, 100.0];
        let all = rec(&[1.0, 1.0, 1.0, 1.0], &costs, &["A", "A", "A", "A"]);
        assert_eq!(
            replay(&chain, &all),
            Served::new(0, vec![0, 1, 2], 1.0, 7.0)
        );
        let second = rec(&[0.0, 1.0, 0.0, 1.0], &costs, &["A", "B", "A", "B"]);
        assert_eq!(
            replay(&chain, &second),
            Served::new(3, vec![0, 1, 3], 1.0, 103.0)
        );
        // An answer that cannot be read agrees with nothing.
        let unreadable = rec(&[1.0, 1.0, 1.0, 0.0], &costs, &["A", "A", "", "B"]);
        assert_eq!(replay(&chain, &unreadable).asked, vec![0, 1, 2, 3]);
    }

    #[test]
    fn the_tables_cascade_bills_the_second_model_whatever_it_says() {
        let c = TableCascade {
            from: 0,
            to: 1,
            second: Some(2),
            on_empty: true,
        };
        let inputs = |cheap, second| CascadeInputs {
            cheap,
            second: Some((second, 0.5)),
            from: (0.0, 1.0),
            to: (1.0, 10.0),
        };
        let agreed = replay_table(&c, &inputs("B", "(B)"), Compare::Choice);
        assert_eq!(
            (agreed.model, agreed.asked.clone(), agreed.cost),
            (0, vec![0, 2], 1.5)
        );
        assert_eq!(agreed.quality, 0.0);
        let split = replay_table(&c, &inputs("B", "C"), Compare::Choice);
        assert_eq!(
            (split.model, split.asked, split.cost),
            (1, vec![0, 2, 1], 11.5)
        );
        let empty = TableCascade { second: None, ..c };
        let e = replay_table(&empty, &inputs("  ", "C"), Compare::Choice);
        assert_eq!((e.model, e.asked, e.cost), (1, vec![0, 1], 11.0));
    }

    #[test]
    fn builds_chains_on_training_rows() {
        // 0 and 1 are cheap and right on different halves; 2 is cheap and always wrong (and says
        // so differently each time); 3 is premium and always right.
        let costs = [1.0, 1.0, 1.0, 100.0];
        // Ten prompts, alternating between two recorded outcomes.
        let alternating = |even: Recorded, odd: Recorded| -> Vec<Recorded> {
            (0..10)
                .map(|i| {
                    if i % 2 == 0 {
                        even.clone()
                    } else {
                        odd.clone()
                    }
                })
                .collect()
        };
        let rows = alternating(
            rec(&[1.0, 0.0, 0.0, 1.0], &costs, &["A", "B", "C", "A"]),
            rec(&[1.0, 1.0, 0.0, 1.0], &costs, &["A", "A", "D", "A"]),
        );
        let refs: Vec<&Recorded> = rows.iter().collect();
        let chains = build(&refs, 4);
        // 0 is always right, so no checker adds quality: nothing to offer.
        assert!(chains.is_empty(), "{chains:?}");
        let mixed = alternating(
            rec(&[0.0, 0.0, 0.0, 1.0], &costs, &["A", "B", "C", "D"]),
            rec(&[1.0, 1.0, 0.0, 1.0], &costs, &["A", "A", "D", "A"]),
        );
        let refs: Vec<&Recorded> = mixed.iter().collect();
        let chains = build(&refs, 4);
        assert_eq!(
            chains.first(),
            Some(&Chain {
                first: 0,
                checkers: vec![1],
                premium: 3
            })
        );
    }
}
