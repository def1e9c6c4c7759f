//! GPT-Net's in-painting masks (docs/method.md §3): a fraction of the cells of an S×S grid, plus large
//! random rectangles for long-range context. Drawn on the CPU from a seeded generator.

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use crate::config::PretrainConfig;
use crate::raster::Mask;

/// A `size × size` mask (1 = hidden from the generator).
pub fn inpainting_mask(size: u32, config: &PretrainConfig, rng: &mut impl Rng) -> Mask {
    let mut mask = Mask::new(size, size);
    let grid = config.grid.min(size);
    let cells = (grid * grid) as usize;
    let hidden = ((config.mask_ratio * cells as f64).round() as usize).min(cells);
    let mut order: Vec<u32> = (0..grid * grid).collect();
    order.shuffle(rng);
    let bounds = |i: u32| (i * size / grid, (i + 1) * size / grid);
    for &cell in &order[..hidden] {
        let ((x0, x1), (y0, y1)) = (bounds(cell % grid), bounds(cell / grid));
        fill(&mut mask, x0, y0, x1, y1);
    }
    let scale = size as f64 / 256.0;
    let [lo, hi] = config
        .rectangle_size
        .map(|s| ((s as f64 * scale).round() as u32).clamp(1, size));
    for _ in 0..rng.random_range(config.rectangles[0]..=config.rectangles[1]) {
        let (w, h) = (rng.random_range(lo..=hi), rng.random_range(lo..=hi));
        let (x0, y0) = (
            rng.random_range(0..=size - w),
            rng.random_range(0..=size - h),
        );
        fill(&mut mask, x0, y0, x0 + w, y0 + h);
    }
    mask
}

fn fill(mask: &mut Mask, x0: u32, y0: u32, x1: u32, y1: u32) {
    let width = mask.width() as usize;
    let bytes = mask.as_bytes_mut();
    for y in y0 as usize..y1 as usize {
        bytes[y * width + x0 as usize..y * width + x1 as usize].fill(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng_for;

    #[test]
    fn grid_cells_at_the_ratio_plus_rectangles() {
        let config = PretrainConfig {
            rectangles: [0, 0],
            ..Default::default()
        };
        let mask = inpainting_mask(64, &config, &mut rng_for(1, &[]));
        // 8×8 grid of 8-px cells, 51 of 64 cells hidden.
        assert_eq!(mask.area(), 51 * 64);
        let with_rectangles = inpainting_mask(64, &PretrainConfig::default(), &mut rng_for(1, &[]));
        assert!(with_rectangles.area() >= mask.area());
        assert_eq!(
            inpainting_mask(64, &PretrainConfig::default(), &mut rng_for(1, &[])),
            with_rectangles
        );
    }
}
