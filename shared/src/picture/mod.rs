//! Pictures of a prediction: the image, its anomaly map on a colour scale centred on the model's
//! decision threshold (with a colour bar), the outline of the region at or above the threshold,
//! the true defect's outline where it is known, and the score and decision written above them;
//! or the map alone, on the same scale.

pub mod font;
pub mod simulated;

use image::{Rgb, RgbImage, imageops};

use crate::metrics::ImageScore;
use font::{LINE_HEIGHT, draw_text, text_width};

/// One scored image, as `slsg predict` has it.
pub struct Prediction<'a> {
    pub image: &'a RgbImage,
    /// The anomaly map at the image's size (one value per pixel, row by row), probabilities in
    /// `[0, 1]`.
    pub map: &'a [f32],
    /// The image score, and how it was taken from the map.
    pub score: f64,
    pub image_score: ImageScore,
    /// The model's decision threshold on that score (a map value, like the score), if it has one.
    pub threshold: Option<f64>,
    /// The true defect pixels (one per pixel, row by row), where they are known: a test image.
    pub truth: Option<&'a [bool]>,
}

const BACKGROUND: Rgb<u8> = Rgb([24, 24, 24]);
const TEXT: Rgb<u8> = Rgb([235, 235, 235]);
const ANOMALOUS: Rgb<u8> = Rgb([255, 80, 64]);
const NORMAL: Rgb<u8> = Rgb([96, 220, 96]);
const OUTLINE: Rgb<u8> = Rgb([255, 32, 32]);
/// The true defect's outline: a colour the heat scale's red and the image rarely have.
pub const TRUTH_OUTLINE: Rgb<u8> = Rgb([0, 255, 255]);

/// Where `value` sits on the colour scale, in `[0, 1]`: with a threshold, values below it fill
/// the lower half and values above it the upper half, so the threshold is always the middle
/// colour whatever its value; without one, the value itself.
pub fn scale_position(value: f32, threshold: Option<f64>) -> f32 {
    let value = value.clamp(0.0, 1.0);
    match threshold.map(|t| t.clamp(1e-6, 1.0 - 1e-6) as f32) {
        Some(t) if value < t => 0.5 * value / t,
        Some(t) => 0.5 + 0.5 * (value - t) / (1.0 - t),
        None => value,
    }
}

/// The colour at `position` in `[0, 1]`: dark blue, blue, cyan, pale green (the middle), yellow,
/// red, dark red.
pub fn colour(position: f32) -> Rgb<u8> {
    let p = position.clamp(0.0, 1.0);
    let channel = |centre: f32| ((1.5 - (4.0 * p - centre).abs()).clamp(0.0, 1.0) * 255.0) as u8;
    Rgb([channel(3.0), channel(2.0), channel(1.0)])
}

/// The map alone at its size (`map` holds `width × height` values, row by row), each value in its
/// colour on the scale of [`scale_position`].
pub fn raw_map(map: &[f32], width: u32, height: u32, threshold: Option<f64>) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        colour(scale_position(map[(y * width + x) as usize], threshold))
    })
}

/// The prediction side by side: the image, the map laid over it, the outline of the region at or
/// above the threshold on it and, with a known truth, the true defect's outline on a fourth tile;
/// above them the score and the decision, below them the colour bar. Text and lines grow with
/// the image, so they stay legible on large images.
pub fn panel(prediction: &Prediction) -> RgbImage {
    let image = prediction.image;
    let (width, height) = image.dimensions();
    let scale = (height / 128).max(1);
    let pad = 3 * scale;
    let line = LINE_HEIGHT * scale;
    let (headline, verdict) = headline(prediction);
    let text_wide = text_width(&headline, scale).max(text_width(&verdict.0, scale));
    let tile_count = if prediction.truth.is_some() { 4 } else { 3 };
    let tiles = tile_count * width + (tile_count - 1) * pad;
    let panel_width = tiles.max(text_wide) + 2 * pad;
    let bar_height = 6 * scale;
    let top = 2 * line + 2 * pad;
    let bar_top = top + height + 2 * pad;
    let panel_height = bar_top + bar_height + 2 * pad + line;
    let mut out = RgbImage::from_pixel(panel_width, panel_height, BACKGROUND);

    draw_text(&mut out, &headline, pad, pad, scale, TEXT);
    draw_text(&mut out, &verdict.0, pad, pad + line, scale, verdict.1);

    let left = pad + (panel_width - 2 * pad - tiles) / 2;
    let threshold = prediction.threshold;
    let heat = RgbImage::from_fn(width, height, |x, y| {
        let base = image.get_pixel(x, y).0;
        let value = prediction.map[(y * width + x) as usize];
        let heat = colour(scale_position(value, threshold)).0;
        Rgb(std::array::from_fn(|c| {
            ((u16::from(base[c]) + u16::from(heat[c])) / 2) as u8
        }))
    });
    let mut outlined = image.clone();
    if let Some(t) = threshold {
        let t = t as f32;
        draw_outline(&mut outlined, |i| prediction.map[i] >= t, OUTLINE, scale);
    }
    let truth = prediction.truth.map(|truth| {
        let mut outlined = image.clone();
        draw_outline(&mut outlined, |i| truth[i], TRUTH_OUTLINE, scale);
        outlined
    });
    let mut shown = vec![image, &heat, &outlined];
    shown.extend(truth.as_ref());
    for (i, tile) in shown.into_iter().enumerate() {
        let x = left + i as u32 * (width + pad);
        imageops::replace(&mut out, tile, i64::from(x), i64::from(top));
    }
    draw_colour_bar(
        &mut out,
        pad,
        bar_top,
        panel_width - 2 * pad,
        bar_height,
        threshold,
        scale,
    );
    out
}

/// The first line (the score and how it was taken) and the decision with its colour.
fn headline(prediction: &Prediction) -> (String, (String, Rgb<u8>)) {
    let headline = format!(
        "score {:.3} ({})",
        prediction.score,
        prediction.image_score.name()
    );
    let verdict = match prediction.threshold {
        Some(t) if prediction.score >= t => (format!("anomalous: >= {t:.3}"), ANOMALOUS),
        Some(t) => (format!("normal: < {t:.3}"), NORMAL),
        None => ("no threshold in the model".to_string(), TEXT),
    };
    (
        headline.to_uppercase(),
        (verdict.0.to_uppercase(), verdict.1),
    )
}

/// Marks in `colour` the pixels of a region (`member` of a row-major pixel index) that touch a
/// pixel outside it (or the image's edge), thickened to `thickness`.
fn draw_outline(
    image: &mut RgbImage,
    member: impl Fn(usize) -> bool,
    colour: Rgb<u8>,
    thickness: u32,
) {
    let (width, height) = image.dimensions();
    let inside = |x: i64, y: i64| {
        x >= 0
            && y >= 0
            && x < i64::from(width)
            && y < i64::from(height)
            && member((y * i64::from(width) + x) as usize)
    };
    let reach = i64::from(thickness);
    for y in 0..i64::from(height) {
        for x in 0..i64::from(width) {
            if !inside(x, y) {
                continue;
            }
            let edge = (-reach..=reach)
                .flat_map(|dy| (-reach..=reach).map(move |dx| (dx, dy)))
                .any(|(dx, dy)| !inside(x + dx, y + dy));
            if edge {
                image.put_pixel(x as u32, y as u32, colour);
            }
        }
    }
}

/// The colour scale from 0 to 1, with the threshold marked in its middle and labelled.
fn draw_colour_bar(
    image: &mut RgbImage,
    left: u32,
    top: u32,
    width: u32,
    height: u32,
    threshold: Option<f64>,
    scale: u32,
) {
    for x in 0..width {
        let position = x as f32 / (width - 1).max(1) as f32;
        for y in 0..height {
            image.put_pixel(left + x, top + y, colour(position));
        }
    }
    let label_top = top + height + 2 * scale;
    draw_text(image, "0", left, label_top, scale, TEXT);
    let one = left + width - text_width("1", scale);
    draw_text(image, "1", one, label_top, scale, TEXT);
    if let Some(t) = threshold {
        let middle = left + width / 2;
        for y in top.saturating_sub(scale)..top + height + scale {
            for x in middle.saturating_sub(scale / 2)..=middle + scale / 2 {
                image.put_pixel(x, y, TEXT);
            }
        }
        let label = format!("{t:.3}");
        let label_left = middle.saturating_sub(text_width(&label, scale) / 2);
        draw_text(image, &label, label_left, label_top, scale, TEXT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grey image whose map is high in one square.
    fn square(size: u32, from: u32, to: u32) -> (RgbImage, Vec<f32>) {
        let image = RgbImage::from_pixel(size, size, Rgb([128, 128, 128]));
        let map = (0..size * size)
            .map(|i| {
                let (x, y) = (i % size, i / size);
                if (from..to).contains(&x) && (from..to).contains(&y) {
                    0.9
                } else {
                    0.1
                }
            })
            .collect();
        (image, map)
    }

    #[test]
    fn the_threshold_is_the_middle_of_the_scale() {
        for t in [0.05, 0.3, 0.5, 0.93] {
            assert!(
                (scale_position(t as f32, Some(t)) - 0.5).abs() < 1e-5,
                "{t}"
            );
            assert_eq!(scale_position(0.0, Some(t)), 0.0);
            assert_eq!(scale_position(1.0, Some(t)), 1.0);
        }
        let positions: Vec<f32> = (0..=20)
            .map(|i| scale_position(i as f32 / 20.0, Some(0.2)))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert_eq!(scale_position(0.25, None), 0.25);
        assert_eq!(scale_position(7.0, None), 1.0, "clamped");
        assert_eq!(colour(0.0), Rgb([0, 0, 127]));
        assert_eq!(colour(0.5), Rgb([127, 255, 127]));
        assert_eq!(colour(1.0), Rgb([127, 0, 0]));
    }

    #[test]
    fn the_outline_follows_the_region_above_the_threshold() {
        let (image, map) = square(32, 10, 20);
        let mut outlined = image.clone();
        draw_outline(&mut outlined, |i| map[i] >= 0.5, OUTLINE, 1);
        let red: Vec<(u32, u32)> = outlined
            .enumerate_pixels()
            .filter(|(_, _, p)| **p == OUTLINE)
            .map(|(x, y, _)| (x, y))
            .collect();
        assert_eq!(red.len(), 4 * 10 - 4, "the square's border, one pixel wide");
        assert!(
            red.iter()
                .all(|&(x, y)| [10, 19].contains(&x) || [10, 19].contains(&y))
        );
    }

    #[test]
    fn a_panel_shows_the_three_tiles_the_decision_and_the_bar() {
        let (image, map) = square(64, 20, 40);
        let prediction = |score, threshold| Prediction {
            image: &image,
            map: &map,
            score,
            image_score: ImageScore::Top100,
            threshold,
            truth: None,
        };
        let anomalous = panel(&prediction(0.8, Some(0.5)));
        assert!(anomalous.width() >= 3 * 64 && anomalous.height() > 64 + 20);
        let count =
            |image: &RgbImage, colour: Rgb<u8>| image.pixels().filter(|p| **p == colour).count();
        assert!(
            count(&anomalous, ANOMALOUS) > 0,
            "the decision is written in red"
        );
        assert!(count(&anomalous, OUTLINE) > 0, "the region is outlined");
        let normal = panel(&prediction(0.2, Some(0.5)));
        assert!(count(&normal, NORMAL) > 0 && count(&normal, ANOMALOUS) == 0);
        let without = panel(&prediction(0.2, None));
        assert_eq!(count(&without, OUTLINE), 0, "no threshold, no region");
        assert!(
            headline(&prediction(0.2, None))
                .1
                .0
                .contains("NO THRESHOLD"),
            "and it says so"
        );
        let large = RgbImage::from_pixel(800, 800, Rgb([0, 0, 0]));
        let flat = vec![0.0; 800 * 800];
        let big = panel(&Prediction {
            image: &large,
            map: &flat,
            score: 0.0,
            image_score: ImageScore::Max,
            threshold: Some(0.5),
            truth: None,
        });
        assert!(
            big.height() > 800 + 4 * 2 * LINE_HEIGHT,
            "text grows with the image"
        );
    }

    #[test]
    fn a_known_truth_adds_a_tile_with_its_outline() {
        let (image, map) = square(64, 20, 40);
        let truth: Vec<bool> = (0..64 * 64).map(|i| (i % 64) < 8 && i / 64 < 8).collect();
        let prediction = |truth| Prediction {
            image: &image,
            map: &map,
            score: 0.8,
            image_score: ImageScore::Top100,
            threshold: Some(0.5),
            truth,
        };
        let without = panel(&prediction(None));
        let with = panel(&prediction(Some(&truth)));
        assert_eq!(with.height(), without.height());
        assert!(with.width() >= 4 * 64 && with.width() > without.width());
        let cyan = |image: &RgbImage| image.pixels().filter(|p| **p == TRUTH_OUTLINE).count();
        assert_eq!(cyan(&without), 0);
        assert!(cyan(&with) >= 8, "the true region's border is drawn");
    }

    #[test]
    fn the_raw_map_is_the_scale_alone() {
        let (_, map) = square(16, 4, 8);
        let raw = raw_map(&map, 16, 16, None);
        assert_eq!(raw.dimensions(), (16, 16));
        assert_eq!(*raw.get_pixel(5, 5), colour(0.9));
        assert_eq!(*raw.get_pixel(0, 0), colour(0.1));
    }
}
