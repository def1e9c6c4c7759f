//! A woven textile surface (MVTec AD texture layout) with holes, pulled threads, stains and cuts.

use noise::Perlin;
use rand::{Rng, RngExt};

use super::draw::{Canvas, Shape, fbm, mix, scale};
use super::{Defective, Generator};

pub struct Weave {
    size: u32,
}

impl Weave {
    pub fn new(size: u32) -> Self {
        Self { size }
    }

    fn k(&self) -> f32 {
        self.size as f32 / 256.0
    }

    fn surface(&self, rng: &mut impl Rng) -> Canvas {
        let period = (16.0 * self.k()).max(4.0);
        let (phase_x, phase_y) = (rng.random_range(0.0..period), rng.random_range(0.0..period));
        let base = [
            0.78 + rng.random_range(-0.02..0.02),
            0.66,
            0.50 + rng.random_range(-0.02..0.02),
        ];
        let gain = rng.random_range(0.95..1.05);
        let perlin = Perlin::new(rng.random());
        let grain = (6.0 * self.k()).max(2.0);
        Canvas::from_fn(self.size, self.size, |x, y| {
            let (u, v) = ((x + phase_x) / period, (y + phase_y) / period);
            let over_horizontal = (u.floor() as i64 + v.floor() as i64).rem_euclid(2) == 0;
            let across = if over_horizontal {
                v.fract()
            } else {
                u.fract()
            };
            let profile = (std::f32::consts::PI * across).sin().powf(0.6);
            let brightness = 0.55 + 0.35 * profile + 0.08 * fbm(&perlin, x, y, grain, 2);
            scale(base, brightness * gain)
        })
    }
}

impl Generator for Weave {
    fn name(&self) -> &'static str {
        "weave"
    }

    fn defect_types(&self) -> &'static [&'static str] {
        &["hole", "thread", "stain", "cut"]
    }

    fn normal(&self, rng: &mut rand_chacha::ChaCha8Rng) -> Canvas {
        self.surface(rng)
    }

    fn defective(&self, defect: &str, rng: &mut rand_chacha::ChaCha8Rng) -> Defective {
        let mut canvas = self.surface(rng);
        let (k, s) = (self.k(), self.size as f32);
        let (cx, cy) = (
            rng.random_range(0.2 * s..0.8 * s),
            rng.random_range(0.2 * s..0.8 * s),
        );
        let mask = match defect {
            "hole" => {
                let shape = Shape::random_blob(rng, cx, cy, 6.0 * k..14.0 * k, 4, 0.25);
                let depth = rng.random_range(0.08..0.2);
                canvas.paint(&shape, |_, _, c| scale(c, depth))
            }
            "thread" => {
                let shape =
                    Shape::random_curve(rng, cx, cy, 40.0 * k..90.0 * k, (1.6 * k).max(0.8));
                canvas.fill(&shape, [0.95, 0.9, 0.7])
            }
            "stain" => {
                let shape = Shape::random_blob(rng, cx, cy, 10.0 * k..22.0 * k, 5, 0.3);
                let tint = [0.45, 0.22, 0.12];
                canvas.paint(&shape, |_, _, c| {
                    mix(
                        c,
                        [
                            c[0] * tint[0] * 1.6,
                            c[1] * tint[1] * 1.6,
                            c[2] * tint[2] * 1.6,
                        ],
                        0.75,
                    )
                })
            }
            "cut" => {
                let length = rng.random_range(30.0 * k..70.0 * k);
                let angle = rng.random_range(0.0..std::f32::consts::PI);
                let (dx, dy) = (angle.cos() * length / 2.0, angle.sin() * length / 2.0);
                let shape = Shape::Stroke {
                    points: vec![(cx - dx, cy - dy), (cx + dx, cy + dy)],
                    half_width: (1.3 * k).max(0.7),
                };
                canvas.fill(&shape, [0.12, 0.1, 0.08])
            }
            other => unreachable!("weave has no defect type {other}"),
        };
        Defective {
            canvas,
            regions: vec![(defect.to_string(), mask)],
        }
    }
}
