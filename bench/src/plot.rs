//! `paddock bench plot`: renders PERF.md's charts to SVG from a JSON spec: latency by percentile
//! from the `.hgrm` files `bench load --hist-out` writes, and grouped bars of summary numbers.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// Options of `paddock bench plot`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlotArgs {
    /// JSON spec: "latency" charts (series of .hgrm files) and "bars" charts (series of values).
    #[arg(long)]
    pub spec: PathBuf,
    /// Directory the SVGs are written to (default: the spec's directory).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// The latency charts' x axis ends at 1/(1-0.99999): HdrHistogram's classic "99.999%" edge.
const MAX_X: f64 = 1e5;

/// Series `i`'s colour (Tableau 10, cycled): distinct from one another on white.
fn colour(i: usize) -> RGBColor {
    let (r, g, b) =
        [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)][i % 6];
    RGBColor(r, g, b)
}

/// A chart with all its data loaded: loading everything first means a bad spec writes nothing.
enum Chart {
    Latency { file: String, title: String, series: Vec<(String, Vec<(f64, f64)>)> },
    Bars { file: String, title: String, unit: String, groups: Vec<String>, series: Vec<(String, Vec<f64>)> },
}

/// `paddock bench plot` as a command: writes every chart, prints their paths; 1 on any error.
pub fn main(args: &PlotArgs) -> ExitCode {
    match run(args) {
        Ok(written) => {
            written.iter().for_each(|p| println!("{}", p.display()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paddock bench plot: {e}");
            ExitCode::from(1)
        }
    }
}

/// Loads the spec and every histogram it names, then writes the SVGs; returns their paths.
pub fn run(args: &PlotArgs) -> Result<Vec<PathBuf>, String> {
    let at = args.spec.display().to_string();
    let text = std::fs::read_to_string(&args.spec).map_err(|e| format!("{at}: {e}"))?;
    let spec: Value = serde_json::from_str(&text).map_err(|e| format!("{at}: {e}"))?;
    let base = args.spec.parent().unwrap_or(Path::new(""));
    let mut charts = Vec::new();
    for (i, c) in list(&spec, "latency", &at)?.iter().enumerate() {
        charts.push(load_latency(c, &format!("{at}: latency[{i}]"), base)?);
    }
    for (i, c) in list(&spec, "bars", &at)?.iter().enumerate() {
        charts.push(load_bars(c, &format!("{at}: bars[{i}]"))?);
    }
    let out_dir = args.out_dir.as_deref().unwrap_or(base);
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    charts
        .iter()
        .map(|chart| {
            let (Chart::Latency { file, .. } | Chart::Bars { file, .. }) = chart;
            let path = out_dir.join(file);
            match chart {
                Chart::Latency { title, series, .. } => latency(&path, title, series),
                Chart::Bars { title, unit, groups, series, .. } => bars(&path, title, unit, groups, series),
            }
            .map(|()| path)
        })
        .collect()
}

/// `v[key]` as an array; an absent key is an empty one, as either chart list may be left out.
fn list<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a [Value], String> {
    match v.get(key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("{at}: \"{key}\" is not an array")),
    }
}

/// `v[key]` as an array that must have something in it (a chart's series and groups).
fn nonempty<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a [Value], String> {
    list(v, key, at)
        .and_then(|a| if a.is_empty() { Err(format!("{at}: \"{key}\" is missing or empty")) } else { Ok(a) })
}

/// `v[key]` as a string, required.
fn text(v: &Value, key: &str, at: &str) -> Result<String, String> {
    v.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("{at}: missing string \"{key}\""))
}

fn load_latency(c: &Value, at: &str, base: &Path) -> Result<Chart, String> {
    let mut series = Vec::new();
    for (j, s) in nonempty(c, "series", at)?.iter().enumerate() {
        let at = format!("{at}.series[{j}]");
        let path = base.join(text(s, "hist", &at)?);
        let hgrm = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        series.push((text(s, "label", &at)?, parse_hgrm(&hgrm).map_err(|e| format!("{}: {e}", path.display()))?));
    }
    Ok(Chart::Latency { file: text(c, "file", at)?, title: text(c, "title", at)?, series })
}

fn load_bars(c: &Value, at: &str) -> Result<Chart, String> {
    let groups = nonempty(c, "groups", at)?.iter().map(|g| g.as_str().map(str::to_string));
    let groups: Vec<String> =
        groups.collect::<Option<_>>().ok_or_else(|| format!("{at}: \"groups\" are not strings"))?;
    let mut series = Vec::new();
    for (j, s) in nonempty(c, "series", at)?.iter().enumerate() {
        let at = format!("{at}.series[{j}]");
        let values: Vec<f64> = list(s, "values", &at)?.iter().filter_map(Value::as_f64).collect();
        if values.len() != groups.len() {
            return Err(format!("{at}: \"values\" needs {} numbers, one per group", groups.len()));
        }
        series.push((text(s, "label", &at)?, values));
    }
    let unit = c.get("unit").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(Chart::Bars { file: text(c, "file", at)?, title: text(c, "title", at)?, unit, groups, series })
}

/// The (1/(1-percentile), latency ms) points of an HdrHistogram percentile distribution, x
/// clipped at 99.999%: the 100% row (the max) is put there, finite rows beyond it are dropped.
pub fn parse_hgrm(text: &str) -> Result<Vec<(f64, f64)>, String> {
    let mut points = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let nums: Option<Vec<f64>> = cols.iter().take(3).map(|c| c.parse().ok()).collect();
        let (Some([ms, p, _]), 3..=4) = (nums.as_deref(), cols.len()) else { continue };
        if !ms.is_finite() || !(0.0..=1.0).contains(p) {
            return Err(format!("bad row: {}", line.trim()));
        }
        let x = if *p >= 1.0 { MAX_X } else { 1.0 / (1.0 - p) };
        if x <= MAX_X * (1.0 + 1e-9) {
            points.push((x.min(MAX_X), *ms));
        }
    }
    if points.is_empty() {
        return Err("no percentile rows (Value Percentile TotalCount 1/(1-Percentile))".into());
    }
    Ok(points)
}

/// What both kinds of chart share besides the x axis, so that they look alike.
struct Frame<'a> {
    path: &'a Path,
    size: (u32, u32),
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    y_max: f64,
    x_label: &'a dyn Fn(&f64) -> String,
    x_font: u32,
    x_mesh: bool,
    legend: SeriesLabelPosition,
}

type Drawn = Result<(), DrawingAreaErrorKind<std::io::Error>>;
type Plot<'a, 'b, X> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, RangedCoordf64>>;

/// Draws the frame (title, axes, mesh), then `body`'s series, then the legend, and writes the SVG.
fn draw<X: Ranged<ValueType = f64, FormatOption = DefaultFormatting>>(
    f: &Frame,
    x: X,
    body: impl FnOnce(&mut Plot<'_, '_, X>) -> Drawn,
) -> Result<(), String> {
    let drawn = (|| -> Drawn {
        let root = SVGBackend::new(f.path, f.size).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(f.title, ("sans-serif", 22))
            .margin(15)
            .margin_right(40) // room for the last x label, centred on the axis end
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x, 0.0..f.y_max)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(f.x_desc).y_desc(f.y_desc).x_label_formatter(f.x_label).x_label_style(("sans-serif", f.x_font));
        mesh.y_label_formatter(&|y| compact(*y)).light_line_style(TRANSPARENT);
        if !f.x_mesh {
            mesh.disable_x_mesh();
        }
        mesh.draw()?;
        body(&mut chart)?;
        chart
            .configure_series_labels()
            .position(f.legend.clone())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()
    })();
    drawn.map_err(|e| format!("{}: {e}", f.path.display()))
}

/// The axis top: `headroom` above the highest value, and something drawable when all are 0.
fn top(values: impl Iterator<Item = f64>, headroom: f64) -> f64 {
    let max = values.fold(0.0, f64::max);
    if max > 0.0 {
        max * headroom
    } else {
        1.0
    }
}

/// Latency by percentile, one line per series, on HdrHistogram's log 1/(1-percentile) axis.
fn latency(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<(), String> {
    let percentile = |x: &f64| {
        let decimals = (x.log10().round() as usize).saturating_sub(2);
        format!("{:.decimals$}%", 100.0 * (1.0 - 1.0 / x))
    };
    let y_max = top(series.iter().flat_map(|(_, p)| p.iter().map(|&(_, ms)| ms)), 1.1);
    let (x_desc, y_desc, x_font, x_mesh, legend) =
        ("percentile", "latency (ms)", 14, true, SeriesLabelPosition::UpperLeft);
    let frame =
        Frame { path, size: (800, 500), title, x_desc, y_desc, y_max, x_label: &percentile, x_font, x_mesh, legend };
    let x = (1.0..MAX_X).log_scale().with_key_points(vec![1.0, 10.0, 100.0, 1e3, 1e4, MAX_X]);
    draw(&frame, x, |chart| {
        for (i, (label, points)) in series.iter().enumerate() {
            let colour = colour(i);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        Ok(())
    })
}

/// Grouped bars, one per series in each group, each with its value written above it.
fn bars(path: &Path, title: &str, unit: &str, groups: &[String], series: &[(String, Vec<f64>)]) -> Result<(), String> {
    let group_label = |x: &f64| groups.get(x.floor() as usize).cloned().unwrap_or_default();
    let y_max = top(series.iter().flat_map(|(_, v)| v.iter().copied()), 1.15);
    let crowded = groups.len() * series.len() > 16;
    let x_font = if groups.len() > 6 { 11 } else { 14 };
    // The legend goes over the half of the groups whose bars are lower.
    let peak = |right: bool| {
        let half = series.iter().flat_map(|(_, v)| if right { &v[v.len() / 2..] } else { &v[..v.len() / 2] });
        half.fold(0.0, |m: f64, &x| m.max(x))
    };
    let left_higher = peak(false) > peak(true);
    let legend = if left_higher { SeriesLabelPosition::UpperRight } else { SeriesLabelPosition::UpperLeft };
    let frame = Frame {
        path,
        size: (900, 500),
        title,
        x_desc: "",
        y_desc: unit,
        y_max,
        x_label: &group_label,
        x_font,
        x_mesh: false,
        legend,
    };
    let x = Groups(groups.len());
    let width = 0.8 / series.len() as f64;
    let value_style = TextStyle::from(("sans-serif", if crowded { 10 } else { 12 }).into_font())
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    draw(&frame, x, |chart| {
        for (s, (label, values)) in series.iter().enumerate() {
            let colour = colour(s);
            let left = |g: usize| g as f64 + 0.1 + s as f64 * width;
            let bar = |(g, &v): (usize, &f64)| Rectangle::new([(left(g), 0.0), (left(g) + width, v)], colour.filled());
            chart
                .draw_series(values.iter().enumerate().map(bar))?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
            let value = |(g, &v): (usize, &f64)| {
                EmptyElement::at((left(g) + width / 2.0, v)) + Text::new(compact(v), (0, -3), value_style.clone())
            };
            chart.draw_series(values.iter().enumerate().map(value))?;
        }
        Ok(())
    })
}

/// The bar chart's x axis: group g spans [g, g+1] with its tick, and label, in the middle.
/// (`with_key_points` on a plain f64 range would do, but then plotters can't draw the mesh.)
struct Groups(usize);

impl Ranged for Groups {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, v: &f64, (lo, hi): (i32, i32)) -> i32 {
        lo + (f64::from(hi - lo) * v / self.0 as f64).round() as i32
    }
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let bold = !hint.weight().allow_light_points();
        (0..self.0).filter(|_| bold).map(|g| g as f64 + 0.5).collect()
    }
    fn range(&self) -> Range<f64> {
        0.0..self.0 as f64
    }
}

/// A bar's value in at most three significant digits with k/M/G: 354k, 1.2M, 0.73.
fn compact(v: f64) -> String {
    let (x, suffix) =
        [(1e9, "G"), (1e6, "M"), (1e3, "k")].iter().find(|(s, _)| v.abs() >= *s).map_or((v, ""), |&(s, u)| (v / s, u));
    let decimals = usize::from(x.abs() < 100.0) + usize::from(x.abs() < 10.0);
    let digits = format!("{x:.decimals$}");
    let digits = if digits.contains('.') { digits.trim_end_matches('0').trim_end_matches('.') } else { &digits };
    format!("{digits}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_numbers() {
        assert_eq!(compact(354_000.0), "354k");
        assert_eq!(compact(1_200_000.0), "1.2M");
        assert_eq!(compact(1_234_567.0), "1.23M");
        assert_eq!(compact(0.73), "0.73");
        assert_eq!(compact(88_000.0), "88k");
        assert_eq!(compact(0.0), "0");
    }

    #[test]
    fn writes_latency_and_bar_svgs() {
        let dir = std::env::temp_dir().join(format!("paddock-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("runs")).expect("temp dir");
        let mut h = crate::report::latency_histogram();
        (1..=2000u64).for_each(|v| h.record(v * 100).expect("in range"));
        let hgrm = crate::report::percentile_distribution(&h, 1000.0);
        std::fs::write(dir.join("runs/a.hgrm"), &hgrm).expect("write hgrm");
        let spec = r#"{
          "latency": [{"file": "lat.svg", "title": "t", "series": [{"label": "Paddock", "hist": "runs/a.hgrm"}]}],
          "bars": [{"file": "bars.svg", "title": "b", "unit": "ops/s", "groups": ["get", "set"],
                    "series": [{"label": "Paddock", "values": [350000, 170000]}, {"label": "ZooKeeper", "values": [88000, 0.5]}]}]
        }"#;
        std::fs::write(dir.join("spec.json"), spec).expect("write spec");
        let args = PlotArgs { spec: dir.join("spec.json"), out_dir: None };
        assert_eq!(run(&args), Ok(vec![dir.join("lat.svg"), dir.join("bars.svg")]));
        let lat = std::fs::read_to_string(dir.join("lat.svg")).expect("lat.svg");
        assert!(lat.contains("<svg") && lat.contains("Paddock") && lat.contains("99.9%"), "{lat}");
        let bars = std::fs::read_to_string(dir.join("bars.svg")).expect("bars.svg");
        assert!(
            bars.contains("<svg") && bars.contains("Paddock") && bars.contains("ZooKeeper") && bars.contains("350k")
        );
        std::fs::write(dir.join("runs/a.hgrm"), "garbage\n").expect("write hgrm");
        assert!(run(&args).is_err_and(|e| e.contains("no percentile rows")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
