//! A metal washer with a tab on a dark background (MVTec AD object layout) with cracks, chips,
//! rust spots and scratches. The tab's angle varies, so position matters to the model.

use std::f32::consts::TAU;

use noise::Perlin;
use rand::{Rng, RngExt};

use super::draw::{Canvas, Shape, fbm, scale};
use super::{Defective, Generator};

pub struct Washer {
    size: u32,
}

struct Pose {
    cx: f32,
    cy: f32,
    inner: f32,
    outer: f32,
}

impl Washer {
    pub fn new(size: u32) -> Self {
        Self { size }
    }

    fn draw(&self, rng: &mut impl Rng) -> (Canvas, Pose) {
        let s = self.size as f32;
        let jitter = 0.02 * s;
        let pose = Pose {
            cx: s / 2.0 + rng.random_range(-jitter..jitter),
            cy: s / 2.0 + rng.random_range(-jitter..jitter),
            inner: 0.15 * s,
            outer: 0.33 * s,
        };
        let perlin = Perlin::new(rng.random());
        let grain = (8.0 * s / 256.0).max(2.0);
        let mut canvas = Canvas::from_fn(self.size, self.size, |x, y| {
            scale(
                [0.13, 0.14, 0.16],
                1.0 + 0.25 * fbm(&perlin, x, y, grain * 3.0, 2),
            )
        });
        let light = rng.random_range(0.0..TAU);
        let tab_angle = rng.random_range(0.0..TAU);
        let (tx, ty) = (
            pose.cx + tab_angle.cos() * pose.outer,
            pose.cy + tab_angle.sin() * pose.outer,
        );
        let tab = Shape::Box {
            cx: tx,
            cy: ty,
            hw: 0.07 * s,
            hh: 0.045 * s,
            angle: tab_angle,
        };
        let ring = Shape::Ring {
            cx: pose.cx,
            cy: pose.cy,
            inner: pose.inner,
            outer: pose.outer,
        };
        let body = Shape::Subtract(
            Box::new(Shape::Subtract(
                Box::new(tab),
                Box::new(Shape::Disc {
                    cx: pose.cx,
                    cy: pose.cy,
                    r: pose.inner,
                }),
            )),
            Box::new(Shape::Disc {
                cx: tx + tab_angle.cos() * 0.03 * s,
                cy: ty + tab_angle.sin() * 0.03 * s,
                r: 0.018 * s,
            }),
        );
        let metal = |x: f32, y: f32, _| {
            let (dx, dy) = (x - pose.cx, y - pose.cy);
            let radial = ((dx.hypot(dy) - pose.inner) / (pose.outer - pose.inner)).clamp(0.0, 1.0);
            let b = 0.55
                + 0.18 * (dy.atan2(dx) - light).cos()
                + 0.12 * radial
                + 0.05 * fbm(&perlin, x, y, grain, 2);
            scale([0.72, 0.74, 0.78], b)
        };
        canvas.paint(&body, metal);
        canvas.paint(&ring, metal);
        (canvas, pose)
    }

    fn ring(pose: &Pose) -> Box<Shape> {
        Box::new(Shape::Ring {
            cx: pose.cx,
            cy: pose.cy,
            inner: pose.inner,
            outer: pose.outer,
        })
    }
}

impl Generator for Washer {
    fn name(&self) -> &'static str {
        "washer"
    }

    fn defect_types(&self) -> &'static [&'static str] {
        &["crack", "chip", "rust", "scratch"]
    }

    fn normal(&self, rng: &mut rand_chacha::ChaCha8Rng) -> Canvas {
        self.draw(rng).0
    }

    fn defective(&self, defect: &str, rng: &mut rand_chacha::ChaCha8Rng) -> Defective {
        let (mut canvas, pose) = self.draw(rng);
        let k = self.size as f32 / 256.0;
        let angle = rng.random_range(0.0..TAU);
        let at = |rho: f32| (pose.cx + angle.cos() * rho, pose.cy + angle.sin() * rho);
        let mask = match defect {
            "crack" => {
                let (a, b, c) = (
                    at(pose.inner - 2.0),
                    at((pose.inner + pose.outer) / 2.0),
                    at(pose.outer + 2.0),
                );
                let bend = rng.random_range(-6.0..6.0) * k;
                let points = vec![a, (b.0 - angle.sin() * bend, b.1 + angle.cos() * bend), c];
                let crack = Shape::Stroke {
                    points,
                    half_width: (1.1 * k).max(0.7),
                };
                canvas.fill(
                    &Shape::Intersect(Box::new(crack), Self::ring(&pose)),
                    [0.05, 0.05, 0.06],
                )
            }
            "chip" => {
                let (x, y) = at(pose.outer);
                let bite = Shape::random_blob(
                    rng,
                    x,
                    y,
                    0.06 * self.size as f32..0.09 * self.size as f32,
                    3,
                    0.2,
                );
                canvas.fill(
                    &Shape::Intersect(Box::new(bite), Self::ring(&pose)),
                    [0.13, 0.14, 0.16],
                )
            }
            "rust" => {
                let (x, y) = at(rng.random_range(
                    pose.inner + 0.03 * self.size as f32..pose.outer - 0.03 * self.size as f32,
                ));
                let spot = Shape::random_blob(
                    rng,
                    x,
                    y,
                    0.03 * self.size as f32..0.05 * self.size as f32,
                    4,
                    0.3,
                );
                canvas.fill(
                    &Shape::Intersect(Box::new(spot), Self::ring(&pose)),
                    [0.55, 0.27, 0.1],
                )
            }
            "scratch" => {
                let (x, y) = at((pose.inner + pose.outer) / 2.0);
                let line = Shape::random_curve(rng, x, y, 25.0 * k..45.0 * k, (0.9 * k).max(0.6));
                canvas.fill(
                    &Shape::Intersect(Box::new(line), Self::ring(&pose)),
                    [1.0, 1.0, 1.0],
                )
            }
            other => unreachable!("washer has no defect type {other}"),
        };
        Defective {
            canvas,
            regions: vec![(defect.to_string(), mask)],
        }
    }
}
