//! Simulated training anomalies drawn for a person: each sample as `normal | simulated | mask`
//! inside a border coloured by the branch that made it, four samples to a row.

use image::{GrayImage, Luma, Rgb, RgbImage, imageops};

use crate::seed::rng_for;
use crate::simulate::{Branch, SampleInfo, Simulator};

/// One simulated sample as pictures.
pub struct SimulatedSample {
    pub normal: RgbImage,
    pub simulated: RgbImage,
    pub mask: GrayImage,
    pub info: SampleInfo,
}

/// `count` samples of `simulator`, sample `i` on normal image `i mod n` with the random stream
/// of `(seed, i)`: the same samples on every run.
pub fn simulate_samples(simulator: &Simulator, count: usize, seed: u64) -> Vec<SimulatedSample> {
    let mut image = vec![0.0f32; simulator.image_len()];
    let mut mask = vec![0.0f32; simulator.image_len() / 3];
    (0..count)
        .map(|i| {
            let base = i % simulator.len();
            let info = simulator.simulate_into(
                base,
                &mut rng_for(seed, &[i as u64]),
                &mut image,
                &mut mask,
            );
            let (simulated, mask) =
                planes_to_images(&image, &mask, simulator.width(), simulator.height());
            SimulatedSample {
                normal: simulator.normal(base).clone(),
                simulated,
                mask,
                info,
            }
        })
        .collect()
}

/// A channel-first image in `[0, 1]` and its mask (anomalous above one half) as pictures.
pub fn planes_to_images(
    image: &[f32],
    mask: &[f32],
    width: u32,
    height: u32,
) -> (RgbImage, GrayImage) {
    let plane = (width * height) as usize;
    let rgb = RgbImage::from_fn(width, height, |x, y| {
        let i = (y * width + x) as usize;
        Rgb(std::array::from_fn(|c| {
            (image[c * plane + i] * 255.0 + 0.5).clamp(0.0, 255.0) as u8
        }))
    });
    let gray = GrayImage::from_fn(width, height, |x, y| {
        Luma([if mask[(y * width + x) as usize] > 0.5 {
            255
        } else {
            0
        }])
    });
    (rgb, gray)
}

/// The border colour of a sample: red for the texture branch, orange for self-shuffling, blue
/// for the logical branch.
pub fn branch_colour(branch: Branch) -> Rgb<u8> {
    match branch {
        Branch::Texture => Rgb([230, 60, 50]),
        Branch::SelfShuffle => Rgb([240, 160, 30]),
        Branch::Logical => Rgb([50, 110, 230]),
    }
}

/// Rows of up to four samples on white, each `normal | simulated | mask` inside its branch's
/// border.
pub fn contact_sheet(samples: &[SimulatedSample]) -> RgbImage {
    let Some(first) = samples.first() else {
        return RgbImage::new(1, 1);
    };
    let (w, h) = first.normal.dimensions();
    let border = 4;
    let (cell_w, cell_h) = (3 * w + 2 * border + 4, h + 2 * border);
    let columns = samples.len().min(4) as u32;
    let rows = samples.len().div_ceil(4) as u32;
    let mut sheet = RgbImage::from_pixel(
        columns * (cell_w + 8),
        rows * (cell_h + 8),
        Rgb([255, 255, 255]),
    );
    for (i, sample) in samples.iter().enumerate() {
        let (x0, y0) = ((i as u32 % 4) * (cell_w + 8), (i as u32 / 4) * (cell_h + 8));
        let cell = RgbImage::from_pixel(cell_w, cell_h, branch_colour(sample.info.branch));
        imageops::replace(&mut sheet, &cell, i64::from(x0), i64::from(y0));
        let mask = RgbImage::from_fn(w, h, |x, y| {
            let v = sample.mask.get_pixel(x, y).0[0];
            Rgb([v, v, v])
        });
        for (k, part) in [&sample.normal, &sample.simulated, &mask]
            .into_iter()
            .enumerate()
        {
            imageops::replace(
                &mut sheet,
                part,
                i64::from(x0 + border + k as u32 * (w + 2)),
                i64::from(y0 + border),
            );
        }
    }
    sheet
}
