//! The run report's charts as inline SVG: line charts (curves, training losses), histograms of
//! scores with a threshold, and parallel coordinates of sweep points. Small and ours, so the
//! report needs no script, no CDN and no plotting crate's build time.

use std::fmt::Write as _;

const WIDTH: f64 = 420.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 14.0;
/// The title's line, then the legend's.
const TOP: f64 = 46.0;
const LEGEND_LINE: f64 = 36.0;
const BOTTOM: f64 = 44.0;
/// Distinguishable on white and for the common colour-vision deficiencies (Okabe and Ito).
const PALETTE: [&str; 7] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000",
];

/// The `i`-th series colour.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

const THRESHOLD_COLOUR: &str = "#c00000";

/// Text for SVG and HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A named line of points; points with a non-finite coordinate are left out.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A vertical line at `x` with a label (a chosen step, a threshold).
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// A line chart: axes with ticks, one line per series, a legend, optional markers and the
/// diagonal of a chance-level ROC.
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Fixed ranges (`0..1` for rates); otherwise the data's.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub diagonal: bool,
    pub markers: Vec<Marker>,
    /// The y axis on a log scale (losses spanning decades); non-positive values are left out.
    pub log_y: bool,
    /// A figure shown under the title, on the right (the area under the curve).
    pub note: Option<String>,
}

/// Linear map from a data range onto a pixel range.
#[derive(Clone, Copy)]
struct Axis {
    low: f64,
    high: f64,
    from: f64,
    to: f64,
    log: bool,
}

impl Axis {
    fn new(range: (f64, f64), from: f64, to: f64, log: bool) -> Axis {
        let (mut low, mut high) = range;
        if log {
            (low, high) = (low.log10(), high.log10());
        }
        if !(high - low).is_normal() || high < low {
            // One value, or none: a range around it as wide as the value (unit-wide around 0).
            let centre = if low.is_finite() { low } else { 0.0 };
            let half = if centre == 0.0 {
                0.5
            } else {
                centre.abs() / 2.0
            };
            (low, high) = (centre - half, centre + half);
        }
        Axis {
            low,
            high,
            from,
            to,
            log,
        }
    }

    fn place(self, value: f64) -> f64 {
        let v = if self.log { value.log10() } else { value };
        self.from + (v - self.low) / (self.high - self.low) * (self.to - self.from)
    }

    /// About five round values inside the range (powers of ten on a log axis).
    fn ticks(self) -> Vec<f64> {
        if self.log {
            let (first, last) = (self.low.ceil() as i32, self.high.floor() as i32);
            return (first..=last).map(|e| 10f64.powi(e)).collect();
        }
        let raw = (self.high - self.low) / 5.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
        let mut ticks = Vec::new();
        let mut tick = (self.low / step).ceil() * step;
        while tick <= self.high + step * 1e-9 && ticks.len() < 12 {
            ticks.push(if tick.abs() < step * 1e-9 { 0.0 } else { tick });
            tick += step;
        }
        ticks
    }
}

/// A tick label short enough for the axis.
fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 {
        "0".into()
    } else if !(1e-4..1e5).contains(&magnitude) {
        format!("{value:.0e}")
    } else if magnitude >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        // Four significant digits, trailing zeros dropped.
        let decimals = (3 - magnitude.log10().floor() as i32).clamp(0, 8) as usize;
        let text = format!("{value:.decimals$}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn data_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

fn open_svg(svg: &mut String, title: &str, class: &str) {
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart {class}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{0}"><title>{0}</title><rect width="100%" height="100%" fill="white"/><text x="{1}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{0}</text>"#,
        escape(title),
        WIDTH / 2.0
    );
}

/// The frame, ticks and axis labels.
fn axes(svg: &mut String, x: Axis, y: Axis, x_label: &str, y_label: &str) {
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
    let _ = write!(
        svg,
        r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
        x1 - x0,
        y0 - y1
    );
    for tick in x.ticks() {
        let px = x.place(tick);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{}" stroke="#888"/><text x="{px:.1}" y="{}" text-anchor="middle" font-size="10">{}</text>"##,
            y0 + 4.0,
            y0 + 15.0,
            number(tick)
        );
    }
    for tick in y.ticks() {
        let py = y.place(tick);
        let _ = write!(
            svg,
            r##"<line x1="{}" y1="{py:.1}" x2="{x0}" y2="{py:.1}" stroke="#888"/><line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" font-size="10">{}</text>"##,
            x0 - 4.0,
            x0 - 6.0,
            py + 3.5,
            number(tick)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11">{}</text><text transform="translate(13 {:.1}) rotate(-90)" text-anchor="middle" font-size="11">{}</text>"#,
        (x0 + x1) / 2.0,
        HEIGHT - 8.0,
        escape(x_label),
        (y0 + y1) / 2.0,
        escape(y_label)
    );
}

/// One line between the title and the plot, so that it never hides data.
fn legend(svg: &mut String, names: &[(String, &str)]) {
    let mut x = LEFT;
    for (name, colour) in names {
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{LEGEND_LINE}" font-size="10">{}</text>"#,
            LEGEND_LINE - 8.5,
            x + 13.0,
            escape(name)
        );
        // About the width of the label at this font size.
        x += 24.0 + 5.5 * name.chars().count() as f64;
    }
}

impl LineChart {
    pub fn to_svg(&self) -> String {
        let visible =
            |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!self.log_y || y > 0.0);
        let all = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter().copied().filter(visible))
        };
        let x_range = self
            .x_range
            .unwrap_or_else(|| data_range(all().map(|p| p.0)));
        let y_range = self
            .y_range
            .unwrap_or_else(|| data_range(all().map(|p| p.1)));
        let x = Axis::new(x_range, LEFT, WIDTH - RIGHT, false);
        let y = Axis::new(y_range, HEIGHT - BOTTOM, TOP, self.log_y);
        let mut svg = String::new();
        open_svg(&mut svg, &self.title, "line");
        axes(&mut svg, x, y, &self.x_label, &self.y_label);
        if let Some(note) = &self.note {
            let _ = write!(
                svg,
                r#"<text class="note" x="{}" y="{LEGEND_LINE}" text-anchor="end" font-size="11">{}</text>"#,
                WIDTH - RIGHT,
                escape(note)
            );
        }
        if self.diagonal {
            let _ = write!(
                svg,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#aaa" stroke-dasharray="4 3"/>"##,
                x.place(0.0),
                y.place(0.0),
                x.place(1.0),
                y.place(1.0)
            );
        }
        for (i, series) in self.series.iter().enumerate() {
            let points: Vec<String> = series
                .points
                .iter()
                .copied()
                .filter(visible)
                .map(|(px, py)| format!("{:.1},{:.1}", x.place(px), y.place(py)))
                .collect();
            if points.len() == 1 {
                let (cx, cy) = points[0].split_once(',').unwrap_or(("0", "0"));
                let _ = write!(
                    svg,
                    r#"<circle class="series" cx="{cx}" cy="{cy}" r="3" fill="{}"/>"#,
                    colour(i)
                );
            } else if !points.is_empty() {
                let _ = write!(
                    svg,
                    r#"<polyline class="series" fill="none" stroke="{}" stroke-width="1.6" points="{}"/>"#,
                    colour(i),
                    points.join(" ")
                );
            }
        }
        for marker in &self.markers {
            if !marker.x.is_finite() {
                continue;
            }
            let px = x.place(marker.x);
            // The label on the side with more room.
            let (label_x, anchor) = if px > WIDTH / 2.0 {
                (px - 3.0, "end")
            } else {
                (px + 3.0, "start")
            };
            let _ = write!(
                svg,
                r##"<line class="marker" x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#444" stroke-dasharray="2 2"/><text x="{label_x:.1}" y="{}" font-size="10" text-anchor="{anchor}">{}</text>"##,
                HEIGHT - BOTTOM,
                TOP + 10.0,
                escape(&marker.label)
            );
        }
        if self.series.len() > 1 {
            let names: Vec<(String, &str)> = self
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), colour(i)))
                .collect();
            legend(&mut svg, &names);
        }
        svg.push_str("</svg>");
        svg
    }
}

/// Scores of two groups binned over a common range, with the decision threshold drawn.
pub struct Histogram {
    pub title: String,
    pub x_label: String,
    /// Each group's name and values.
    pub groups: Vec<(String, Vec<f64>)>,
    pub threshold: Option<f64>,
    pub bins: usize,
}

impl Histogram {
    pub fn to_svg(&self) -> String {
        let finite = || {
            self.groups
                .iter()
                .flat_map(|(_, v)| v.iter().copied().filter(|v| v.is_finite()))
                .chain(self.threshold.filter(|t| t.is_finite()))
        };
        let (low, high) = data_range(finite());
        let x = Axis::new((low, high), LEFT, WIDTH - RIGHT, false);
        let bins = self.bins.max(1);
        let width = (x.high - x.low) / bins as f64;
        let counts: Vec<Vec<usize>> = self
            .groups
            .iter()
            .map(|(_, values)| {
                let mut counts = vec![0; bins];
                for v in values.iter().filter(|v| v.is_finite()) {
                    let bin = (((v - x.low) / width) as usize).min(bins - 1);
                    counts[bin] += 1;
                }
                counts
            })
            .collect();
        let most = counts.iter().flatten().copied().max().unwrap_or(0).max(1);
        // At least five, so that the ticks of a small count are whole images.
        let y = Axis::new((0.0, most.max(5) as f64), HEIGHT - BOTTOM, TOP, false);
        let mut svg = String::new();
        open_svg(&mut svg, &self.title, "histogram");
        axes(&mut svg, x, y, &self.x_label, "images");
        let groups = counts.len().max(1) as f64;
        for (g, group) in counts.iter().enumerate() {
            for (bin, &count) in group.iter().enumerate() {
                if count == 0 {
                    continue;
                }
                let left = x.place(x.low + bin as f64 * width);
                let bar = (x.place(x.low + width) - x.place(x.low)) / groups;
                let top = y.place(count as f64);
                let _ = write!(
                    svg,
                    r#"<rect class="bar" x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.85"/>"#,
                    left + g as f64 * bar,
                    (bar - 0.5).max(0.5),
                    (HEIGHT - BOTTOM - top).max(0.0),
                    colour(g)
                );
            }
        }
        let threshold = self.threshold.filter(|t| t.is_finite());
        if let Some(t) = threshold {
            let px = x.place(t);
            let _ = write!(
                svg,
                r##"<line class="threshold" x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="{THRESHOLD_COLOUR}" stroke-width="1.5"/>"##,
                HEIGHT - BOTTOM,
            );
        }
        let mut names: Vec<(String, &str)> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, (name, values))| (format!("{name} ({})", values.len()), colour(i)))
            .collect();
        if let Some(t) = threshold {
            names.push((format!("threshold {}", number(t)), THRESHOLD_COLOUR));
        }
        legend(&mut svg, &names);
        svg.push_str("</svg>");
        svg
    }
}

/// Sweep points as lines across one vertical axis per hyper-parameter and a last one for the
/// score; each line coloured from low (blue) to high (orange) score.
pub struct ParallelCoordinates {
    pub title: String,
    /// The axes' names, the score's last.
    pub axes: Vec<String>,
    /// Per point, one value per axis: a number, or text placed in its order of appearance.
    pub rows: Vec<Vec<String>>,
}

impl ParallelCoordinates {
    pub fn to_svg(&self) -> String {
        let mut svg = String::new();
        open_svg(&mut svg, &self.title, "parallel");
        let count = self.axes.len().max(2);
        let (x0, x1) = (LEFT, WIDTH - RIGHT - 20.0);
        let (y0, y1) = (HEIGHT - BOTTOM, TOP + 10.0);
        let axis_x = |i: usize| x0 + (x1 - x0) * i as f64 / (count - 1) as f64;
        // Per axis, each row's position in 0..1.
        let positions: Vec<Vec<f64>> = (0..self.axes.len())
            .map(|a| {
                let column: Vec<&str> = self
                    .rows
                    .iter()
                    .map(|r| r.get(a).map_or("", String::as_str))
                    .collect();
                let numbers: Option<Vec<f64>> = column
                    .iter()
                    .map(|v| v.parse::<f64>().ok().filter(|n| n.is_finite()))
                    .collect();
                match numbers {
                    Some(numbers) => {
                        let (lo, hi) = data_range(numbers.iter().copied());
                        numbers
                            .iter()
                            .map(|n| if hi > lo { (n - lo) / (hi - lo) } else { 0.5 })
                            .collect()
                    }
                    None => {
                        let mut distinct: Vec<&str> = Vec::new();
                        for v in &column {
                            if !distinct.contains(v) {
                                distinct.push(v);
                            }
                        }
                        column
                            .iter()
                            .map(|v| {
                                let i = distinct.iter().position(|d| d == v).unwrap_or(0);
                                if distinct.len() > 1 {
                                    i as f64 / (distinct.len() - 1) as f64
                                } else {
                                    0.5
                                }
                            })
                            .collect()
                    }
                }
            })
            .collect();
        let score = positions.last();
        for r in 0..self.rows.len() {
            let points: Vec<String> = positions
                .iter()
                .enumerate()
                .map(|(a, p)| format!("{:.1},{:.1}", axis_x(a), y0 + (y1 - y0) * p[r]))
                .collect();
            let s = score.map_or(0.5, |s| s[r]);
            let colour = format!(
                "rgb({},{},{})",
                (0.0 + 213.0 * s) as u8,
                (114.0 - 20.0 * s) as u8,
                (178.0 - 178.0 * s) as u8
            );
            let _ = write!(
                svg,
                r#"<polyline class="point" fill="none" stroke="{colour}" stroke-width="1.8" points="{}"/>"#,
                points.join(" ")
            );
        }
        for (a, name) in self.axes.iter().enumerate() {
            let px = axis_x(a);
            let column: Vec<&str> = self
                .rows
                .iter()
                .filter_map(|r| r.get(a).map(String::as_str))
                .collect();
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{y1}" stroke="#555"/><text x="{px:.1}" y="{}" text-anchor="middle" font-size="10">{}</text>"##,
                y0 + 15.0,
                escape(name)
            );
            for (r, value) in column.iter().enumerate() {
                let py = y0 + (y1 - y0) * positions[a][r];
                let _ = write!(
                    svg,
                    r##"<text x="{:.1}" y="{:.1}" font-size="9" fill="#333">{}</text>"##,
                    px + 3.0,
                    py - 2.0,
                    escape(value)
                );
            }
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

    #[test]
    fn a_roc_chart_has_its_curve_the_diagonal_and_escaped_labels() {
        let chart = LineChart {
            title: "image ROC <a&b>".into(),
            x_label: "false-positive rate".into(),
            y_label: "true-positive rate".into(),
            series: vec![Series {
                name: "test".into(),
                points: vec![(0.0, 0.0), (0.1, 0.8), (1.0, 1.0)],
            }],
            x_range: Some((0.0, 1.0)),
            y_range: Some((0.0, 1.0)),
            diagonal: true,
            markers: Vec::new(),
            log_y: false,
            note: Some("AUROC 0.85".into()),
        };
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(">AUROC 0.85</text>"));
        assert!(svg.contains("image ROC &lt;a&amp;b&gt;") && !svg.contains("<a&b>"));
        assert_eq!(count(&svg, "class=\"series\""), 1);
        assert!(
            svg.contains("stroke-dasharray=\"4 3\""),
            "the chance diagonal"
        );
        // (0,0) bottom left, (1,1) top right of the plot area.
        assert!(svg.contains(&format!("{LEFT:.1},{:.1}", HEIGHT - BOTTOM)));
        assert!(svg.contains(&format!("{:.1},{TOP:.1}", WIDTH - RIGHT)));
    }

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        let axis = Axis::new((0.0, 1.0), 0.0, 100.0, false);
        let labels: Vec<String> = axis.ticks().into_iter().map(number).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        let axis = Axis::new((3.0, 1234.0), 0.0, 100.0, false);
        assert_eq!(axis.ticks(), [250.0, 500.0, 750.0, 1000.0]);
        let log = Axis::new((0.02, 30.0), 0.0, 100.0, true);
        assert_eq!(log.ticks(), [0.1, 1.0, 10.0]);
        let flat = Axis::new((2.0, 2.0), 0.0, 100.0, false);
        assert_eq!(flat.place(2.0), 50.0, "one value sits in the middle");
        let small = Axis::new((0.001, 0.001), 0.0, 100.0, false);
        assert!(
            small.ticks().iter().all(|t| (0.0005..=0.0015).contains(t)),
            "{:?}",
            small.ticks()
        );
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1500.0), "1500");
        assert_eq!(number(0.00001), "1e-5");
        assert_eq!(number(0.0012), "0.0012");
        assert_eq!(number(1.5), "1.5");
    }

    #[test]
    fn non_finite_and_log_invisible_points_are_left_out() {
        let chart = LineChart {
            title: "loss".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: vec![
                Series {
                    name: "a".into(),
                    points: vec![(1.0, f64::NAN), (2.0, 0.0), (3.0, 0.5)],
                },
                Series {
                    name: "b".into(),
                    points: Vec::new(),
                },
            ],
            x_range: None,
            y_range: None,
            diagonal: false,
            markers: vec![Marker {
                x: 3.0,
                label: "chosen".into(),
            }],
            log_y: true,
            note: None,
        };
        let svg = chart.to_svg();
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(
            count(&svg, "<circle class=\"series\""),
            1,
            "one visible point is a dot"
        );
        assert_eq!(count(&svg, "class=\"marker\""), 1);
        assert!(
            svg.contains(">a<") && svg.contains(">b<"),
            "a legend for two series"
        );
    }

    #[test]
    fn a_histogram_bins_each_group_and_marks_the_threshold() {
        let histogram = Histogram {
            title: "scores".into(),
            x_label: "score".into(),
            groups: vec![
                ("good".into(), vec![0.1, 0.1, 0.2]),
                ("defective".into(), vec![0.9, f64::INFINITY]),
            ],
            threshold: Some(0.5),
            bins: 4,
        };
        let svg = histogram.to_svg();
        assert_eq!(
            count(&svg, "class=\"bar\""),
            2,
            "two filled bins: the goods' and the defect's"
        );
        assert_eq!(count(&svg, "class=\"threshold\""), 1);
        assert!(svg.contains("good (3)") && svg.contains("defective (2)"));
        assert!(
            svg.contains(">threshold 0.5<"),
            "the threshold is in the legend"
        );
        let empty = Histogram {
            title: "none".into(),
            x_label: "score".into(),
            groups: Vec::new(),
            threshold: None,
            bins: 10,
        };
        assert!(!empty.to_svg().contains("NaN"));
    }

    #[test]
    fn parallel_coordinates_draw_one_line_per_point() {
        let chart = ParallelCoordinates {
            title: "sweep".into(),
            axes: vec![
                "segnet.lr".into(),
                "optimiser".into(),
                "validation score".into(),
            ],
            rows: vec![
                vec!["0.1".into(), "sgd".into(), "0.7".into()],
                vec!["0.01".into(), "adam".into(), "0.9".into()],
            ],
        };
        let svg = chart.to_svg();
        assert_eq!(count(&svg, "class=\"point\""), 2);
        assert!(svg.contains(">sgd<") && svg.contains(">adam<") && svg.contains(">segnet.lr<"));
        assert!(
            svg.contains("rgb(213,94,0)"),
            "the best point in the high colour"
        );
    }
}
