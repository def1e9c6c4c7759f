/// Which neighbours join two set pixels into one component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connectivity {
    /// Edge neighbours only.
    Four,
    /// Edge and corner neighbours (scipy's `label` with a 3×3 structure of ones, as the
    /// MVTec AD PRO evaluation uses).
    Eight,
}

/// Connected-component labelling of a binary grid.
#[derive(Clone, Debug)]
pub struct Components {
    /// Per pixel: 0 for background, `1..=count` for the component it belongs to.
    pub labels: Vec<u32>,
    pub count: u32,
}

impl Components {
    /// Pixel count of every component, indexed by `label - 1`.
    pub fn areas(&self) -> Vec<u32> {
        let mut areas = vec![0u32; self.count as usize];
        for &l in &self.labels {
            if l > 0 {
                areas[l as usize - 1] += 1;
            }
        }
        areas
    }

    /// Label of the component with the most pixels (the first one on ties).
    pub fn largest(&self) -> Option<u32> {
        let areas = self.areas();
        let mut best: Option<(u32, u32)> = None;
        for (i, &a) in areas.iter().enumerate() {
            if best.is_none_or(|(_, ba)| a > ba) {
                best = Some((i as u32 + 1, a));
            }
        }
        best.map(|(label, _)| label)
    }
}

/// Labels the components of the set (non-zero) pixels of a row-major `width × height` grid,
/// numbering them in raster order of their first pixel.
pub fn label_components(
    set: &[u8],
    width: u32,
    height: u32,
    connectivity: Connectivity,
) -> Components {
    let (w, h) = (width as usize, height as usize);
    assert_eq!(set.len(), w * h, "grid size");
    let mut labels = vec![0u32; w * h];
    let mut count = 0u32;
    let mut stack: Vec<usize> = Vec::new();
    for start in 0..w * h {
        if set[start] == 0 || labels[start] != 0 {
            continue;
        }
        count += 1;
        labels[start] = count;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (x, y) = ((p % w) as isize, (p / w) as isize);
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    if (dx == 0 && dy == 0)
                        || (connectivity == Connectivity::Four && dx != 0 && dy != 0)
                    {
                        continue;
                    }
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let q = ny as usize * w + nx as usize;
                    if set[q] != 0 && labels[q] == 0 {
                        labels[q] = count;
                        stack.push(q);
                    }
                }
            }
        }
    }
    Components { labels, count }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_pixels_join_only_with_eight_connectivity() {
        #[rustfmt::skip]
        let grid = [
            1, 0, 0, 1,
            0, 1, 0, 1,
            0, 0, 0, 0,
            1, 1, 0, 0,
        ];
        let four = label_components(&grid, 4, 4, Connectivity::Four);
        assert_eq!(four.count, 4);
        let eight = label_components(&grid, 4, 4, Connectivity::Eight);
        assert_eq!(eight.count, 3);
        assert_eq!(eight.labels[0], eight.labels[5]);
        assert_eq!(eight.areas(), vec![2, 2, 2]);
        assert_eq!(eight.largest(), Some(1));
    }

    #[test]
    fn empty_grid_has_no_components() {
        let c = label_components(&[0; 9], 3, 3, Connectivity::Eight);
        assert_eq!(c.count, 0);
        assert_eq!(c.largest(), None);
    }
}
