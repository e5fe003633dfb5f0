//! Draws line charts as SVG from a JSON description (written by `scripts/benchmarks.py`):
//!
//! ```text
//! cargo run --release -p benches --bin bench-plots -- plots.json
//! ```
//!
//! ```json
//! [{"file": "docs/plots/x.svg", "title": "...", "x_label": "...", "y_label": "...", "log_x": true,
//!   "series": [{"name": "ours", "points": [[256, 16.7], [512, 23.7]]}]}]
//! ```

use std::process::ExitCode;

use plotters::prelude::*;
use serde_json::Value;

const COLORS: [RGBColor; 6] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

fn draw(plot: &Value) -> Result<(), Box<dyn std::error::Error>> {
    let file = plot["file"].as_str().ok_or("a plot needs a file")?;
    let title = plot["title"].as_str().unwrap_or("");
    let log_x = plot["log_x"].as_bool().unwrap_or(false);
    let series: Vec<(String, Vec<(f64, f64)>)> = plot["series"]
        .as_array()
        .ok_or("a plot needs series")?
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap_or("?").to_string();
            let points = s["points"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?))).collect())
                .unwrap_or_default();
            (name, points)
        })
        .collect();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if all.is_empty() {
        return Err(format!("{file}: no points").into());
    }
    let (x0, x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let y1 = all.iter().fold(0f64, |m, p| m.max(p.1)) * 1.1;
    if let Some(dir) = std::path::Path::new(file).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let root = SVGBackend::new(file, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder.caption(title, ("sans-serif", 18)).margin(12).x_label_area_size(40).y_label_area_size(60);
    let x_label = plot["x_label"].as_str().unwrap_or("");
    let y_label = plot["y_label"].as_str().unwrap_or("");
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
            for (i, (name, points)) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
            chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
        }};
    }
    if log_x {
        finish!(builder.build_cartesian_2d((x0 * 0.9..x1 * 1.1).log_scale(), 0f64..y1)?);
    } else {
        let pad = ((x1 - x0) * 0.05).max(0.1);
        finish!(builder.build_cartesian_2d(x0 - pad..x1 + pad, 0f64..y1)?);
    }
    root.present()?;
    Ok(())
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: bench-plots <plots.json>");
        return ExitCode::from(2);
    };
    let plots: Value = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for plot in plots.as_array().into_iter().flatten() {
        if let Err(e) = draw(plot) {
            eprintln!("{e}");
            failed = true;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
