//! A tray of four compartments holding a fixed arrangement of coloured parts (MVTec LOCO AD
//! layout). Logical anomalies break the arrangement (missing, extra, misplaced, wrong colour);
//! structural ones damage a part or soil the tray.

use std::f32::consts::TAU;

use noise::Perlin;
use rand::{Rng, RngExt};

use super::draw::{Canvas, Rgb, Shape, fbm, scale};
use super::{Defective, Generator};
use crate::data::DefectSpec;
use crate::raster::Mask;

#[derive(Clone, Copy, PartialEq)]
enum Part {
    Disc,
    Square,
    Pair,
    Triangle,
}

const ARRANGEMENT: [(Part, Rgb); 4] = [
    (Part::Disc, [0.82, 0.16, 0.14]),
    (Part::Square, [0.18, 0.62, 0.24]),
    (Part::Pair, [0.16, 0.3, 0.8]),
    (Part::Triangle, [0.92, 0.8, 0.14]),
];

const WRONG_COLOURS: [Rgb; 3] = [[0.6, 0.2, 0.72], [0.1, 0.75, 0.8], [0.95, 0.5, 0.1]];

pub const LOGICAL: &[&str] = &[
    "missing_object",
    "extra_object",
    "misplaced_object",
    "wrong_colour",
];
pub const STRUCTURAL: &[&str] = &["scratch", "contamination"];

#[derive(Clone, Copy)]
struct Placement {
    part: Part,
    color: Rgb,
    cx: f32,
    cy: f32,
    angle: f32,
}

pub struct Tray {
    width: u32,
    height: u32,
}

impl Tray {
    pub fn new(size: u32) -> Self {
        Self {
            width: (size as f32 * 1.25).round() as u32,
            height: size,
        }
    }

    fn s(&self) -> f32 {
        self.height as f32
    }

    /// The defect types with their LOCO `defects_config.json` entries, scaled to the image size.
    pub fn defect_specs(&self) -> Vec<DefectSpec> {
        let s = self.s();
        let small_disc_area = (std::f32::consts::PI * (0.055 * s).powi(2)).round() as f64;
        let contamination = (30.0 * (s / 256.0).powi(2)).round().max(1.0) as f64;
        let spec = |name: &str, value: u8, threshold: f64, relative: bool| DefectSpec {
            defect_name: name.to_string(),
            pixel_value: value,
            saturation_threshold: threshold,
            relative_saturation: relative,
        };
        vec![
            spec("missing_object", 251, small_disc_area, false),
            spec("extra_object", 252, 1.0, true),
            spec("misplaced_object", 253, 1.0, true),
            spec("wrong_colour", 254, 1.0, true),
            spec("scratch", 255, 1.0, true),
            spec("contamination", 250, contamination, false),
        ]
    }

    fn slot_centre(&self, slot: usize) -> (f32, f32) {
        let (w, h) = (self.width as f32, self.height as f32);
        (
            w * (0.25 + 0.5 * (slot % 2) as f32),
            h * (0.25 + 0.5 * (slot / 2) as f32),
        )
    }

    fn arrangement(&self, rng: &mut impl Rng) -> Vec<Placement> {
        let jitter = 0.02 * self.s();
        (0..4)
            .map(|slot| {
                let (cx, cy) = self.slot_centre(slot);
                let (part, color) = ARRANGEMENT[slot];
                Placement {
                    part,
                    color,
                    cx: cx + rng.random_range(-jitter..jitter),
                    cy: cy + rng.random_range(-jitter..jitter),
                    angle: rng.random_range(-0.18..0.18),
                }
            })
            .collect()
    }

    fn shapes(&self, p: &Placement) -> Vec<Shape> {
        let s = self.s();
        match p.part {
            Part::Disc => vec![Shape::Disc {
                cx: p.cx,
                cy: p.cy,
                r: 0.11 * s,
            }],
            Part::Square => vec![Shape::Box {
                cx: p.cx,
                cy: p.cy,
                hw: 0.09 * s,
                hh: 0.09 * s,
                angle: p.angle,
            }],
            Part::Pair => {
                let (dx, dy) = (p.angle.cos() * 0.07 * s, p.angle.sin() * 0.07 * s);
                vec![
                    Shape::Disc {
                        cx: p.cx - dx,
                        cy: p.cy - dy,
                        r: 0.055 * s,
                    },
                    Shape::Disc {
                        cx: p.cx + dx,
                        cy: p.cy + dy,
                        r: 0.055 * s,
                    },
                ]
            }
            Part::Triangle => {
                let points = (0..3)
                    .map(|i| {
                        let a = p.angle - std::f32::consts::FRAC_PI_2 + i as f32 * TAU / 3.0;
                        (p.cx + a.cos() * 0.12 * s, p.cy + a.sin() * 0.12 * s)
                    })
                    .collect();
                vec![Shape::Polygon { points }]
            }
        }
    }

    fn draw_part(&self, canvas: &mut Canvas, p: &Placement) -> Mask {
        let mut footprint = Mask::new(self.width, self.height);
        for shape in self.shapes(p) {
            let shadow = shape_offset(&shape, 0.012 * self.s());
            canvas.paint(&shadow, |_, _, c| scale(c, 0.8));
            footprint.union(&canvas.paint(&shape, |x, y, _| {
                let shade = 1.0 - 0.15 * ((x - p.cx) + (y - p.cy)) / (0.2 * self.s());
                scale(p.color, shade.clamp(0.75, 1.15))
            }));
        }
        footprint
    }

    fn footprint(&self, p: &Placement) -> Mask {
        let mut scratch = Canvas::from_fn(self.width, self.height, |_, _| [0.0; 3]);
        self.draw_part(&mut scratch, p)
    }

    fn tray(&self, rng: &mut impl Rng) -> Canvas {
        let (w, h) = (self.width as f32, self.height as f32);
        let perlin = Perlin::new(rng.random());
        let gain = rng.random_range(0.96..1.04);
        let grain = 10.0 * self.s() / 256.0;
        let mut canvas = Canvas::from_fn(self.width, self.height, |x, y| {
            let gradient = 1.0 + 0.05 * (x / w - 0.5);
            scale(
                [0.84, 0.82, 0.78],
                gain * gradient * (1.0 + 0.03 * fbm(&perlin, x, y, grain, 2)),
            )
        });
        let line = (0.012 * self.s()).max(0.8);
        let walls = [
            vec![(w * 0.5, h * 0.03), (w * 0.5, h * 0.97)],
            vec![(w * 0.03, h * 0.5), (w * 0.97, h * 0.5)],
            vec![
                (w * 0.02, h * 0.02),
                (w * 0.98, h * 0.02),
                (w * 0.98, h * 0.98),
                (w * 0.02, h * 0.98),
                (w * 0.02, h * 0.02),
            ],
        ];
        for points in walls {
            canvas.fill(
                &Shape::Stroke {
                    points,
                    half_width: line,
                },
                [0.55, 0.53, 0.5],
            );
        }
        canvas
    }

    fn compose(&self, rng: &mut impl Rng, parts: &[Placement]) -> (Canvas, Vec<Mask>) {
        let mut canvas = self.tray(rng);
        let footprints = parts
            .iter()
            .map(|p| self.draw_part(&mut canvas, p))
            .collect();
        (canvas, footprints)
    }
}

fn shape_offset(shape: &Shape, d: f32) -> Shape {
    match shape {
        Shape::Disc { cx, cy, r } => Shape::Disc {
            cx: cx + d,
            cy: cy + d,
            r: *r,
        },
        Shape::Box {
            cx,
            cy,
            hw,
            hh,
            angle,
        } => Shape::Box {
            cx: cx + d,
            cy: cy + d,
            hw: *hw,
            hh: *hh,
            angle: *angle,
        },
        Shape::Polygon { points } => Shape::Polygon {
            points: points.iter().map(|(x, y)| (x + d, y + d)).collect(),
        },
        other => other.clone(),
    }
}

impl Generator for Tray {
    fn name(&self) -> &'static str {
        "tray"
    }

    fn defect_types(&self) -> &'static [&'static str] {
        &[
            "missing_object",
            "extra_object",
            "misplaced_object",
            "wrong_colour",
            "scratch",
            "contamination",
        ]
    }

    fn normal(&self, rng: &mut rand_chacha::ChaCha8Rng) -> Canvas {
        let parts = self.arrangement(rng);
        self.compose(rng, &parts).0
    }

    fn defective(&self, defect: &str, rng: &mut rand_chacha::ChaCha8Rng) -> Defective {
        let mut parts = self.arrangement(rng);
        let slot = rng.random_range(0..4);
        let s = self.s();
        let named = |mask: Mask| (defect.to_string(), mask);
        match defect {
            "missing_object" => {
                let gone = parts.remove(slot);
                let (canvas, _) = self.compose(rng, &parts);
                Defective {
                    canvas,
                    regions: vec![named(self.footprint(&gone))],
                }
            }
            "extra_object" => {
                let (cx, cy) = self.slot_centre(slot);
                let (sx, sy) = (
                    if rng.random_bool(0.5) { 1.0 } else { -1.0 },
                    if rng.random_bool(0.5) { 1.0 } else { -1.0 },
                );
                let extra = Placement {
                    part: Part::Disc,
                    color: ARRANGEMENT[2].1,
                    cx: cx + sx * 0.19 * s,
                    cy: cy + sy * 0.14 * s,
                    angle: 0.0,
                };
                let (mut canvas, _) = self.compose(rng, &parts);
                let mut small = Mask::new(self.width, self.height);
                let disc = Shape::Disc {
                    cx: extra.cx,
                    cy: extra.cy,
                    r: 0.055 * s,
                };
                small.union(&canvas.fill(&disc, extra.color));
                Defective {
                    canvas,
                    regions: vec![named(small)],
                }
            }
            "misplaced_object" => {
                let other = (slot + rng.random_range(1..4)) % 4;
                let expected = (self.footprint(&parts[slot]), self.footprint(&parts[other]));
                let (a, b) = (parts[slot], parts[other]);
                parts[slot] = Placement {
                    part: b.part,
                    color: b.color,
                    ..a
                };
                parts[other] = Placement {
                    part: a.part,
                    color: a.color,
                    ..b
                };
                let (canvas, footprints) = self.compose(rng, &parts);
                let (mut first, mut second) = expected;
                first.union(&footprints[slot]);
                second.union(&footprints[other]);
                Defective {
                    canvas,
                    regions: vec![named(first), named(second)],
                }
            }
            "wrong_colour" => {
                parts[slot].color = WRONG_COLOURS[rng.random_range(0..WRONG_COLOURS.len())];
                let (canvas, footprints) = self.compose(rng, &parts);
                Defective {
                    canvas,
                    regions: vec![named(footprints[slot].clone())],
                }
            }
            "scratch" => {
                let p = parts[slot];
                let (mut canvas, _) = self.compose(rng, &parts);
                let target = self.shapes(&p).swap_remove(0);
                let line =
                    Shape::random_curve(rng, p.cx, p.cy, 0.18 * s..0.26 * s, (0.01 * s).max(0.7));
                let mask = canvas.fill(
                    &Shape::Intersect(Box::new(line), Box::new(target)),
                    [0.1, 0.1, 0.1],
                );
                Defective {
                    canvas,
                    regions: vec![named(mask)],
                }
            }
            "contamination" => {
                let (w, h) = (self.width as f32, self.height as f32);
                let (cx, cy) = (
                    rng.random_range(0.1 * w..0.9 * w),
                    rng.random_range(0.1 * h..0.9 * h),
                );
                let (mut canvas, _) = self.compose(rng, &parts);
                let blob = Shape::random_blob(rng, cx, cy, 0.025 * s..0.045 * s, 4, 0.35);
                let mask = canvas.fill(&blob, [0.35, 0.22, 0.1]);
                Defective {
                    canvas,
                    regions: vec![named(mask)],
                }
            }
            other => unreachable!("tray has no defect type {other}"),
        }
    }
}
