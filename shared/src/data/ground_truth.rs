use std::path::{Path, PathBuf};

use super::{
    DataError, DefectSpec, DefectsConfig, GroundTruthSource, TestImage, image_io::image_size,
    read_mask,
};
use crate::raster::Mask;

/// The ground truth of one test image at its original size.
#[derive(Clone, Debug)]
pub struct GroundTruth {
    pub width: u32,
    pub height: u32,
    /// One entry per defect region: the whole mask for MVTec AD and BTAD, one per PNG of the
    /// image's folder for MVTec LOCO AD. Empty for a defect-free image.
    pub regions: Vec<GroundTruthRegion>,
}

#[derive(Clone, Debug)]
pub struct GroundTruthRegion {
    pub source: PathBuf,
    /// Row-major indices of the region's pixels, ascending.
    pub pixels: Vec<u32>,
    /// The LOCO defect type, looked up from the region's pixel value.
    pub defect: Option<DefectSpec>,
}

impl GroundTruth {
    /// Reads the ground truth of a test image and checks it against the image's size.
    pub fn read(
        image: &TestImage,
        defects: Option<&DefectsConfig>,
    ) -> Result<GroundTruth, DataError> {
        let (width, height) = image_size(&image.path)?;
        let regions = match &image.ground_truth {
            None => Vec::new(),
            Some(GroundTruthSource::Mask(path)) => {
                let pixels = read_region(path, &image.path, width, height)?.0;
                if pixels.is_empty() {
                    Vec::new()
                } else {
                    vec![GroundTruthRegion {
                        source: path.clone(),
                        pixels,
                        defect: None,
                    }]
                }
            }
            Some(GroundTruthSource::Regions(dir)) => {
                read_regions(dir, &image.path, width, height, defects)?
            }
        };
        Ok(GroundTruth {
            width,
            height,
            regions,
        })
    }

    /// The union of every region as a binary mask.
    pub fn union_mask(&self) -> Mask {
        let mut mask = Mask::new(self.width, self.height);
        let bytes = mask.as_bytes_mut();
        for region in &self.regions {
            for &p in &region.pixels {
                bytes[p as usize] = 1;
            }
        }
        mask
    }
}

/// Reads one mask, returning its set pixels and its distinct non-zero values.
fn read_region(
    path: &Path,
    image: &Path,
    width: u32,
    height: u32,
) -> Result<(Vec<u32>, Vec<u8>), DataError> {
    let mask = read_mask(path)?;
    if (mask.width, mask.height) != (width, height) {
        return Err(DataError::MaskSizeMismatch {
            mask: path.to_path_buf(),
            image: image.to_path_buf(),
            mask_width: mask.width,
            mask_height: mask.height,
            image_width: width,
            image_height: height,
        });
    }
    let mut values = Vec::new();
    let mut pixels = Vec::new();
    for (i, &v) in mask.levels.iter().enumerate() {
        if v != 0 {
            pixels.push(i as u32);
            if !values.contains(&v) {
                values.push(v);
            }
        }
    }
    Ok((pixels, values))
}

fn read_regions(
    dir: &Path,
    image: &Path,
    width: u32,
    height: u32,
    defects: Option<&DefectsConfig>,
) -> Result<Vec<GroundTruthRegion>, DataError> {
    let invalid = |path: &Path, message: String| DataError::GroundTruthRegion {
        path: path.to_path_buf(),
        message,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(invalid(dir, "the folder holds no PNG region".into()));
    }
    let mut regions = Vec::with_capacity(files.len());
    for path in files {
        let (pixels, values) = read_region(&path, image, width, height)?;
        let value = match values.as_slice() {
            [] => return Err(invalid(&path, "the region is empty".into())),
            [v] => *v,
            many => {
                return Err(invalid(
                    &path,
                    format!("one pixel value expected per region, found {many:?}"),
                ));
            }
        };
        let defect = match defects {
            Some(config) => Some(config.by_pixel_value(value).cloned().ok_or_else(|| {
                invalid(
                    &path,
                    format!("pixel value {value} is not in defects_config.json"),
                )
            })?),
            None => None,
        };
        regions.push(GroundTruthRegion {
            source: path,
            pixels,
            defect,
        });
    }
    Ok(regions)
}
