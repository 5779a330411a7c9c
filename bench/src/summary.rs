//! `summarize`: read `RESULT {json}` lines (several runs, Hearth and raw-broadcast), print the
//! median of every metric per scenario/row/target and Hearth as a ratio of the raw server.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::util::{fmt_num, print_table, Res};

#[derive(Default)]
struct Cell {
    // target -> metric -> values over runs
    by_target: BTreeMap<String, Vec<(String, Vec<f64>)>>,
}

fn push(cell: &mut Cell, target: &str, metric: &str, v: f64) {
    let metrics = cell.by_target.entry(target.to_string()).or_default();
    match metrics.iter_mut().find(|(k, _)| k == metric) {
        Some((_, vals)) => vals.push(v),
        None => metrics.push((metric.to_string(), vec![v])),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn run(files: &[PathBuf], markdown: bool) -> Res<bool> {
    let mut text = String::new();
    if files.is_empty() {
        use std::io::Read;
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        for f in files {
            text.push_str(&std::fs::read_to_string(f)?);
            text.push('\n');
        }
    }
    // scenario -> label -> cell; order of first appearance kept via Vec.
    let mut scenarios: Vec<(String, Vec<(String, Cell)>)> = Vec::new();
    let mut checks: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    let mut runs: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut all_ok = true;
    for line in text.lines() {
        let Some(j) = line.trim().strip_prefix("RESULT ") else {
            continue;
        };
        let v: Value = serde_json::from_str(j)?;
        let scenario = v["scenario"].as_str().unwrap_or("?").to_string();
        let target = v["target"].as_str().unwrap_or("?").to_string();
        all_ok &= v["ok"].as_bool().unwrap_or(false);
        *runs.entry((scenario.clone(), target.clone())).or_default() += 1;
        let idx = match scenarios.iter().position(|(s, _)| *s == scenario) {
            Some(i) => i,
            None => {
                scenarios.push((scenario.clone(), Vec::new()));
                scenarios.len() - 1
            }
        };
        let labels = &mut scenarios[idx].1;
        let mut rows: Vec<(String, Vec<(String, f64)>)> = Vec::new();
        for r in v["rows"].as_array().into_iter().flatten() {
            let label = r["label"].as_str().unwrap_or("").to_string();
            let metrics = r
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                .collect();
            rows.push((label, metrics));
        }
        if let Some(info) = v["info"].as_object() {
            let metrics = info
                .iter()
                .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                .collect();
            rows.push(("(info)".to_string(), metrics));
        }
        for (label, metrics) in rows {
            let li = match labels.iter().position(|(l, _)| *l == label) {
                Some(i) => i,
                None => {
                    labels.push((label.clone(), Cell::default()));
                    labels.len() - 1
                }
            };
            for (k, f) in metrics {
                push(&mut labels[li].1, &target, &k, f);
            }
        }
        let c = checks.entry((scenario, target)).or_default();
        for (k, val) in v["checks"].as_object().into_iter().flatten() {
            *c.entry(k.clone()).or_default() += val.as_u64().unwrap_or(0);
        }
    }
    for (scenario, labels) in &scenarios {
        let targets: Vec<String> = runs
            .keys()
            .filter(|(s, _)| s == scenario)
            .map(|(_, t)| t.clone())
            .collect();
        let has_raw = targets.iter().any(|t| t == "raw") && targets.iter().any(|t| t == "hearth");
        let nruns: Vec<String> = targets
            .iter()
            .map(|t| format!("{t} x{}", runs[&(scenario.clone(), t.clone())]))
            .collect();
        println!();
        println!("## {scenario} (median of runs: {})", nruns.join(", "));
        let mut headers = vec!["row".to_string(), "metric".to_string()];
        headers.extend(targets.iter().cloned());
        if has_raw {
            headers.push("hearth/raw".into());
        }
        let mut rows = Vec::new();
        for (label, cell) in labels {
            // Metric order: first target that has this row.
            let mut metric_names: Vec<String> = Vec::new();
            for t in &targets {
                for (k, _) in cell.by_target.get(t).into_iter().flatten() {
                    if !metric_names.contains(k) {
                        metric_names.push(k.clone());
                    }
                }
            }
            for k in metric_names {
                let med = |t: &str| -> Option<f64> {
                    cell.by_target
                        .get(t)?
                        .iter()
                        .find(|(m, _)| *m == k)
                        .map(|(_, v)| median(v))
                };
                let mut r = vec![label.clone(), k.clone()];
                for t in &targets {
                    r.push(med(t).map(fmt_num).unwrap_or_else(|| "-".into()));
                }
                if has_raw {
                    r.push(match (med("hearth"), med("raw")) {
                        (Some(h), Some(w)) if w != 0.0 => format!("{:.2}", h / w),
                        _ => "-".into(),
                    });
                }
                rows.push(r);
            }
        }
        if markdown {
            println!("| {} |", headers.join(" | "));
            println!("|{}|", vec!["---"; headers.len()].join("|"));
            for r in &rows {
                println!("| {} |", r.join(" | "));
            }
        } else {
            print_table(&headers, &rows);
        }
        for t in &targets {
            if let Some(c) = checks.get(&(scenario.clone(), t.clone())) {
                let s: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("  checks ({t}, summed over runs): {}", s.join(" "));
            }
        }
    }
    Ok(all_ok)
}
