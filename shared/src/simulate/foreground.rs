//! Foreground masks: where on a normal image an anomaly may land (the object, not the empty
//! background), from a fixed grey level or Otsu's threshold.

use image::RgbImage;

use super::config::{ForegroundConfig, Polarity};
use crate::raster::Mask;

/// The foreground of `image` under `config`.
pub fn foreground_mask(image: &RgbImage, config: &ForegroundConfig) -> Mask {
    let (w, h) = image.dimensions();
    match config {
        ForegroundConfig::None => Mask::full(w, h),
        ForegroundConfig::Threshold { level, invert } => {
            let grey = grey_levels(image);
            Mask::from_bytes(
                w,
                h,
                grey.iter()
                    .map(|&g| u8::from((g > *level) != *invert))
                    .collect(),
            )
        }
        ForegroundConfig::Otsu { polarity } => {
            let grey = grey_levels(image);
            let t = otsu_threshold(&grey);
            let bright_is_object = match polarity {
                Polarity::Bright => true,
                Polarity::Dark => false,
                Polarity::Auto => border_bright_fraction(&grey, w as usize, h as usize, t) < 0.5,
            };
            Mask::from_bytes(
                w,
                h,
                grey.iter()
                    .map(|&g| u8::from((g > t) == bright_is_object))
                    .collect(),
            )
        }
    }
}

/// ITU-R BT.601 luma of every pixel.
fn grey_levels(image: &RgbImage) -> Vec<u8> {
    image
        .pixels()
        .map(|p| {
            ((299 * p.0[0] as u32 + 587 * p.0[1] as u32 + 114 * p.0[2] as u32 + 500) / 1000) as u8
        })
        .collect()
}

/// The grey level maximising the between-class variance (values `> t` form the bright class).
pub fn otsu_threshold(grey: &[u8]) -> u8 {
    let mut histogram = [0u64; 256];
    for &g in grey {
        histogram[g as usize] += 1;
    }
    let total = grey.len() as f64;
    let sum_all: f64 = histogram
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum();
    let (mut weight_dark, mut sum_dark) = (0.0, 0.0);
    let (mut best, mut best_variance) = (0u8, -1.0);
    for (t, &count) in histogram.iter().enumerate() {
        weight_dark += count as f64;
        sum_dark += t as f64 * count as f64;
        let weight_bright = total - weight_dark;
        if weight_dark == 0.0 || weight_bright == 0.0 {
            continue;
        }
        let mean_dark = sum_dark / weight_dark;
        let mean_bright = (sum_all - sum_dark) / weight_bright;
        let variance = weight_dark * weight_bright * (mean_dark - mean_bright).powi(2);
        if variance > best_variance {
            best_variance = variance;
            best = t as u8;
        }
    }
    best
}

fn border_bright_fraction(grey: &[u8], w: usize, h: usize, t: u8) -> f64 {
    let mut bright = 0usize;
    let mut total = 0usize;
    for y in 0..h {
        for x in 0..w {
            if x == 0 || y == 0 || x == w - 1 || y == h - 1 {
                total += 1;
                bright += usize::from(grey[y * w + x] > t);
            }
        }
    }
    bright as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn disc_image(object: u8, background: u8) -> RgbImage {
        RgbImage::from_fn(40, 40, |x, y| {
            let inside = (x as i32 - 20).pow(2) + (y as i32 - 20).pow(2) < 100;
            let v = if inside { object } else { background };
            Rgb([v, v, v])
        })
    }

    #[test]
    fn otsu_separates_two_levels() {
        let grey: Vec<u8> = (0..100).map(|i| if i < 60 { 30 } else { 200 }).collect();
        let t = otsu_threshold(&grey);
        assert!((30..200).contains(&t), "threshold {t}");
    }

    #[test]
    fn automatic_polarity_finds_the_object_on_either_background() {
        let auto = ForegroundConfig::Otsu {
            polarity: Polarity::Auto,
        };
        for (object, background) in [(220, 20), (20, 220)] {
            let mask = foreground_mask(&disc_image(object, background), &auto);
            assert!(
                mask.get(20, 20) && !mask.get(1, 1),
                "object {object} on {background}"
            );
            assert!(mask.area() < 400);
        }
    }

    #[test]
    fn threshold_with_inversion() {
        let image = disc_image(200, 10);
        let plain = foreground_mask(
            &image,
            &ForegroundConfig::Threshold {
                level: 100,
                invert: false,
            },
        );
        let inverted = foreground_mask(
            &image,
            &ForegroundConfig::Threshold {
                level: 100,
                invert: true,
            },
        );
        assert!(plain.get(20, 20) && !inverted.get(20, 20));
        assert_eq!(plain.area() + inverted.area(), 1600);
    }
}
