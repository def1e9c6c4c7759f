//! The ten texture augmentations of the structural branch (gamma contrast, brightness
//! multiply/add, sharpness, hue/saturation shift, solarize, posterize, invert, autocontrast,
//! equalize, rotation), applied to the masked region only.

use image::RgbImage;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use crate::raster::BoundingBox;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Augmentation {
    Gamma,
    Brightness,
    Sharpness,
    HueSaturation,
    Solarize,
    Posterize,
    Invert,
    Autocontrast,
    Equalize,
    Rotate,
}

impl Augmentation {
    pub const ALL: [Augmentation; 10] = [
        Augmentation::Gamma,
        Augmentation::Brightness,
        Augmentation::Sharpness,
        Augmentation::HueSaturation,
        Augmentation::Solarize,
        Augmentation::Posterize,
        Augmentation::Invert,
        Augmentation::Autocontrast,
        Augmentation::Equalize,
        Augmentation::Rotate,
    ];

    /// `count` distinct augmentations in random order.
    pub fn choose(count: usize, rng: &mut impl Rng) -> Vec<Augmentation> {
        let mut all = Self::ALL.to_vec();
        all.shuffle(rng);
        all.truncate(count);
        all
    }
}

/// Applies one pixel-value augmentation to the listed pixels (row-major indices into `region`)
/// in place; statistics are taken over those pixels. Rotation changes where pixels come from,
/// so it is done while cutting the region out ([`rotated_crop`]) and is a no-op here.
pub fn apply(
    augmentation: Augmentation,
    region: &mut RgbImage,
    pixels: &[u32],
    rng: &mut impl Rng,
) {
    match augmentation {
        Augmentation::Gamma => {
            let luts: [[u8; 256]; 3] = std::array::from_fn(|_| {
                let gamma: f32 = rng.random_range(0.5..2.0);
                std::array::from_fn(|v| (255.0 * (v as f32 / 255.0).powf(gamma) + 0.5) as u8)
            });
            map_channels(region, pixels, &luts);
        }
        Augmentation::Brightness => {
            let (mul, add): (f32, f32) =
                (rng.random_range(0.8..1.2), rng.random_range(-30.0..30.0));
            let lut = std::array::from_fn(|v| (v as f32 * mul + add + 0.5).clamp(0.0, 255.0) as u8);
            map_channels(region, pixels, &[lut; 3]);
        }
        Augmentation::Sharpness => sharpen(region, pixels, rng.random_range(0.0..2.0)),
        Augmentation::HueSaturation => {
            let hue_shift: f32 = rng.random_range(-50.0..50.0) / 255.0;
            let saturation_shift: f32 = rng.random_range(-50.0..50.0) / 255.0;
            shift_hue_saturation(region, pixels, hue_shift, saturation_shift);
        }
        Augmentation::Solarize => {
            if rng.random_bool(0.5) {
                let threshold: u8 = rng.random_range(32..=128);
                let lut = std::array::from_fn(|v| {
                    if v as u8 >= threshold {
                        255 - v as u8
                    } else {
                        v as u8
                    }
                });
                map_channels(region, pixels, &[lut; 3]);
            }
        }
        Augmentation::Posterize => {
            let bits: u32 = rng.random_range(1..=7);
            let keep = 0xFFu8 << (8 - bits);
            let lut = std::array::from_fn(|v| v as u8 & keep);
            map_channels(region, pixels, &[lut; 3]);
        }
        Augmentation::Invert => {
            let lut = std::array::from_fn(|v| 255 - v as u8);
            map_channels(region, pixels, &[lut; 3]);
        }
        Augmentation::Autocontrast => {
            let luts = std::array::from_fn(|c| autocontrast_lut(region, pixels, c));
            map_channels(region, pixels, &luts);
        }
        Augmentation::Equalize => {
            let luts = std::array::from_fn(|c| equalize_lut(region, pixels, c));
            map_channels(region, pixels, &luts);
        }
        Augmentation::Rotate => {}
    }
}

/// Cuts the listed pixels (row-major indices into a `bbox`-sized region) out of `source` after
/// rotating the source by `angle` radians around `(cx, cy)`, with bilinear sampling and
/// mirrored borders, so no listed pixel is left empty. Other pixels of the region stay black.
pub fn rotated_crop(
    source: &RgbImage,
    bbox: BoundingBox,
    pixels: &[u32],
    cx: f32,
    cy: f32,
    angle: f32,
) -> RgbImage {
    let mut out = RgbImage::new(bbox.width(), bbox.height());
    let raw = source.as_raw();
    let stride = source.width() as usize * 3;
    let (bw, dst) = (bbox.width(), &mut *out);
    if angle == 0.0 {
        for &i in pixels {
            let (x, y) = ((bbox.x0 + i % bw) as usize, (bbox.y0 + i / bw) as usize);
            let at = y * stride + x * 3;
            dst[i as usize * 3..i as usize * 3 + 3].copy_from_slice(&raw[at..at + 3]);
        }
        return out;
    }
    let (sw, sh) = (source.width() as f32, source.height() as f32);
    let (sin, cos) = angle.sin_cos();
    let mirror = |v: f32, len: f32| {
        let period = 2.0 * len;
        let m = v.rem_euclid(period);
        if m >= len { period - m - 1.0 } else { m }
    };
    for &i in pixels {
        let x = (bbox.x0 + i % bw) as f32 + 0.5 - cx;
        let y = (bbox.y0 + i / bw) as f32 + 0.5 - cy;
        let sx = mirror(cx + x * cos + y * sin - 0.5, sw).clamp(0.0, sw - 1.0);
        let sy = mirror(cy - x * sin + y * cos - 0.5, sh).clamp(0.0, sh - 1.0);
        let (x0, y0) = (sx as usize, sy as usize);
        let (x1, y1) = (
            (x0 + 1).min(source.width() as usize - 1),
            (y0 + 1).min(source.height() as usize - 1),
        );
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let (a, b, c, d) = (
            y0 * stride + x0 * 3,
            y0 * stride + x1 * 3,
            y1 * stride + x0 * 3,
            y1 * stride + x1 * 3,
        );
        for ch in 0..3 {
            let top = raw[a + ch] as f32 + (raw[b + ch] as f32 - raw[a + ch] as f32) * fx;
            let bottom = raw[c + ch] as f32 + (raw[d + ch] as f32 - raw[c + ch] as f32) * fx;
            dst[i as usize * 3 + ch] = (top + (bottom - top) * fy + 0.5) as u8;
        }
    }
    out
}

fn map_channels(region: &mut RgbImage, pixels: &[u32], luts: &[[u8; 256]; 3]) {
    let raw: &mut [u8] = region;
    for &i in pixels {
        let p = &mut raw[i as usize * 3..i as usize * 3 + 3];
        for c in 0..3 {
            p[c] = luts[c][p[c] as usize];
        }
    }
}

/// PIL's `ImageEnhance.Sharpness`: blend with the 3×3 smoothed image; pixels on the region's
/// border are unchanged, as in PIL.
fn sharpen(region: &mut RgbImage, pixels: &[u32], factor: f32) {
    let (w, h) = (region.width() as usize, region.height() as usize);
    let original = region.as_raw().clone();
    let raw: &mut [u8] = region;
    for &i in pixels {
        let (x, y) = (i as usize % w, i as usize / w);
        if x == 0 || y == 0 || x + 1 >= w || y + 1 >= h {
            continue;
        }
        for c in 0..3 {
            let at = |xx: usize, yy: usize| original[(yy * w + xx) * 3 + c] as f32;
            let mut sum = 0.0;
            for yy in y - 1..=y + 1 {
                for xx in x - 1..=x + 1 {
                    sum += at(xx, yy);
                }
            }
            let centre = at(x, y);
            let smooth = (sum + 4.0 * centre) / 13.0;
            raw[(y * w + x) * 3 + c] =
                (smooth + factor * (centre - smooth) + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
}

fn shift_hue_saturation(
    region: &mut RgbImage,
    pixels: &[u32],
    hue_shift: f32,
    saturation_shift: f32,
) {
    let raw: &mut [u8] = region;
    for &i in pixels {
        let pixel = &mut raw[i as usize * 3..i as usize * 3 + 3];
        let [r, g, b] = [pixel[0], pixel[1], pixel[2]].map(|v| v as f32 / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let chroma = max - min;
        let mut hue = if chroma == 0.0 {
            0.0
        } else if max == r {
            ((g - b) / chroma).rem_euclid(6.0) / 6.0
        } else if max == g {
            ((b - r) / chroma + 2.0) / 6.0
        } else {
            ((r - g) / chroma + 4.0) / 6.0
        };
        let saturation = if max == 0.0 { 0.0 } else { chroma / max };
        hue = (hue + hue_shift).rem_euclid(1.0);
        let saturation = (saturation + saturation_shift).clamp(0.0, 1.0);
        let c = max * saturation;
        let h6 = hue * 6.0;
        let x = c * (1.0 - (h6.rem_euclid(2.0) - 1.0).abs());
        let (r1, g1, b1) = match h6 as u32 {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        let m = max - c;
        for (out, v) in pixel.iter_mut().zip([r1 + m, g1 + m, b1 + m]) {
            *out = (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
}

fn channel_histogram(region: &RgbImage, pixels: &[u32], channel: usize) -> [u32; 256] {
    let mut histogram = [0u32; 256];
    let raw = region.as_raw();
    for &i in pixels {
        histogram[raw[i as usize * 3 + channel] as usize] += 1;
    }
    histogram
}

fn autocontrast_lut(region: &RgbImage, pixels: &[u32], channel: usize) -> [u8; 256] {
    let histogram = channel_histogram(region, pixels, channel);
    let lo = histogram.iter().position(|&c| c > 0).unwrap_or(0);
    let hi = histogram.iter().rposition(|&c| c > 0).unwrap_or(255);
    if hi <= lo {
        return std::array::from_fn(|v| v as u8);
    }
    let scale = 255.0 / (hi - lo) as f32;
    std::array::from_fn(|v| ((v as f32 - lo as f32) * scale + 0.5).clamp(0.0, 255.0) as u8)
}

/// PIL's `ImageOps.equalize` for one channel.
fn equalize_lut(region: &RgbImage, pixels: &[u32], channel: usize) -> [u8; 256] {
    let histogram = channel_histogram(region, pixels, channel);
    let last = histogram
        .iter()
        .rposition(|&c| c > 0)
        .map_or(0, |i| histogram[i]);
    let step = (histogram.iter().sum::<u32>() - last) / 255;
    if step == 0 {
        return std::array::from_fn(|v| v as u8);
    }
    let mut lut = [0u8; 256];
    let mut n = step / 2;
    for (v, &count) in histogram.iter().enumerate() {
        lut[v] = (n / step).min(255) as u8;
        n += count;
    }
    lut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng_for;

    fn gradient() -> RgbImage {
        RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb([(x * 8 + 40) as u8, (y * 8 + 40) as u8, 100])
        })
    }

    fn speckled() -> RgbImage {
        let mut rng = rng_for(5, &[]);
        RgbImage::from_fn(32, 32, |_, _| {
            image::Rgb([
                rng.random_range(40..200),
                rng.random_range(40..200),
                rng.random_range(40..200),
            ])
        })
    }

    #[test]
    fn every_pixel_augmentation_keeps_size_and_changes_pixels() {
        let mut changed = 0;
        for (i, aug) in Augmentation::ALL.iter().enumerate() {
            let mut changes = false;
            for attempt in 0..4 {
                let mut region = speckled();
                let all: Vec<u32> = (0..32 * 32).collect();
                apply(
                    *aug,
                    &mut region,
                    &all,
                    &mut rng_for(1, &[i as u64, attempt]),
                );
                assert_eq!(region.dimensions(), (32, 32));
                changes |= region != speckled();
            }
            assert!(
                changes || *aug == Augmentation::Rotate,
                "{aug:?} changed nothing"
            );
            changed += usize::from(changes);
        }
        // Rotation acts in `rotated_crop`; every pixel-value augmentation changes the pixels.
        assert_eq!(changed, 9);
    }

    #[test]
    fn autocontrast_stretches_to_full_range() {
        let mut region = gradient();
        let all: Vec<u32> = (0..16 * 16).collect();
        apply(
            Augmentation::Autocontrast,
            &mut region,
            &all,
            &mut rng_for(0, &[]),
        );
        let reds: Vec<u8> = region.pixels().map(|p| p.0[0]).collect();
        assert_eq!(
            (*reds.iter().min().unwrap(), *reds.iter().max().unwrap()),
            (0, 255)
        );
    }

    #[test]
    fn rotated_crop_by_zero_is_a_plain_crop() {
        let source = gradient();
        let bbox = BoundingBox {
            x0: 3,
            y0: 4,
            x1: 9,
            y1: 12,
        };
        let all: Vec<u32> = (0..6 * 8).collect();
        let crop = rotated_crop(&source, bbox, &all, 8.0, 8.0, 0.0);
        for y in 0..8 {
            for x in 0..6 {
                assert_eq!(crop.get_pixel(x, y), source.get_pixel(x + 3, y + 4));
            }
        }
    }

    #[test]
    fn rotated_crop_half_turn_mirrors_through_the_centre() {
        let source = gradient();
        let full = BoundingBox {
            x0: 0,
            y0: 0,
            x1: 16,
            y1: 16,
        };
        let all: Vec<u32> = (0..16 * 16).collect();
        let turned = rotated_crop(&source, full, &all, 8.0, 8.0, std::f32::consts::PI);
        assert_eq!(turned.get_pixel(0, 0), source.get_pixel(15, 15));
        assert_eq!(turned.get_pixel(5, 2), source.get_pixel(10, 13));
    }

    #[test]
    fn choose_gives_distinct_augmentations() {
        let chosen = Augmentation::choose(3, &mut rng_for(9, &[]));
        assert_eq!(chosen.len(), 3);
        assert!(chosen[0] != chosen[1] && chosen[1] != chosen[2] && chosen[0] != chosen[2]);
    }
}
