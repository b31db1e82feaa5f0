//! `--report FILE.html`: the quality matrix as a heat map and the models on a cost–quality
//! scatter, in one self-contained page (inline SVG and CSS, no script, nothing fetched), so it
//! opens in any browser offline and can be attached to a review as it is.

use super::matrix::{Matrix, usd};
use std::fmt::Write;

pub fn html(m: &Matrix, bar: f64, title: &str) -> String {
    let pct = (m.confidence * 100.0).round();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.15em; margin-top: 2em; }}
p.note {{ color: #555; max-width: 60em; }}
svg text {{ font: 12px system-ui, sans-serif; }}
svg .small {{ font-size: 10px; fill: #333; }}
svg .axis {{ stroke: #888; }}
</style></head><body>
<h1>{t}</h1>
<p class="note">Mean score per task type and model, with its {pct}% confidence interval (Wilson for 0/1 scores, Student's t otherwise).
A framed cell is the routing map's choice: the cheapest model whose interval's lower bound clears the bar of {bar}.
Models are ordered cheapest first.</p>
<h2>Quality matrix</h2>
"#,
        t = esc(title)
    );
    out.push_str(&heat_map(m, bar));
    let _ = write!(
        out,
        r#"<h2>Cost and quality</h2>
<p class="note">Each model's mean score over all prompts against its cost per 1,000 requests (log scale). The star is the routing map: each task type on its chosen model.</p>
"#
    );
    out.push_str(&scatter(m, bar));
    out.push_str("</body></html>\n");
    out
}

fn heat_map(m: &Matrix, bar: f64) -> String {
    let (label_w, cell_w, cell_h, head_h) = (170.0, 150.0, 46.0, 40.0);
    let width = label_w + cell_w * m.models.len() as f64 + 10.0;
    let height = head_h + cell_h * m.tasks.len() as f64 + 10.0;
    let map = m.routing_map(bar);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="quality matrix">"#
    );
    for (j, model) in m.models.iter().enumerate() {
        let x = label_w + cell_w * j as f64 + cell_w / 2.0;
        let tier = m
            .tiers
            .get(model)
            .map_or(String::new(), |t| format!(" ({t})"));
        let _ = write!(
            s,
            r#"<text x="{x}" y="{}" text-anchor="middle" font-weight="bold">{}</text><text x="{x}" y="{}" text-anchor="middle" class="small">{}</text>"#,
            head_h - 22.0,
            esc(model),
            head_h - 8.0,
            esc(&tier)
        );
    }
    for (i, task) in m.tasks.iter().enumerate() {
        let y = head_h + cell_h * i as f64;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 10.0,
            y + cell_h / 2.0 + 4.0,
            esc(task)
        );
        let pick = map
            .iter()
            .find(|r| &r.task == task)
            .and_then(|r| r.pick.clone());
        for (j, model) in m.models.iter().enumerate() {
            let x = label_w + cell_w * j as f64;
            match m.cell(task, model).filter(|c| c.n > 0) {
                Some(c) => {
                    let chosen = pick.as_deref() == Some(model.as_str());
                    let _ = write!(
                        s,
                        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}" stroke="{}" stroke-width="{}"><title>{} on {}: {:.3} [{:.3}, {:.3}], n={}, {} per 1k requests</title></rect>"#,
                        x + 2.0,
                        y + 2.0,
                        cell_w - 4.0,
                        cell_h - 4.0,
                        colour(c.mean),
                        if chosen { "#111" } else { "#fff" },
                        if chosen { 3 } else { 1 },
                        esc(task),
                        esc(model),
                        c.mean,
                        c.lo,
                        c.hi,
                        c.n,
                        c.cost_per_1k.map_or_else(|| "-".into(), usd)
                    );
                    let _ = write!(
                        s,
                        r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{:.2}</text><text x="{}" y="{}" text-anchor="middle" class="small">[{:.2}, {:.2}]</text>"#,
                        x + cell_w / 2.0,
                        y + 20.0,
                        c.mean,
                        x + cell_w / 2.0,
                        y + 34.0,
                        c.lo,
                        c.hi
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#eee"/><text x="{}" y="{}" text-anchor="middle" class="small">not scored</text>"##,
                        x + 2.0,
                        y + 2.0,
                        cell_w - 4.0,
                        cell_h - 4.0,
                        x + cell_w / 2.0,
                        y + cell_h / 2.0 + 4.0
                    );
                }
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Red (0) through yellow to green (1), light enough for dark text.
fn colour(score: f64) -> String {
    let hue = (score.clamp(0.0, 1.0) * 120.0).round();
    format!("hsl({hue}, 65%, 72%)")
}

/// (model, mean score over all its scored prompts, cost per 1k requests).
fn points(m: &Matrix) -> Vec<(String, f64, f64)> {
    m.models
        .iter()
        .filter_map(|model| {
            let (mut q, mut c, mut n) = (0.0, 0.0, 0.0);
            for task in &m.tasks {
                let cell = m.cell(task, model).filter(|c| c.n > 0)?;
                let w = cell.n as f64;
                q += cell.mean * w;
                c += cell.cost_per_1k? * w;
                n += w;
            }
            (n > 0.0).then(|| (model.clone(), q / n, c / n))
        })
        .collect()
}

fn scatter(m: &Matrix, bar: f64) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 380.0, 60.0, 45.0, 15.0, 30.0);
    let pts = points(m);
    let map = m.routing_map(bar);
    let mix = {
        let (mut q, mut c, mut n) = (0.0, 0.0, 0.0);
        let mut whole = true;
        for r in &map {
            let chosen = r.pick.clone().or_else(|| r.best.clone());
            match chosen.as_deref().and_then(|x| m.cell(&r.task, x)) {
                Some(cell) if cell.cost_per_1k.is_some() => {
                    let wt = cell.n as f64;
                    q += cell.mean * wt;
                    c += cell.cost_per_1k.unwrap_or(0.0) * wt;
                    n += wt;
                }
                _ => whole = false,
            }
        }
        (whole && n > 0.0).then(|| (q / n, c / n))
    };
    let costs: Vec<f64> = pts
        .iter()
        .map(|p| p.2)
        .chain(mix.map(|x| x.1))
        .filter(|c| *c > 0.0)
        .collect();
    let (lo, hi) = costs
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), c| (a.min(*c), b.max(*c)));
    let (lx, hx) = if costs.is_empty() {
        (-3.0, 0.0)
    } else {
        ((lo.log10() - 0.3).floor(), (hi.log10() + 0.3).ceil())
    };
    let hx = if hx <= lx { lx + 1.0 } else { hx };
    let px = |c: f64| {
        let v = if c > 0.0 { c.log10() } else { lx };
        left + (v - lx) / (hx - lx) * (w - left - right)
    };
    let py = |q: f64| top + (1.0 - q.clamp(0.0, 1.0)) * (h - top - bottom);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="cost and quality">"#
    );
    let _ = write!(
        s,
        r#"<line class="axis" x1="{left}" y1="{0}" x2="{1}" y2="{0}"/><line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{0}"/>"#,
        h - bottom,
        w - right
    );
    let mut e = lx;
    while e <= hx + 1e-9 {
        let x = px(10f64.powf(e));
        let _ = write!(
            s,
            r#"<line class="axis" x1="{x}" y1="{0}" x2="{x}" y2="{1}"/><text x="{x}" y="{2}" text-anchor="middle" class="small">{3}</text>"#,
            h - bottom,
            h - bottom + 5.0,
            h - bottom + 18.0,
            esc(&tick(e))
        );
        e += 1.0;
    }
    for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = py(q);
        let _ = write!(
            s,
            r#"<line class="axis" x1="{0}" y1="{y}" x2="{left}" y2="{y}"/><text x="{1}" y="{2}" text-anchor="end" class="small">{q:.2}</text>"#,
            left - 5.0,
            left - 8.0,
            y + 4.0
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="#c33" stroke-dasharray="4 3"/><text x="{2}" y="{3}" text-anchor="end" class="small" fill="#c33">bar {bar}</text>"##,
        py(bar),
        w - right,
        w - right,
        py(bar) - 4.0
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">cost per 1,000 requests</text><text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">mean score</text>"#,
        (left + w - right) / 2.0,
        h - 6.0,
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0
    );
    // Labels of points that sit on one another (two deployments of one model) are stacked.
    let mut placed: Vec<(f64, f64)> = Vec::new();
    for (model, q, c) in &pts {
        let (x, y) = (px(*c), py(*q));
        let mut ly = y + 4.0;
        while placed
            .iter()
            .any(|(px_, py_)| (px_ - x).abs() < 60.0 && (py_ - ly).abs() < 13.0)
        {
            ly += 14.0;
        }
        placed.push((x, ly));
        let _ = write!(
            s,
            r##"<circle cx="{x}" cy="{y}" r="6" fill="#3b6fb6" fill-opacity="0.8"><title>{0}: {q:.3} at {1} per 1k</title></circle><text x="{2}" y="{ly}">{0}</text>"##,
            esc(model),
            esc(&usd(*c)),
            x + 9.0,
        );
    }
    if let Some((q, c)) = mix {
        let (x, y) = (px(c), py(q));
        let _ = write!(
            s,
            r##"<text x="{x}" y="{0}" text-anchor="middle" font-size="20" fill="#d98c00">★<title>routing map: {q:.3} at {1} per 1k</title></text><text x="{x}" y="{2}" text-anchor="middle" fill="#a66a00">routing map</text>"##,
            y + 7.0,
            esc(&usd(c)),
            y + 24.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// An axis label for 10^e dollars: `$0.001`, `$1`, `$10`.
fn tick(e: f64) -> String {
    let e = e.round() as i32;
    if e >= 0 {
        format!("${}", 10u64.pow(e.unsigned_abs()))
    } else {
        format!("${:.*}", e.unsigned_abs() as usize, 10f64.powi(e))
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::outcomes::Outcome;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn the_page_is_self_contained_and_shows_every_cell() {
        let rows: Vec<Outcome> = (0..10)
            .map(|i| {
                serde_json::from_value(
                    json!({"id": format!("r{i}"), "category": "t<1>", "messages": [],
                    "scores": {"a": 1.0, "b": if i < 5 { 1.0 } else { 0.0 }},
                    "costs_usd": {"a": 0.01, "b": 0.0001}}),
                )
                .unwrap()
            })
            .collect();
        let refs: Vec<&Outcome> = rows.iter().collect();
        let m = Matrix::build(
            &refs,
            &["t<1>".into()],
            &["a".into(), "b".into()],
            BTreeMap::new(),
            0.95,
        );
        let page = html(&m, 0.6, "bench & co");
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("bench &amp; co") && page.contains("t&lt;1&gt;"));
        assert!(
            !page.contains("http://") || !page.contains("src=\"http"),
            "nothing is fetched"
        );
        assert!(!page.contains("<script"));
        assert_eq!(page.matches("<svg").count(), 2);
        assert!(page.contains(">1.00<") && page.contains(">0.50<"), "{page}");
        assert!(page.contains("routing map"));
        assert_eq!(
            (tick(-3.0), tick(0.0), tick(2.0)),
            ("$0.001".into(), "$1".into(), "$100".into())
        );
    }
}
