//! Foreground masks: where on a normal image an anomaly may land (the object, not the empty
//! background), from a fixed grey level or Otsu's threshold, and the `auto` rule that decides
//! per category whether its images show an object on a background or a texture.

use image::RgbImage;

use super::config::{ForegroundConfig, Polarity};
use crate::raster::Mask;

/// The foreground of `image` under `config` (`auto` decided on this image alone).
pub fn foreground_mask(image: &RgbImage, config: &ForegroundConfig) -> Mask {
    let (w, h) = image.dimensions();
    match config {
        ForegroundConfig::Auto => {
            let decided = if shows_an_object(image) {
                ForegroundConfig::Otsu {
                    polarity: Polarity::Auto,
                }
            } else {
                ForegroundConfig::None
            };
            foreground_mask(image, &decided)
        }
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

/// Training images looked at to decide `auto` (spread evenly over the category).
const AUTO_SAMPLE: usize = 32;

/// `config` with `auto` decided for a category from its training images: `otsu` (automatic
/// polarity) when most of them show an object on a background, `none` otherwise. Other rules
/// are kept as they are.
pub fn resolve_foreground(config: &ForegroundConfig, normals: &[RgbImage]) -> ForegroundConfig {
    if *config != ForegroundConfig::Auto {
        return config.clone();
    }
    let step = normals.len().div_ceil(AUTO_SAMPLE).max(1);
    let sample: Vec<&RgbImage> = normals.iter().step_by(step).collect();
    let objects = sample.iter().filter(|image| shows_an_object(image)).count();
    if !sample.is_empty() && 2 * objects > sample.len() {
        ForegroundConfig::Otsu {
            polarity: Polarity::Auto,
        }
    } else {
        ForegroundConfig::None
    }
}

/// Whether Otsu's threshold splits `image` into a background that fills the border and an
/// object the border hardly shows. On a texture the border is a sample of the image like any
/// other, so each class covers about as much of the border as of the whole image.
fn shows_an_object(image: &RgbImage) -> bool {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if w < 3 || h < 3 {
        return false;
    }
    let grey = grey_levels(image);
    let t = otsu_threshold(&grey);
    let border_bright = border_bright_fraction(&grey, w, h, t);
    let bright = grey.iter().filter(|&&g| g > t).count() as f64 / grey.len() as f64;
    // The object is the class the border shows less of.
    let (object_share, object_on_border) = if border_bright < 0.5 {
        (bright, border_bright)
    } else {
        (1.0 - bright, 1.0 - border_bright)
    };
    object_share >= MIN_OBJECT_SHARE && object_on_border <= BORDER_SHARE_OF_OBJECT * object_share
}

/// An object covers at least this much of the image.
const MIN_OBJECT_SHARE: f64 = 0.02;
/// An object's class covers at most this fraction of its image-wide share on the border.
const BORDER_SHARE_OF_OBJECT: f64 = 0.25;

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

    /// A texture of `dark` grey dots in `share` of the pixels, at random, on light grey.
    fn dotted(share: f64, seed: u64) -> RgbImage {
        let mut state = seed;
        RgbImage::from_fn(48, 48, |_, _| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = if ((state >> 33) as f64 / (1u64 << 31) as f64) < share {
                40
            } else {
                190
            };
            Rgb([v, v, v])
        })
    }

    #[test]
    fn auto_finds_objects_and_leaves_textures_whole() {
        let object = ForegroundConfig::Otsu {
            polarity: Polarity::Auto,
        };
        let discs = vec![
            disc_image(220, 20),
            disc_image(20, 220),
            disc_image(200, 90),
        ];
        assert_eq!(resolve_foreground(&ForegroundConfig::Auto, &discs), object);
        for share in [0.1, 0.15, 0.5, 0.85] {
            let textures: Vec<RgbImage> = (0..5).map(|seed| dotted(share, seed)).collect();
            assert_eq!(
                resolve_foreground(&ForegroundConfig::Auto, &textures),
                ForegroundConfig::None,
                "dots on {share} of a texture are not an object"
            );
        }
        let stripes = RgbImage::from_fn(48, 48, |x, y| {
            let v = if (x / 4 + y / 6) % 2 == 0 { 60 } else { 180 };
            Rgb([v, v, v])
        });
        assert_eq!(
            resolve_foreground(&ForegroundConfig::Auto, &[stripes]),
            ForegroundConfig::None
        );
        let mixed = vec![disc_image(220, 20), dotted(0.3, 1), dotted(0.3, 2)];
        assert_eq!(
            resolve_foreground(&ForegroundConfig::Auto, &mixed),
            ForegroundConfig::None,
            "the majority decides"
        );
        let chosen = ForegroundConfig::Threshold {
            level: 9,
            invert: true,
        };
        assert_eq!(
            resolve_foreground(&chosen, &discs),
            chosen,
            "a rule given is kept"
        );
        let on_one = foreground_mask(&disc_image(220, 20), &ForegroundConfig::Auto);
        assert!(on_one.get(20, 20) && !on_one.get(1, 1));
        assert_eq!(
            foreground_mask(&dotted(0.5, 3), &ForegroundConfig::Auto).area(),
            48 * 48
        );
    }

    #[test]
    fn a_foreground_method_needs_no_other_field() {
        for (text, expected) in [
            (
                "method = \"otsu\"",
                ForegroundConfig::Otsu {
                    polarity: Polarity::Auto,
                },
            ),
            (
                "method = \"threshold\"",
                ForegroundConfig::Threshold {
                    level: 128,
                    invert: false,
                },
            ),
            ("method = \"auto\"", ForegroundConfig::Auto),
            ("method = \"none\"", ForegroundConfig::None),
        ] {
            assert_eq!(
                toml::from_str::<ForegroundConfig>(text).unwrap(),
                expected,
                "{text}"
            );
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
