//! A float RGB canvas and signed-distance shapes: every shape paints with anti-aliased edges and
//! reports the same footprint as a ground-truth mask.

use image::RgbImage;
use noise::{NoiseFn, Perlin};
use rand::{Rng, RngExt};

use crate::raster::Mask;

pub type Rgb = [f32; 3];

pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pixels: Vec<Rgb>,
}

impl Canvas {
    pub fn from_fn(width: u32, height: u32, mut f: impl FnMut(f32, f32) -> Rgb) -> Canvas {
        let mut pixels = Vec::with_capacity(width as usize * height as usize);
        for y in 0..height {
            for x in 0..width {
                pixels.push(f(x as f32 + 0.5, y as f32 + 0.5));
            }
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// Paints `shape` with a colour chosen per pixel; returns the pixels it covers at least half.
    pub fn paint(&mut self, shape: &Shape, mut color: impl FnMut(f32, f32, Rgb) -> Rgb) -> Mask {
        let mut footprint = Mask::new(self.width, self.height);
        let Some((x0, y0, x1, y1)) = shape.pixel_bounds(self.width, self.height) else {
            return footprint;
        };
        for y in y0..y1 {
            for x in x0..x1 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let coverage = (0.5 - shape.distance(px, py)).clamp(0.0, 1.0);
                if coverage <= 0.0 {
                    continue;
                }
                let i = y as usize * self.width as usize + x as usize;
                let old = self.pixels[i];
                let new = color(px, py, old);
                self.pixels[i] = mix(old, new, coverage);
                if coverage >= 0.5 {
                    footprint.set(x, y, true);
                }
            }
        }
        footprint
    }

    pub fn fill(&mut self, shape: &Shape, color: Rgb) -> Mask {
        self.paint(shape, |_, _, _| color)
    }

    /// Quantises to 8 bits after adding a little sensor noise.
    pub fn to_image(&self, rng: &mut impl Rng, noise: f32) -> RgbImage {
        let mut image = RgbImage::new(self.width, self.height);
        for (out, px) in image.pixels_mut().zip(&self.pixels) {
            for (channel, value) in out.0.iter_mut().zip(px) {
                let n = if noise > 0.0 {
                    rng.random_range(-noise..noise)
                } else {
                    0.0
                };
                *channel = ((value + n).clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
        image
    }
}

pub fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

pub fn scale(c: Rgb, k: f32) -> Rgb {
    [c[0] * k, c[1] * k, c[2] * k]
}

/// Shapes described by a signed distance (negative inside, in pixels).
#[derive(Clone, Debug)]
pub enum Shape {
    Disc {
        cx: f32,
        cy: f32,
        r: f32,
    },
    Ring {
        cx: f32,
        cy: f32,
        inner: f32,
        outer: f32,
    },
    /// A rectangle of half-sizes `hw × hh` rotated by `angle` radians around its centre.
    Box {
        cx: f32,
        cy: f32,
        hw: f32,
        hh: f32,
        angle: f32,
    },
    /// A convex polygon, vertices counter-clockwise or clockwise.
    Polygon {
        points: Vec<(f32, f32)>,
    },
    /// A thick polyline (capsules between consecutive points).
    Stroke {
        points: Vec<(f32, f32)>,
        half_width: f32,
    },
    /// A disc whose radius wobbles with angle: `r · (1 + Σ a_k cos(k θ + φ_k))`.
    Blob {
        cx: f32,
        cy: f32,
        r: f32,
        harmonics: Vec<(f32, f32)>,
    },
    /// `a` with `b` cut away.
    Subtract(Box<Shape>, Box<Shape>),
    /// `a` restricted to `b`.
    Intersect(Box<Shape>, Box<Shape>),
}

impl Shape {
    pub fn distance(&self, x: f32, y: f32) -> f32 {
        match self {
            Shape::Disc { cx, cy, r } => ((x - cx).hypot(y - cy)) - r,
            Shape::Ring {
                cx,
                cy,
                inner,
                outer,
            } => {
                let d = (x - cx).hypot(y - cy);
                (d - outer).max(inner - d)
            }
            Shape::Box {
                cx,
                cy,
                hw,
                hh,
                angle,
            } => {
                let (s, c) = angle.sin_cos();
                let (dx, dy) = (x - cx, y - cy);
                let (lx, ly) = ((dx * c + dy * s).abs() - hw, (-dx * s + dy * c).abs() - hh);
                let outside = lx.max(0.0).hypot(ly.max(0.0));
                outside + lx.max(ly).min(0.0)
            }
            Shape::Polygon { points } => polygon_distance(points, x, y),
            Shape::Stroke { points, half_width } => {
                let mut best = f32::INFINITY;
                for w in points.windows(2) {
                    best = best.min(segment_distance(w[0], w[1], x, y));
                }
                best - half_width
            }
            Shape::Blob {
                cx,
                cy,
                r,
                harmonics,
            } => {
                let (dx, dy) = (x - cx, y - cy);
                let theta = dy.atan2(dx);
                let wobble: f32 = harmonics
                    .iter()
                    .enumerate()
                    .map(|(k, (a, phase))| a * ((k as f32 + 2.0) * theta + phase).cos())
                    .sum();
                dx.hypot(dy) - r * (1.0 + wobble)
            }
            Shape::Subtract(a, b) => a.distance(x, y).max(-b.distance(x, y)),
            Shape::Intersect(a, b) => a.distance(x, y).max(b.distance(x, y)),
        }
    }

    /// A pixel rectangle `[x0, x1) × [y0, y1)` outside which the shape has no coverage.
    fn pixel_bounds(&self, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
        let (min_x, min_y, max_x, max_y) = self.extent();
        let clamp = |v: f32, hi: u32| (v.max(0.0) as u32).min(hi);
        let (x0, y0) = (clamp(min_x - 2.0, width), clamp(min_y - 2.0, height));
        let (x1, y1) = (clamp(max_x + 3.0, width), clamp(max_y + 3.0, height));
        (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
    }

    fn extent(&self) -> (f32, f32, f32, f32) {
        match self {
            Shape::Disc { cx, cy, r } => (cx - r, cy - r, cx + r, cy + r),
            Shape::Ring { cx, cy, outer, .. } => (cx - outer, cy - outer, cx + outer, cy + outer),
            Shape::Box { cx, cy, hw, hh, .. } => {
                let r = hw.hypot(*hh);
                (cx - r, cy - r, cx + r, cy + r)
            }
            Shape::Polygon { points } => bounds_of(points, 0.0),
            Shape::Stroke { points, half_width } => bounds_of(points, *half_width),
            Shape::Blob {
                cx,
                cy,
                r,
                harmonics,
            } => {
                let reach = r * (1.0 + harmonics.iter().map(|(a, _)| a.abs()).sum::<f32>());
                (cx - reach, cy - reach, cx + reach, cy + reach)
            }
            Shape::Subtract(a, _) => a.extent(),
            Shape::Intersect(a, b) => {
                let (a, b) = (a.extent(), b.extent());
                (a.0.max(b.0), a.1.max(b.1), a.2.min(b.2), a.3.min(b.3))
            }
        }
    }

    /// A blob of radius drawn from `radius` with `count` random radial harmonics of relative amplitude up to `roughness`.
    pub fn random_blob(
        rng: &mut impl Rng,
        cx: f32,
        cy: f32,
        radius: std::ops::Range<f32>,
        count: usize,
        roughness: f32,
    ) -> Shape {
        let r = rng.random_range(radius);
        let harmonics = (0..count)
            .map(|_| {
                (
                    rng.random_range(-roughness..roughness),
                    rng.random_range(0.0..std::f32::consts::TAU),
                )
            })
            .collect();
        Shape::Blob {
            cx,
            cy,
            r,
            harmonics,
        }
    }

    /// A random quadratic curve, its length drawn from `length`, of thickness `2·half_width` from a point near `(cx, cy)`.
    pub fn random_curve(
        rng: &mut impl Rng,
        cx: f32,
        cy: f32,
        length: std::ops::Range<f32>,
        half_width: f32,
    ) -> Shape {
        let length = rng.random_range(length);
        let angle = rng.random_range(0.0..std::f32::consts::TAU);
        let (dx, dy) = (angle.cos() * length / 2.0, angle.sin() * length / 2.0);
        let (ax, ay, bx, by) = (cx - dx, cy - dy, cx + dx, cy + dy);
        let bend = rng.random_range(-0.35..0.35) * length;
        let (mx, my) = (cx - angle.sin() * bend, cy + angle.cos() * bend);
        let points = (0..=16)
            .map(|i| {
                let t = i as f32 / 16.0;
                let u = 1.0 - t;
                (
                    u * u * ax + 2.0 * u * t * mx + t * t * bx,
                    u * u * ay + 2.0 * u * t * my + t * t * by,
                )
            })
            .collect();
        Shape::Stroke { points, half_width }
    }
}

fn bounds_of(points: &[(f32, f32)], pad: f32) -> (f32, f32, f32, f32) {
    let mut b = (
        f32::INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
    );
    for &(x, y) in points {
        b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
    }
    (b.0 - pad, b.1 - pad, b.2 + pad, b.3 + pad)
}

fn segment_distance(a: (f32, f32), b: (f32, f32), x: f32, y: f32) -> f32 {
    let (abx, aby) = (b.0 - a.0, b.1 - a.1);
    let len2 = abx * abx + aby * aby;
    let t = if len2 > 0.0 {
        (((x - a.0) * abx + (y - a.1) * aby) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (x - (a.0 + t * abx)).hypot(y - (a.1 + t * aby))
}

fn polygon_distance(points: &[(f32, f32)], x: f32, y: f32) -> f32 {
    let n = points.len();
    let mut edge = f32::INFINITY;
    let mut inside = false;
    for i in 0..n {
        let (a, b) = (points[i], points[(i + 1) % n]);
        edge = edge.min(segment_distance(a, b, x, y));
        if (a.1 > y) != (b.1 > y) && x < a.0 + (y - a.1) * (b.0 - a.0) / (b.1 - a.1) {
            inside = !inside;
        }
    }
    if inside { -edge } else { edge }
}

/// Fractal Perlin noise in roughly [-1, 1], sampled at `(x, y) / period`.
pub fn fbm(perlin: &Perlin, x: f32, y: f32, period: f32, octaves: u32) -> f32 {
    let (mut sum, mut amplitude, mut frequency, mut norm) = (0.0, 1.0, 1.0 / period as f64, 0.0);
    for _ in 0..octaves {
        sum += amplitude * perlin.get([x as f64 * frequency, y as f64 * frequency]) as f32;
        norm += amplitude;
        amplitude *= 0.5;
        frequency *= 2.0;
    }
    sum / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprint_matches_half_coverage() {
        let mut canvas = Canvas::from_fn(32, 32, |_, _| [0.0; 3]);
        let mask = canvas.fill(
            &Shape::Disc {
                cx: 16.0,
                cy: 16.0,
                r: 5.0,
            },
            [1.0; 3],
        );
        let area = mask.area() as f32;
        assert!(
            (area - std::f32::consts::PI * 25.0).abs() < 8.0,
            "area {area}"
        );
        let image = canvas.to_image(&mut crate::seed::rng_for(0, &[]), 0.0);
        assert_eq!(
            (image.get_pixel(16, 16).0[0], image.get_pixel(2, 2).0[0]),
            (255, 0)
        );
    }

    #[test]
    fn polygon_inside_is_negative() {
        let tri = Shape::Polygon {
            points: vec![(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)],
        };
        assert!(tri.distance(2.0, 2.0) < 0.0);
        assert!(tri.distance(9.0, 9.0) > 0.0);
    }
}
