//! Texture sources for structural anomalies: a folder of images (e.g. DTD) loaded once at the
//! working resolution, or procedurally generated patterns when no folder is given.

use std::path::Path;

use image::{Rgb, RgbImage};
use noise::{NoiseFn, Perlin};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use super::SimulateError;
use crate::data::{is_image_file, read_rgb_resized_all};
use crate::seed::rng_for;

/// The textures kept in memory, all at the working resolution.
#[derive(Clone)]
pub struct TextureBank {
    textures: Vec<RgbImage>,
}

impl TextureBank {
    /// Loads up to `max` images found anywhere under `dir` (a seeded random choice when there
    /// are more), resized to `width × height`.
    pub fn from_folder(
        dir: &Path,
        width: u32,
        height: u32,
        max: usize,
        seed: u64,
        threads: usize,
    ) -> Result<TextureBank, SimulateError> {
        let mut files =
            crate::walk::files(dir, is_image_file).map_err(crate::data::DataError::from)?;
        if files.is_empty() {
            return Err(SimulateError::NoTextures {
                path: dir.to_path_buf(),
            });
        }
        if files.len() > max {
            files.shuffle(&mut rng_for(seed, &[0x7e47]));
            files.truncate(max.max(1));
            files.sort();
        }
        let textures = read_rgb_resized_all(&files, width, height, threads)?;
        Ok(TextureBank { textures })
    }

    /// `count` procedural textures: stripes, checkers, spots, marble, coloured noise, hatching.
    pub fn procedural(width: u32, height: u32, count: usize, seed: u64) -> TextureBank {
        let textures = (0..count.max(1))
            .map(|i| procedural_texture(width, height, i, &mut rng_for(seed, &[0x7e47, i as u64])))
            .collect();
        TextureBank { textures }
    }

    pub fn len(&self) -> usize {
        self.textures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.textures.is_empty()
    }

    pub fn get(&self, index: usize) -> &RgbImage {
        &self.textures[index]
    }
}

fn random_colour(rng: &mut impl Rng) -> [f32; 3] {
    [
        rng.random_range(0.0..1.0),
        rng.random_range(0.0..1.0),
        rng.random_range(0.0..1.0),
    ]
}

fn procedural_texture(width: u32, height: u32, kind: usize, rng: &mut impl Rng) -> RgbImage {
    let (a, b) = (random_colour(rng), random_colour(rng));
    let perlin = Perlin::new(rng.random());
    let angle: f32 = rng.random_range(0.0..std::f32::consts::PI);
    let (sin, cos) = angle.sin_cos();
    let period: f32 = rng.random_range(4.0..24.0) * width.max(height) as f32 / 256.0;
    let mix = |t: f32| -> Rgb<u8> {
        let t = t.clamp(0.0, 1.0);
        Rgb(std::array::from_fn(|c| {
            ((a[c] + (b[c] - a[c]) * t) * 255.0).round() as u8
        }))
    };
    let noise =
        |x: f32, y: f32, scale: f32| perlin.get([(x / scale) as f64, (y / scale) as f64]) as f32;
    match kind % 6 {
        0 => RgbImage::from_fn(width, height, |x, y| {
            let u = (x as f32 * cos + y as f32 * sin) / period;
            mix(0.5 + 0.5 * (u * std::f32::consts::TAU).sin())
        }),
        1 => RgbImage::from_fn(width, height, |x, y| {
            let (u, v) = (
                (x as f32 * cos + y as f32 * sin) / period,
                (-(x as f32) * sin + y as f32 * cos) / period,
            );
            mix(((u.floor() + v.floor()) as i64).rem_euclid(2) as f32)
        }),
        2 => {
            let spots: Vec<(f32, f32, f32)> = (0..rng.random_range(20..80))
                .map(|_| {
                    (
                        rng.random_range(0.0..width as f32),
                        rng.random_range(0.0..height as f32),
                        rng.random_range(0.3..1.0) * period,
                    )
                })
                .collect();
            RgbImage::from_fn(width, height, |x, y| {
                let inside = spots
                    .iter()
                    .any(|&(sx, sy, r)| (x as f32 - sx).hypot(y as f32 - sy) < r);
                mix(if inside {
                    1.0
                } else {
                    0.15 * (1.0 + noise(x as f32, y as f32, period))
                })
            })
        }
        3 => RgbImage::from_fn(width, height, |x, y| {
            let turbulence = 4.0 * noise(x as f32, y as f32, period * 2.0);
            mix(0.5 + 0.5 * ((x as f32 * cos + y as f32 * sin) / period + turbulence).sin())
        }),
        4 => {
            let (p2, p3) = (Perlin::new(rng.random()), Perlin::new(rng.random()));
            RgbImage::from_fn(width, height, |x, y| {
                let at = |p: &Perlin| {
                    0.5 + 0.5
                        * p.get([(x as f32 / period) as f64, (y as f32 / period) as f64]) as f32
                };
                Rgb([at(&perlin), at(&p2), at(&p3)].map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8))
            })
        }
        _ => RgbImage::from_fn(width, height, |x, y| {
            let (u, v) = (
                (x as f32 * cos + y as f32 * sin) / period,
                (-(x as f32) * sin + y as f32 * cos) / period,
            );
            let line = |t: f32| (t.fract() < 0.2) as u8 as f32;
            mix((line(u) + line(v)).min(1.0) * (0.8 + 0.2 * noise(x as f32, y as f32, period)))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procedural_bank_is_deterministic_and_varied() {
        let a = TextureBank::procedural(32, 24, 12, 3);
        let b = TextureBank::procedural(32, 24, 12, 3);
        assert_eq!(a.len(), 12);
        for i in 0..12 {
            assert_eq!(a.get(i), b.get(i));
            assert_eq!(a.get(i).dimensions(), (32, 24));
        }
        assert_ne!(a.get(0), a.get(1));
    }

    #[test]
    fn empty_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = TextureBank::from_folder(dir.path(), 16, 16, 10, 0, 1)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }
}
