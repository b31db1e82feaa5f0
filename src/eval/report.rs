//! What `switchyard eval` prints and writes: a table for people, JSON for scripts, an SVG of the
//! cost–quality curve that opens anywhere, and the per-prompt choices for checking the result
//! independently of this evaluator.

use super::Evaluation;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

pub fn table(e: &Evaluation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "test       {} ({} prompts)", e.test, e.prompts);
    if !e.train.is_empty() {
        let _ = writeln!(s, "train      {}", e.train.join(", "));
    }
    let _ = writeln!(s, "setting    {}", e.setting);
    let _ = writeln!(
        s,
        "router     learned layer: {} on {} embeddings, bar = {}",
        e.method, e.embedder, e.bar_kind
    );
    let decided: Vec<String> = e.layers.iter().map(|(l, n)| format!("{l} {n}")).collect();
    let _ = writeln!(s, "decided by {}", decided.join(", "));
    for n in &e.notes {
        let _ = writeln!(s, "note       {n}");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<44} {:>8} {:>8} {:>12}",
        "candidate", "quality", "± se", "cost USD"
    );
    let singles = e.singles.iter().map(|x| {
        let row = (&x.name, x.quality, x.standard_error, x.cost_usd);
        (row, String::new())
    });
    let cascades = e.cascades.iter().map(|x| {
        let row = (&x.name, x.quality, x.standard_error, x.cost_usd);
        let tail = format!(
            "   escalated {:.1}%: {}",
            x.escalated * 100.0,
            x.chains.join(" | ")
        );
        (row, tail)
    });
    for ((name, quality, se, cost), tail) in singles.chain(cascades) {
        candidate(&mut s, name, quality, Some(se), cost, &tail);
    }
    candidate(
        &mut s,
        "random",
        e.random.quality,
        None,
        e.random.cost_usd,
        "",
    );
    candidate(
        &mut s,
        "oracle (cheapest best model)",
        e.oracle.quality,
        None,
        e.oracle.cost_usd,
        "",
    );
    if let Some(t) = &e.two_model {
        let _ = writeln!(s);
        let pct = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{:.1}%", v * 100.0));
        let _ = writeln!(s, "strong {} / weak {}", t.strong, t.weak);
        let _ = writeln!(
            s,
            "APGR {:.4}   CPT(50%) {}   CPT(80%) {}   (oracle APGR {:.4}, random {:.4})",
            t.apgr,
            pct(t.cpt50),
            pct(t.cpt80),
            t.oracle_apgr,
            t.random_apgr
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:>10} {:>8} {:>12} {:>8}",
        "bar", "quality", "cost USD", "strong"
    );
    for p in &e.curve {
        let _ = writeln!(
            s,
            "{:>10.4} {:>8.4} {:>12.6} {:>7.1}%",
            p.point,
            p.quality,
            p.cost_usd,
            p.strong_share * 100.0
        );
    }
    if let Some(sel) = &e.selected {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "selected on training data: bar {:.4}{}",
            sel.point,
            if sel.per_fold.len() > 1 {
                format!(
                    " (per fold {})",
                    sel.per_fold
                        .iter()
                        .map(|b| format!("{b:.4}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "  test quality {:.4} at {:.1}% of {}'s cost ({} {:.4} ± {:.4}): {}",
            sel.quality,
            sel.cost_share * 100.0,
            sel.best_single,
            sel.best_single,
            sel.best_quality,
            sel.best_standard_error,
            if sel.matches_best {
                "matches it within one standard error"
            } else {
                "below it by more than one standard error"
            }
        );
    }
    let _ = writeln!(
        s,
        "curve above every single model: {}",
        if e.above_single_models {
            "yes".to_string()
        } else {
            format!("no (below: {})", e.below.join(", "))
        }
    );
    s
}

pub fn json(e: &Evaluation) -> String {
    serde_json::to_string_pretty(e).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
}

/// One line per operating point and test prompt.
pub fn write_choices(e: &Evaluation, path: &Path) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for c in &e.choices {
        serde_json::to_writer(&mut f, c)?;
        f.write_all(b"\n")?;
    }
    f.flush()
}

/// The cost–quality plane: the router's curve, every single model, random and the oracle.
pub fn svg(e: &Evaluation) -> String {
    let (w, h, pad) = (720.0, 480.0, 60.0);
    let mut xs: Vec<f64> = e.curve.iter().map(|p| p.cost_usd).collect();
    xs.extend(e.singles.iter().map(|s| s.cost_usd));
    xs.push(e.oracle.cost_usd);
    let mut ys: Vec<f64> = e.curve.iter().map(|p| p.quality).collect();
    ys.extend(e.singles.iter().map(|s| s.quality));
    ys.push(e.oracle.quality);
    ys.push(e.random.quality);
    let (x0, x1) = (
        0.0,
        xs.iter().copied().fold(0.0, f64::max).max(1e-12) * 1.05,
    );
    let (ymin, ymax) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    let (y0, y1) = (
        (ymin - 0.02).max(0.0),
        (ymax + 0.02).min(1.0).max(ymin + 0.05),
    );
    let px = |x: f64| pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad);
    let py = |y: f64| h - pad - (y - y0) / (y1 - y0) * (h - 2.0 * pad);
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14">{} — {} ({})</text>"#,
        w / 2.0,
        esc(&e.test),
        esc(&e.setting),
        esc(&e.method)
    );
    // Axes with five ticks each.
    let _ = write!(
        s,
        r#"<line x1="{pad}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        h - pad,
        w - pad,
        h - pad
    );
    let _ = write!(
        s,
        r#"<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{}" stroke="black"/>"#,
        h - pad
    );
    for i in 0..=5 {
        let xv = x0 + (x1 - x0) * f64::from(i) / 5.0;
        let yv = y0 + (y1 - y0) * f64::from(i) / 5.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{xv:.4}</text>"#,
            px(xv),
            h - pad + 16.0
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{yv:.3}</text>"#,
            pad - 6.0,
            py(yv) + 4.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">total cost (USD)</text>"#,
        w / 2.0,
        h - 16.0
    );
    let _ = write!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">quality (mean score)</text>"#,
        h / 2.0,
        h / 2.0
    );
    let path: Vec<String> = e
        .curve
        .iter()
        .map(|p| format!("{:.1},{:.1}", px(p.cost_usd), py(p.quality)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{}"/>"##,
        path.join(" ")
    );
    for x in &e.singles {
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#d73a49"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            px(x.cost_usd),
            py(x.quality),
            px(x.cost_usd) + 6.0,
            py(x.quality) - 4.0,
            esc(x.name.rsplit('/').next().unwrap_or(&x.name))
        );
    }
    for (label, p, color) in [
        ("random", e.random, "#6a737d"),
        ("oracle", e.oracle, "#28a745"),
    ] {
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="{color}"/><text x="{:.1}" y="{:.1}">{label}</text>"#,
            px(p.cost_usd) - 4.0,
            py(p.quality) - 4.0,
            px(p.cost_usd) + 6.0,
            py(p.quality) + 4.0
        );
    }
    if let Some(sel) = &e.selected {
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="6" fill="none" stroke="#1f6feb" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="#1f6feb">selected (bar {:.3})</text>"##,
            px(sel.cost_usd),
            py(sel.quality),
            px(sel.cost_usd) + 8.0,
            py(sel.quality) + 14.0,
            sel.point
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One row of the candidates table: name, quality, its standard error (blank when it has none),
/// cost, and what follows on the line.
fn candidate(s: &mut String, name: &str, quality: f64, se: Option<f64>, cost: f64, tail: &str) {
    let se = se.map_or_else(String::new, |v| format!("{v:.4}"));
    let _ = writeln!(s, "{name:<44} {quality:>8.4} {se:>8} {cost:>12.6}{tail}");
}
