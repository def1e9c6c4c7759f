//! One simulated sample (Eq. 1): draws the mask, the branch and its anomaly source, jitters the
//! pasted region, blends it into a normal image and labels the pixels it changed visibly.

use image::RgbImage;
use rand::{Rng, RngExt};
use serde::Serialize;

use super::SimulateError;
use super::augment::{Augmentation, apply, rotated_crop};
use super::config::{ForegroundConfig, PerlinConfig, SimulationConfig};
use super::foreground::{foreground_mask, resolve_foreground};
use super::perlin::{largest_blob, perlin_field, perlin_mask};
use super::texture::TextureBank;
use crate::raster::{BoundingBox, Mask, write_chw};

/// Where the anomaly's pixels come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Branch {
    /// Structural, from an augmented texture image (heterologous).
    Texture,
    /// Structural, from the normal image itself shuffled as tiles (homologous).
    SelfShuffle,
    /// Logical, from another rotated normal image of the category.
    Logical,
}

/// What was drawn for one simulated sample.
#[derive(Clone, Debug, Serialize)]
pub struct SampleInfo {
    pub branch: Branch,
    /// Index of the normal image the anomaly was pasted on.
    pub base: usize,
    /// Texture index (texture branch) or other normal image (logical branch).
    pub source: Option<usize>,
    /// Transparency δ of Eq. 1.
    pub delta: f32,
    /// Pixels labelled anomalous: inside the mask and changed visibly by the blend.
    pub mask_area: usize,
    /// False when no mask inside the foreground was found and the restriction was dropped.
    pub inside_foreground: bool,
    /// Times the branch's sample was drawn: more than one when a draw changed too few pixels
    /// visibly (`min_visible_change`).
    pub draws: u32,
}

/// Simulates anomalies on a category's normal images. Shared by reference between threads.
pub struct Simulator {
    config: SimulationConfig,
    normals: Vec<RgbImage>,
    foregrounds: Vec<Mask>,
    textures: TextureBank,
    width: u32,
    height: u32,
    min_area: usize,
}

impl Simulator {
    /// `normals` must all have the working size; `config` is the category's config, whose
    /// `auto` foreground is decided here from `normals` (see [`Simulator::foreground_rule`]).
    pub fn new(
        config: SimulationConfig,
        normals: Vec<RgbImage>,
        textures: TextureBank,
    ) -> Result<Simulator, SimulateError> {
        config.validate("simulation")?;
        let first = normals.first().ok_or(SimulateError::NoNormalImages)?;
        let (width, height) = first.dimensions();
        if let Some(other) = normals.iter().find(|n| n.dimensions() != (width, height)) {
            return Err(SimulateError::SizeMismatch {
                expected: (width, height),
                found: other.dimensions(),
            });
        }
        if textures.is_empty() || textures.get(0).dimensions() != (width, height) {
            return Err(SimulateError::SizeMismatch {
                expected: (width, height),
                found: if textures.is_empty() {
                    (0, 0)
                } else {
                    textures.get(0).dimensions()
                },
            });
        }
        let mut config = config;
        config.foreground = resolve_foreground(&config.foreground, &normals);
        let foregrounds = normals
            .iter()
            .map(|n| foreground_mask(n, &config.foreground))
            .collect();
        let min_area =
            ((config.min_mask_fraction * (width * height) as f64).round() as usize).max(1);
        Ok(Simulator {
            config,
            normals,
            foregrounds,
            textures,
            width,
            height,
            min_area,
        })
    }

    /// Where anomalies may land, `auto` decided.
    pub fn foreground_rule(&self) -> &ForegroundConfig {
        &self.config.foreground
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Number of normal images.
    pub fn len(&self) -> usize {
        self.normals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.normals.is_empty()
    }

    pub fn normal(&self, index: usize) -> &RgbImage {
        &self.normals[index]
    }

    pub fn foreground(&self, index: usize) -> &Mask {
        &self.foregrounds[index]
    }

    /// Floats per image in channel-first layout (`3 × H × W`).
    pub fn image_len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }

    /// Writes normal image `base` (CHW, values in `[0, 1]`) and an all-zero mask.
    pub fn normal_into(&self, base: usize, image_out: &mut [f32], mask_out: &mut [f32]) {
        write_chw(&self.normals[base], image_out);
        mask_out.fill(0.0);
    }

    /// Simulates an anomaly on normal image `base`, writing the image (CHW, `[0, 1]`) and the
    /// target mask (1 = anomalous): the pixels of `M` the blend changed visibly. The branch is
    /// drawn once; its sample is drawn again while fewer pixels than a mask's minimum changed
    /// visibly, up to `max_mask_attempts` times, the last draw kept with its true label.
    pub fn simulate_into(
        &self,
        base: usize,
        rng: &mut impl Rng,
        image_out: &mut [f32],
        mask_out: &mut [f32],
    ) -> SampleInfo {
        let c = &self.config;
        let branch = if rng.random_bool(c.logical_probability) {
            Branch::Logical
        } else if rng.random_bool(c.self_source_probability) {
            Branch::SelfShuffle
        } else {
            Branch::Texture
        };
        let mut draws = 0;
        loop {
            draws += 1;
            let (mut info, mask) = self.draw_sample(branch, base, rng, image_out);
            info.draws = draws;
            for (out, &m) in mask_out.iter_mut().zip(mask.as_bytes()) {
                *out = m as f32;
            }
            if c.min_visible_change == 0.0 {
                return info;
            }
            info.mask_area = self.keep_visible(base, image_out, mask_out);
            if info.mask_area >= self.min_area || draws >= c.max_mask_attempts {
                return info;
            }
        }
    }

    /// One draw of `branch`'s sample: the blended image into `image_out`, and its mask `M`.
    fn draw_sample(
        &self,
        branch: Branch,
        base: usize,
        rng: &mut impl Rng,
        image_out: &mut [f32],
    ) -> (SampleInfo, Mask) {
        let c = &self.config;
        let perlin = match branch {
            Branch::Texture => &c.texture_mask,
            Branch::SelfShuffle => &c.self_mask,
            Branch::Logical => &c.logical_mask,
        };
        let (mask, inside_foreground) = self.draw_mask(base, perlin, rng);
        let patch = Patch::new(&mask);
        let bbox = patch.bbox;
        let (mut region, source, delta) = match branch {
            Branch::Texture => {
                let index = rng.random_range(0..self.textures.len());
                let augmentations = Augmentation::choose(c.texture_augmentations, rng);
                let angle = if augmentations.contains(&Augmentation::Rotate) {
                    rng.random_range(-45f32..45.0).to_radians()
                } else {
                    0.0
                };
                let (cx, cy) = (
                    (bbox.x0 + bbox.x1) as f32 / 2.0,
                    (bbox.y0 + bbox.y1) as f32 / 2.0,
                );
                let mut region = rotated_crop(
                    self.textures.get(index),
                    bbox,
                    &patch.support,
                    cx,
                    cy,
                    angle,
                );
                for augmentation in augmentations {
                    apply(augmentation, &mut region, &patch.support, rng);
                }
                let t = &c.transparency;
                let delta = if rng.random_bool(t.texture_fixed_probability) {
                    t.texture_fixed
                } else {
                    uniform(rng, t.texture_range)
                };
                (region, Some(index), delta)
            }
            Branch::SelfShuffle => {
                let region = self.shuffled_region(base, &patch, rng);
                (region, None, uniform(rng, c.transparency.self_range))
            }
            Branch::Logical => {
                let other = if self.normals.len() > 1 {
                    (base + rng.random_range(1..self.normals.len())) % self.normals.len()
                } else {
                    base
                };
                let max_angle = c.logical_rotation_degrees.to_radians() as f32;
                let angle = if max_angle > 0.0 {
                    rng.random_range(-max_angle..max_angle)
                } else {
                    0.0
                };
                let (cx, cy) = (self.width as f32 / 2.0, self.height as f32 / 2.0);
                let region = rotated_crop(&self.normals[other], bbox, &patch.inside, cx, cy, angle);
                (
                    region,
                    Some(other),
                    uniform(rng, c.transparency.logical_range),
                )
            }
        };
        let contrast = uniform(rng, c.jitter.contrast) as f32;
        let brightness = uniform(rng, c.jitter.brightness) as f32;
        jitter(&mut region, &patch.inside, contrast, brightness);
        write_chw(&self.normals[base], image_out);
        blend_region(
            image_out,
            &region,
            &patch,
            self.width as usize,
            self.height as usize,
            delta as f32,
        );
        let info = SampleInfo {
            branch,
            base,
            source,
            delta: delta as f32,
            mask_area: patch.inside.len(),
            inside_foreground,
            draws: 1,
        };
        (info, mask)
    }

    /// Clears the label of every pixel the blend changed by less than `min_visible_change` (on
    /// its most changed channel) and returns the pixels still labelled. A region pasted from a
    /// source that looks like the base (another view of a symmetric object, tiles of a plain
    /// surface, a faint δ) is not a defect, and a label there teaches the model that normal
    /// pixels are anomalous.
    fn keep_visible(&self, base: usize, image_out: &[f32], mask_out: &mut [f32]) -> usize {
        let plane = mask_out.len();
        let normal = self.normals[base].as_raw();
        let threshold = self.config.min_visible_change as f32;
        let mut labelled = 0;
        for (i, label) in mask_out.iter_mut().enumerate() {
            if *label == 0.0 {
                continue;
            }
            let change = (0..3)
                .map(|c| (image_out[c * plane + i] - normal[i * 3 + c] as f32 / 255.0).abs())
                .fold(0.0f32, f32::max);
            if change < threshold {
                *label = 0.0;
            } else {
                labelled += 1;
            }
        }
        labelled
    }

    /// A Perlin mask inside the foreground with at least `min_area` pixels; after
    /// `max_mask_attempts` failures the foreground restriction is dropped, and as a last resort
    /// the highest noise values are taken, so the mask is never empty.
    fn draw_mask(&self, base: usize, perlin: &PerlinConfig, rng: &mut impl Rng) -> (Mask, bool) {
        let attempts = self.config.max_mask_attempts;
        let restrict = |mut mask: Mask, foreground: Option<&Mask>| {
            if let Some(fg) = foreground {
                mask.intersect(fg);
            }
            if perlin.keep_largest {
                largest_blob(&mask)
            } else {
                mask
            }
        };
        for foreground in [Some(&self.foregrounds[base]), None] {
            for _ in 0..attempts {
                let mask = restrict(
                    perlin_mask(self.width, self.height, perlin, rng),
                    foreground,
                );
                if mask.area() >= self.min_area {
                    return (mask, foreground.is_some());
                }
            }
        }
        let field = perlin_field(self.width, self.height, perlin, rng);
        let mut sorted = field.clone();
        sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        let cut = sorted[(self.min_area * 4).min(sorted.len()) - 1];
        let mask = Mask::from_bytes(
            self.width,
            self.height,
            field.iter().map(|&v| u8::from(v >= cut)).collect(),
        );
        (restrict(mask, None), false)
    }

    /// The masked pixels of normal image `base` after cutting it into a random grid of tiles
    /// and permuting them.
    fn shuffled_region(&self, base: usize, patch: &Patch, rng: &mut impl Rng) -> RgbImage {
        let [lo, hi] = self.config.shuffle_grid;
        let grid = rng.random_range(lo..=hi).min(self.width).min(self.height);
        let mut permutation: Vec<u32> = (0..grid * grid).collect();
        rand::seq::SliceRandom::shuffle(permutation.as_mut_slice(), rng);
        let (tile_w, tile_h) = (self.width / grid, self.height / grid);
        let source = &self.normals[base];
        let bbox = patch.bbox;
        let mut region = RgbImage::new(bbox.width(), bbox.height());
        for &i in &patch.inside {
            let (x, y) = (bbox.x0 + i % bbox.width(), bbox.y0 + i / bbox.width());
            let (tx, ty) = ((x / tile_w).min(grid - 1), (y / tile_h).min(grid - 1));
            let from = permutation[(ty * grid + tx) as usize];
            let (fx, fy) = (from % grid, from / grid);
            let sx = (fx * tile_w + (x - tx * tile_w)).min(self.width - 1);
            let sy = (fy * tile_h + (y - ty * tile_h)).min(self.height - 1);
            region.put_pixel(
                i % bbox.width(),
                i / bbox.width(),
                *source.get_pixel(sx, sy),
            );
        }
        region
    }
}

/// Where a sample is pasted: the mask's bounding box and, as row-major indices into it, the
/// masked pixels and those plus a one-pixel ring (what the sharpening kernel reads).
struct Patch {
    bbox: BoundingBox,
    inside: Vec<u32>,
    support: Vec<u32>,
}

impl Patch {
    fn new(mask: &Mask) -> Patch {
        let bbox = mask
            .bounding_box()
            .expect("draw_mask never returns an empty mask");
        let (bw, bh) = (bbox.width() as usize, bbox.height() as usize);
        let mut inside = Vec::new();
        let mut ring = vec![false; bw * bh];
        for ry in 0..bh {
            for rx in 0..bw {
                if mask.get(bbox.x0 + rx as u32, bbox.y0 + ry as u32) {
                    inside.push((ry * bw + rx) as u32);
                    for ny in ry.saturating_sub(1)..(ry + 2).min(bh) {
                        ring[ny * bw + rx.saturating_sub(1)..ny * bw + (rx + 2).min(bw)].fill(true);
                    }
                }
            }
        }
        let support = ring
            .iter()
            .enumerate()
            .filter(|(_, r)| **r)
            .map(|(i, _)| i as u32)
            .collect();
        Patch {
            bbox,
            inside,
            support,
        }
    }
}

fn uniform(rng: &mut impl Rng, [lo, hi]: [f64; 2]) -> f64 {
    if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

/// `v ← (v − μ)·contrast + μ + brightness` over the listed pixels (`μ` their mean).
fn jitter(region: &mut RgbImage, pixels: &[u32], contrast: f32, brightness: f32) {
    let raw: &mut [u8] = region;
    let sum: u64 = pixels
        .iter()
        .map(|&i| {
            raw[i as usize * 3..i as usize * 3 + 3]
                .iter()
                .map(|&v| v as u64)
                .sum::<u64>()
        })
        .sum();
    let mean = sum as f32 / (3 * pixels.len().max(1)) as f32 / 255.0;
    let lut: [u8; 256] = std::array::from_fn(|v| {
        (((v as f32 / 255.0 - mean) * contrast + mean + brightness).clamp(0.0, 1.0) * 255.0 + 0.5)
            as u8
    });
    for &i in pixels {
        for v in &mut raw[i as usize * 3..i as usize * 3 + 3] {
            *v = lut[*v as usize];
        }
    }
}

/// Eq. 1 inside the mask: `I_A = δ·I_N + (1 − δ)·I`; outside it `I_A = I` is already written.
fn blend_region(
    out: &mut [f32],
    region: &RgbImage,
    patch: &Patch,
    width: usize,
    height: usize,
    delta: f32,
) {
    let plane = width * height;
    let (bbox, raw) = (patch.bbox, region.as_raw());
    for &i in &patch.inside {
        let (x, y) = (
            (bbox.x0 + i % bbox.width()) as usize,
            (bbox.y0 + i / bbox.width()) as usize,
        );
        let at = y * width + x;
        for c in 0..3 {
            let v = &mut out[c * plane + at];
            *v = delta * (raw[i as usize * 3 + c] as f32 * (1.0 / 255.0)) + (1.0 - delta) * *v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::{Connectivity, label_components};
    use crate::seed::rng_for;
    use crate::simulate::config::{ForegroundConfig, JitterConfig, MIN_VISIBLE_CHANGE, Polarity};

    fn normals(count: usize) -> Vec<RgbImage> {
        (0..count)
            .map(|i| {
                RgbImage::from_fn(48, 40, |x, y| {
                    let inside = (x as i32 - 24).pow(2) + (y as i32 - 20).pow(2) < 225;
                    let v = if inside {
                        180 + (x + y + i as u32) as u8 % 40
                    } else {
                        20
                    };
                    image::Rgb([v, v / 2, 255 - v])
                })
            })
            .collect()
    }

    fn simulator(config: SimulationConfig) -> Simulator {
        Simulator::new(config, normals(3), TextureBank::procedural(48, 40, 6, 1)).unwrap()
    }

    fn run(sim: &Simulator, seed: u64, base: usize) -> (Vec<f32>, Vec<f32>, SampleInfo) {
        let (mut image, mut mask) = (vec![0.0; sim.image_len()], vec![0.0; sim.image_len() / 3]);
        let info = sim.simulate_into(base, &mut rng_for(seed, &[]), &mut image, &mut mask);
        (image, mask, info)
    }

    /// The largest change of pixel `i` over its three channels.
    fn change(image: &[f32], normal: &[f32], i: usize) -> f32 {
        let plane = normal.len() / 3;
        (0..3)
            .map(|c| (image[c * plane + i] - normal[c * plane + i]).abs())
            .fold(0.0, f32::max)
    }

    fn normal_planes(sim: &Simulator, base: usize) -> Vec<f32> {
        let (mut normal, mut zeros) = (vec![0.0; sim.image_len()], vec![0.0; sim.image_len() / 3]);
        sim.normal_into(base, &mut normal, &mut zeros);
        normal
    }

    #[test]
    fn exactly_the_visibly_changed_pixels_are_labelled() {
        let sim = simulator(SimulationConfig::default());
        let normal = normal_planes(&sim, 1);
        let threshold = MIN_VISIBLE_CHANGE as f32;
        let (mut faint, mut redrawn) = (0, 0);
        for seed in 0..60 {
            let (image, mask, info) = run(&sim, seed, 1);
            assert_eq!(mask.iter().filter(|&&m| m == 1.0).count(), info.mask_area);
            assert!(
                info.mask_area >= sim.min_area || info.draws == 16,
                "seed {seed}"
            );
            redrawn += usize::from(info.draws > 1);
            for (i, &label) in mask.iter().enumerate() {
                let change = change(&image, &normal, i);
                if label == 1.0 {
                    assert!(
                        change >= threshold,
                        "seed {seed}: pixel {i} labelled, {change}"
                    );
                } else if change > 0.0 {
                    assert!(
                        change < threshold,
                        "seed {seed}: pixel {i} changed, {change}"
                    );
                    faint += 1;
                }
            }
        }
        // Faint self-shuffles are common at δ ≤ 0.25: some pixels change unseen, some
        // samples are drawn again.
        assert!(faint > 0 && redrawn > 0, "{faint} {redrawn}");
    }

    #[test]
    fn without_a_visibility_threshold_the_whole_mask_is_labelled() {
        let sim = simulator(SimulationConfig {
            min_visible_change: 0.0,
            ..Default::default()
        });
        let normal = normal_planes(&sim, 1);
        let mut unchanged_but_labelled = 0;
        for seed in 0..40 {
            let (image, mask, info) = run(&sim, seed, 1);
            assert_eq!(mask.iter().filter(|&&m| m == 1.0).count(), info.mask_area);
            assert_eq!(info.draws, 1);
            assert!(info.mask_area >= 2);
            for (i, &label) in mask.iter().enumerate() {
                let change = change(&image, &normal, i);
                if label == 0.0 {
                    assert_eq!(
                        change, 0.0,
                        "seed {seed}: pixel {i} outside the mask changed"
                    );
                } else if change < MIN_VISIBLE_CHANGE as f32 {
                    unchanged_but_labelled += 1;
                }
            }
        }
        assert!(unchanged_but_labelled > 0);
    }

    #[test]
    fn a_source_that_looks_like_the_base_is_drawn_again_then_left_unlabelled() {
        // Every normal image is the same flat grey, so a logical paste changes nothing but
        // what the jitter does; without jitter nothing is visible.
        let flat = vec![RgbImage::from_pixel(48, 40, image::Rgb([120, 120, 120])); 3];
        let sim = Simulator::new(
            SimulationConfig {
                logical_probability: 1.0,
                jitter: JitterConfig {
                    contrast: [1.0, 1.0],
                    brightness: [0.0, 0.0],
                },
                ..Default::default()
            },
            flat,
            TextureBank::procedural(48, 40, 6, 1),
        )
        .unwrap();
        let (image, mask, info) = run(&sim, 3, 0);
        assert_eq!(info.draws, 16);
        assert_eq!(info.mask_area, 0);
        assert!(mask.iter().all(|&m| m == 0.0));
        assert!(
            image
                .iter()
                .all(|&v| (v - 120.0 / 255.0).abs() < MIN_VISIBLE_CHANGE as f32)
        );
    }

    #[test]
    fn same_seed_same_sample() {
        let sim = simulator(SimulationConfig::default());
        let (a, ma, ia) = run(&sim, 42, 2);
        let (b, mb, ib) = run(&sim, 42, 2);
        assert_eq!((a, ma), (b, mb));
        assert_eq!(
            (ia.branch, ia.source, ia.delta),
            (ib.branch, ib.source, ib.delta)
        );
    }

    #[test]
    fn masks_stay_on_the_foreground() {
        let config = SimulationConfig {
            foreground: ForegroundConfig::Otsu {
                polarity: Polarity::Auto,
            },
            ..Default::default()
        };
        let sim = simulator(config);
        for seed in 0..30 {
            let (_, mask, info) = run(&sim, seed, 0);
            if info.inside_foreground {
                for (i, &m) in mask.iter().enumerate() {
                    if m == 1.0 {
                        assert!(sim.foreground(0).as_bytes()[i] == 1, "seed {seed}");
                    }
                }
            }
        }
    }

    #[test]
    fn branches_follow_their_probabilities_and_logical_masks_are_one_blob() {
        // The whole mask as the label, to see its shape.
        let sim = simulator(SimulationConfig {
            min_visible_change: 0.0,
            ..Default::default()
        });
        let mut counts = [0usize; 3];
        for seed in 0..400 {
            let (_, mask, info) = run(&sim, seed, 0);
            counts[info.branch as usize] += 1;
            if info.branch == Branch::Logical {
                let bytes: Vec<u8> = mask.iter().map(|&m| m as u8).collect();
                assert_eq!(
                    label_components(&bytes, 48, 40, Connectivity::Eight).count,
                    1
                );
                assert_ne!(info.source, Some(0));
            }
        }
        // logical 0.5, then self 0.5 of the rest, texture the remaining quarter
        assert!(
            (150..250).contains(&counts[Branch::Logical as usize]),
            "{counts:?}"
        );
        assert!(
            (60..140).contains(&counts[Branch::Texture as usize]),
            "{counts:?}"
        );
    }
}
