use image::{RgbImage, imageops};

/// Resizes a row-major single-channel float grid with bilinear interpolation and half-pixel
/// centres (PyTorch's `interpolate(mode="bilinear", align_corners=False)`), the convention
/// used to bring a model's anomaly map back to the original image size.
pub fn resize_bilinear_f32(
    src: &[f32],
    width: u32,
    height: u32,
    out_width: u32,
    out_height: u32,
) -> Vec<f32> {
    let (sw, sh) = (width as usize, height as usize);
    assert_eq!(src.len(), sw * sh, "grid size");
    if width == out_width && height == out_height {
        return src.to_vec();
    }
    let axis = |out: u32, input: u32| -> Vec<(usize, usize, f32)> {
        let scale = input as f32 / out as f32;
        (0..out)
            .map(|o| {
                let pos = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (pos.floor() as usize).min(input as usize - 1);
                let i1 = (i0 + 1).min(input as usize - 1);
                (i0, i1, pos - i0 as f32)
            })
            .collect()
    };
    let xs = axis(out_width, width);
    let ys = axis(out_height, height);
    let mut out = Vec::with_capacity(out_width as usize * out_height as usize);
    for &(y0, y1, fy) in &ys {
        let (r0, r1) = (&src[y0 * sw..(y0 + 1) * sw], &src[y1 * sw..(y1 + 1) * sw]);
        for &(x0, x1, fx) in &xs {
            let top = r0[x0] + (r0[x1] - r0[x0]) * fx;
            let bottom = r1[x0] + (r1[x1] - r1[x0]) * fx;
            out.push(top + (bottom - top) * fy);
        }
    }
    out
}

/// Resizes an RGB image with a triangle (bilinear, anti-aliased when shrinking) filter.
pub fn resize_rgb(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    if image.width() == width && image.height() == height {
        return image.clone();
    }
    imageops::resize(image, width, height, imageops::FilterType::Triangle)
}

/// Writes an RGB image as channel-first floats in `[0, 1]`.
pub fn write_chw(image: &RgbImage, out: &mut [f32]) {
    let plane = image.width() as usize * image.height() as usize;
    assert_eq!(out.len(), 3 * plane, "output buffer size");
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, p) in image.as_raw().chunks_exact(3).enumerate() {
        r[i] = p[0] as f32 * (1.0 / 255.0);
        g[i] = p[1] as f32 * (1.0 / 255.0);
        b[i] = p[2] as f32 * (1.0 / 255.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_matches_half_pixel_bilinear() {
        // torch.nn.functional.interpolate([[0, 1], [2, 3]], size=4, bilinear, align_corners=False)
        let out = resize_bilinear_f32(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        let expected = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn same_size_is_identity() {
        let src = [1.0, 2.0, 3.0];
        assert_eq!(resize_bilinear_f32(&src, 3, 1, 3, 1), src);
    }
}
