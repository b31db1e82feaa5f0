//! `switchyard calibrate`: the learned layer's bar that hits a target on outcome data (a share
//! of calls to the dearest tier, or a share of its quality), printed and written into the table.
//! The data is replayed through the whole table as `eval` does, the learned layer's own data by
//! cross-validation, so the bar is the one that would have hit the target on prompts it had not
//! seen.

use super::Options;
use super::curve::Point;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["premium_share", "quality"])))]
pub struct CalibrateArgs {
    /// The routing table; its routing.learned.bar is rewritten in place.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Target share of requests on the dearest tier (e.g. 0.2): the best quality within it.
    #[arg(long)]
    pub premium_share: Option<f64>,
    /// Target share of the dearest tier's quality (e.g. 0.95): the cheapest bar that keeps it.
    #[arg(long)]
    pub quality: Option<f64>,
    /// Outcome files to calibrate on (default: routing.learned.outcomes).
    #[arg(long)]
    pub outcomes: Vec<PathBuf>,
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Print the bar without writing it.
    #[arg(long)]
    pub dry_run: bool,
}

/// What the calibration found.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub bar: f64,
    pub point: Point,
    pub premium_quality: f64,
}

pub enum Target {
    PremiumShare(f64),
    Quality(f64),
}

/// The operating point for the target among `points`: for a premium share, the best quality
/// whose share of dearest-tier calls does not exceed it; for a quality share, the cheapest point
/// that keeps it.
pub fn pick(points: &[Point], target: &Target, premium_quality: f64) -> Option<Point> {
    match *target {
        Target::PremiumShare(share) => points
            .iter()
            .filter(|p| p.strong_share <= share + 1e-12)
            .max_by(|a, b| {
                a.quality
                    .total_cmp(&b.quality)
                    .then(b.cost_usd.total_cmp(&a.cost_usd))
            })
            .copied(),
        Target::Quality(q) => super::curve::cheapest_reaching(points, q * premium_quality),
    }
}

pub async fn calibrate(
    config: &Path,
    outcomes: &[PathBuf],
    folds: usize,
    target: &Target,
) -> Result<Calibration, String> {
    let cfg = crate::config::Config::load(config).map_err(|e| e.to_string())?;
    let Some(l) = &cfg.routing.learned else {
        return Err(format!(
            "{}: the table has no routing.learned section to calibrate",
            config.display()
        ));
    };
    let base = config.parent().unwrap_or_else(|| Path::new("."));
    let test: Vec<PathBuf> = if outcomes.is_empty() {
        l.outcomes.iter().map(|f| base.join(&f.value)).collect()
    } else {
        outcomes.to_vec()
    };
    let e = super::evaluate(&Options {
        config: Some(config.to_path_buf()),
        test,
        train: Vec::new(),
        folds,
        seed: 0,
        method: None,
        bar_kind: None,
        k: None,
        embedder: None,
        output_tokens: 200,
        cache: true,
        // The bar is written into the table, whose learned layer chooses between its tiers only.
        cascade: false,
    })
    .await?;
    let premium_quality = e.singles.last().map_or(1.0, |s| s.quality);
    // The curve's top point stands for the dearest tier alone, which no bar expresses.
    let points: Vec<super::curve::Point> = e
        .points
        .iter()
        .filter(|p| p.point < super::sweep::TOP)
        .copied()
        .collect();
    let point = pick(&points, target, premium_quality)
        .ok_or_else(|| "no operating point reaches the target on this data".to_string())?;
    Ok(Calibration {
        bar: (point.point.clamp(0.0, 1.0) * 1e4).round() / 1e4,
        point,
        premium_quality,
    })
}

pub async fn run(args: CalibrateArgs) -> ExitCode {
    let target = match (args.premium_share, args.quality) {
        (Some(s), _) if (0.0..=1.0).contains(&s) => Target::PremiumShare(s),
        (_, Some(q)) if (0.0..=1.0).contains(&q) => Target::Quality(q),
        _ => {
            eprintln!("error: --premium-share and --quality are shares between 0 and 1");
            return ExitCode::from(2);
        }
    };
    let c = match calibrate(&args.config, &args.outcomes, args.folds, &target).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("bar        {:.4}", c.bar);
    println!(
        "gives      quality {:.4} ({:.1}% of the dearest tier's {:.4}), {:.1}% of requests on the dearest tier, {:.6} USD",
        c.point.quality,
        if c.premium_quality > 0.0 {
            c.point.quality / c.premium_quality * 100.0
        } else {
            0.0
        },
        c.premium_quality,
        c.point.strong_share * 100.0,
        c.point.cost_usd
    );
    if args.dry_run {
        return ExitCode::SUCCESS;
    }
    match write_bar(&args.config, c.bar) {
        Ok(()) => {
            println!(
                "written    routing.learned.bar in {}",
                args.config.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sets `routing.learned.bar` in the file, changing nothing else: the value is replaced where it
/// is written, or a `bar:` line is added under `learned:`. The result is validated before it
/// replaces the file.
pub fn write_bar(path: &Path, bar: f64) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let cfg = crate::config::Config::from_yaml(&text, &path.display().to_string())
        .map_err(|e| e.to_string())?;
    let l = cfg
        .routing
        .learned
        .as_ref()
        .ok_or_else(|| format!("{}: no routing.learned section", path.display()))?;
    let value = format!("{bar}");
    let loc = l.bar.referenced;
    let new = if loc.line() > 0 {
        replace_scalar(&text, loc.line() as usize, loc.column() as usize, &value)
    } else {
        insert_key(&text, "learned", "bar", &value)
    }
    .ok_or_else(|| {
        format!(
            "{}: cannot find where to write routing.learned.bar; set it by hand to {value}",
            path.display()
        )
    })?;
    crate::config::Config::from_yaml(&new, &path.display().to_string())
        .map_err(|e| format!("the edited table would not load ({e}); left unchanged"))?;
    let tmp = path.with_extension("yaml.calibrate.tmp");
    std::fs::write(&tmp, &new).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Replaces the plain scalar starting at 1-based `line`, `column` (characters).
fn replace_scalar(text: &str, line: usize, column: usize, value: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + value.len());
    let mut done = false;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 != line {
            out.push_str(l);
            continue;
        }
        let start = l.char_indices().nth(column.checked_sub(1)?)?.0;
        let rest = &l[start..];
        let len = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | '}' | ']' | '#'))
            .unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        out.push_str(&l[..start]);
        out.push_str(value);
        out.push_str(&rest[len..]);
        done = true;
    }
    done.then_some(out)
}

/// Adds `key: value` as the first entry of the mapping under `parent:` (block or flow style).
fn insert_key(text: &str, parent: &str, key: &str, value: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let idx = lines.iter().position(|l| {
        let t = l.trim_start();
        t.starts_with(&format!("{parent}:")) && !t.starts_with('#')
    })?;
    let line = lines[idx];
    let after = line.trim_start()[parent.len() + 1..].trim();
    let mut out: String = lines[..idx].concat();
    if after.is_empty() || after.starts_with('#') {
        let own = line.len() - line.trim_start().len();
        let child = lines[idx + 1..]
            .iter()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| l.len() - l.trim_start().len())
            .filter(|&c| c > own)
            .unwrap_or(own + 2);
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{}{key}: {value}\n", " ".repeat(child)));
    } else if let Some(pos) = line.find('{') {
        out.push_str(&line[..=pos]);
        out.push_str(&format!(" {key}: {value},"));
        out.push_str(&line[pos + 1..]);
    } else {
        return None;
    }
    out.push_str(&lines[idx + 1..].concat());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_only_the_value() {
        let t = "routing:\n  learned:\n    bar: 0.9   # tuned\n    k: 5\n";
        assert_eq!(
            replace_scalar(t, 3, 10, "0.83").as_deref(),
            Some("routing:\n  learned:\n    bar: 0.83   # tuned\n    k: 5\n")
        );
        let f = "routing:\n  learned: { outcomes: [a.jsonl], bar: 0.9 }\n";
        assert_eq!(
            replace_scalar(f, 2, 40, "0.8").as_deref(),
            Some("routing:\n  learned: { outcomes: [a.jsonl], bar: 0.8 }\n")
        );
        assert_eq!(
            insert_key("routing:\n  learned:\n    k: 5\n", "learned", "bar", "0.7").as_deref(),
            Some("routing:\n  learned:\n    bar: 0.7\n    k: 5\n")
        );
        assert_eq!(
            insert_key("routing:\n  learned: { k: 5 }\n", "learned", "bar", "0.7").as_deref(),
            Some("routing:\n  learned: { bar: 0.7, k: 5 }\n")
        );
    }

    #[test]
    fn picks_the_point_for_each_target() {
        let p = |q: f64, c: f64, s: f64| Point {
            point: s,
            quality: q,
            cost_usd: c,
            strong_share: s,
        };
        let pts = [
            p(0.6, 1.0, 0.0),
            p(0.7, 2.0, 0.1),
            p(0.78, 3.0, 0.25),
            p(0.8, 5.0, 1.0),
        ];
        assert_eq!(pick(&pts, &Target::PremiumShare(0.2), 0.8), Some(pts[1]));
        assert_eq!(pick(&pts, &Target::Quality(0.95), 0.8), Some(pts[2]));
        assert_eq!(pick(&pts, &Target::Quality(1.0), 0.8), Some(pts[3]));
    }
}
