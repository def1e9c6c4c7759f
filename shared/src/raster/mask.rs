/// A binary mask stored row-major, one byte per pixel (0 or 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

/// Inclusive-exclusive pixel rectangle `[x0, x1) × [y0, y1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundingBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl BoundingBox {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
}

impl Mask {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize],
        }
    }

    pub fn full(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![1; width as usize * height as usize],
        }
    }

    /// Builds a mask from any per-pixel values, `true` meaning set.
    pub fn from_fn(width: u32, height: u32, mut f: impl FnMut(u32, u32) -> bool) -> Self {
        let mut data = Vec::with_capacity(width as usize * height as usize);
        for y in 0..height {
            for x in 0..width {
                data.push(u8::from(f(x, y)));
            }
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// Wraps row-major bytes; any non-zero byte is a set pixel.
    pub fn from_bytes(width: u32, height: u32, bytes: Vec<u8>) -> Self {
        assert_eq!(
            bytes.len(),
            width as usize * height as usize,
            "mask byte count"
        );
        let data = bytes.into_iter().map(|b| u8::from(b != 0)).collect();
        Self {
            width,
            height,
            data,
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Row-major 0/1 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    pub fn get(&self, x: u32, y: u32) -> bool {
        self.data[y as usize * self.width as usize + x as usize] != 0
    }

    pub fn set(&mut self, x: u32, y: u32, value: bool) {
        self.data[y as usize * self.width as usize + x as usize] = u8::from(value);
    }

    pub fn area(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.data.iter().all(|&v| v == 0)
    }

    /// Pixel-wise AND with another mask of the same size.
    pub fn intersect(&mut self, other: &Mask) {
        assert_eq!(
            (self.width, self.height),
            (other.width, other.height),
            "mask sizes"
        );
        for (a, b) in self.data.iter_mut().zip(&other.data) {
            *a &= *b;
        }
    }

    /// Pixel-wise OR with another mask of the same size.
    pub fn union(&mut self, other: &Mask) {
        assert_eq!(
            (self.width, self.height),
            (other.width, other.height),
            "mask sizes"
        );
        for (a, b) in self.data.iter_mut().zip(&other.data) {
            *a |= *b;
        }
    }

    /// Smallest rectangle holding every set pixel, `None` for an empty mask.
    pub fn bounding_box(&self) -> Option<BoundingBox> {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut bbox: Option<BoundingBox> = None;
        for y in 0..h {
            let row = &self.data[y * w..(y + 1) * w];
            let Some(first) = row.iter().position(|&v| v != 0) else {
                continue;
            };
            let last = row.iter().rposition(|&v| v != 0).unwrap_or(first);
            let (x0, x1, y) = (first as u32, last as u32 + 1, y as u32);
            bbox = Some(match bbox {
                None => BoundingBox {
                    x0,
                    y0: y,
                    x1,
                    y1: y + 1,
                },
                Some(b) => BoundingBox {
                    x0: b.x0.min(x0),
                    y0: b.y0,
                    x1: b.x1.max(x1),
                    y1: y + 1,
                },
            });
        }
        bbox
    }

    /// Indices (row-major) of the set pixels, ascending.
    pub fn set_indices(&self) -> Vec<u32> {
        self.data
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0)
            .map(|(i, _)| i as u32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounding_box_and_area() {
        let mut m = Mask::new(8, 6);
        assert_eq!(m.bounding_box(), None);
        m.set(2, 1, true);
        m.set(5, 4, true);
        m.set(3, 2, true);
        assert_eq!(m.area(), 3);
        assert_eq!(
            m.bounding_box(),
            Some(BoundingBox {
                x0: 2,
                y0: 1,
                x1: 6,
                y1: 5
            })
        );
        assert_eq!(m.set_indices(), vec![10, 19, 37]);
    }

    #[test]
    fn union_and_intersection() {
        let a0 = Mask::from_fn(4, 1, |x, _| x < 2);
        let b = Mask::from_fn(4, 1, |x, _| x >= 1);
        let mut a = a0.clone();
        a.intersect(&b);
        assert_eq!(a.as_bytes(), &[0, 1, 0, 0]);
        let mut a = a0;
        a.union(&b);
        assert_eq!(a.as_bytes(), &[1, 1, 1, 1]);
    }
}
