//! Area under a piecewise-linear curve up to an integration limit, as the MVTec evaluations
//! compute it: trapezoids up to the last point below the limit, plus the trapezoid to the
//! limit with `y` interpolated there; and the origin every threshold curve starts from.

/// The curve's values with the point before the first threshold (nothing predicted) prepended.
pub(crate) fn with_origin(values: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len() + 1);
    out.push(0.0);
    out.extend(values.iter().map(|v| v.clamp(0.0, 1.0)));
    out
}

/// `∫ y dx` over `x ∈ [x[0], x_max]` (all of it when `x_max` is `None`). `x` must be ascending;
/// repeated `x` values are allowed (vertical steps). Non-finite points are skipped.
pub fn trapezoid(x: &[f64], y: &[f64], x_max: Option<f64>) -> f64 {
    assert_eq!(x.len(), y.len(), "one y per x");
    let points: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .collect();
    let mut area = 0.0;
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        match x_max {
            Some(limit) if x1 > limit => {
                if x0 < limit {
                    let y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0);
                    area += 0.5 * (y0 + y_limit) * (limit - x0);
                }
                break;
            }
            _ => area += 0.5 * (y0 + y1) * (x1 - x0),
        }
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_truncated_areas() {
        let (x, y) = ([0.0, 0.5, 1.0], [0.0, 1.0, 1.0]);
        assert!((trapezoid(&x, &y, None) - 0.75).abs() < 1e-12);
        // up to 0.25: triangle with y(0.25) = 0.5
        assert!((trapezoid(&x, &y, Some(0.25)) - 0.0625).abs() < 1e-12);
        // a limit that is a point of the curve
        assert!((trapezoid(&x, &y, Some(0.5)) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn vertical_steps_add_nothing() {
        let (x, y) = ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 1.0, 1.0, 0.0, 0.0]);
        assert!((trapezoid(&x, &y, None) - 0.5).abs() < 1e-12);
    }
}
