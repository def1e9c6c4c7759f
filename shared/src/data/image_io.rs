use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageFormat, ImageReader, RgbImage};

use super::DataError;
use crate::raster::resize_rgb;

/// File extensions read as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn decode(path: &Path) -> Result<image::DynamicImage, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let reader = ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(&bytes) {
        return Err(DataError::Unreadable {
            path: path.to_path_buf(),
            source: image::ImageError::IoError(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "truncated JPEG: no end-of-image marker after the last scan",
            )),
        });
    }
    reader.decode().map_err(|source| DataError::Unreadable {
        path: path.to_path_buf(),
        source,
    })
}

/// The JPEG decoder fills a cut-off file with grey instead of failing, so a truncated file is
/// recognised here: the last start-of-scan marker must be followed by an end-of-image marker.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .unwrap_or(0);
    bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Reads an image of any supported format and bit depth as 8-bit RGB.
pub fn read_rgb(path: &Path) -> Result<RgbImage, DataError> {
    Ok(decode(path)?.to_rgb8())
}

/// A mask read at its own bit depth: any non-zero sample marks a defect pixel (a 16-bit mask
/// holding 0 and 1 included), and each sample's 8-bit level (16-bit samples scaled down) keys
/// MVTec LOCO's defect types.
pub struct MaskSamples {
    pub width: u32,
    pub height: u32,
    /// Per pixel: 0 for defect-free, else the 8-bit level (at least 1 for any non-zero sample).
    pub levels: Vec<u8>,
}

/// Reads a mask at its own bit depth (see [`MaskSamples`]).
pub fn read_mask(path: &Path) -> Result<MaskSamples, DataError> {
    let image = decode(path)?;
    let (width, height) = (image.width(), image.height());
    let levels = match image {
        image::DynamicImage::ImageLuma8(gray) => gray.into_raw(),
        other => other
            .to_luma16()
            .into_raw()
            .into_iter()
            .map(|v| {
                if v == 0 {
                    0
                } else {
                    ((v as u32 + 128) / 257).max(1) as u8
                }
            })
            .collect(),
    };
    Ok(MaskSamples {
        width,
        height,
        levels,
    })
}

/// Reads an image and resizes it to `width × height` (the training resolution).
pub fn read_rgb_resized(path: &Path, width: u32, height: u32) -> Result<RgbImage, DataError> {
    Ok(resize_rgb(&read_rgb(path)?, width, height))
}

/// Reads and resizes many images on `threads` threads, keeping their order. Fails with the
/// first unreadable file in list order.
pub fn read_rgb_resized_all(
    paths: &[PathBuf],
    width: u32,
    height: u32,
    threads: usize,
) -> Result<Vec<RgbImage>, DataError> {
    crate::parallel::try_map(paths, threads, |p| read_rgb_resized(p, width, height))
}

/// Width and height from the file header, without decoding the pixels.
pub fn image_size(path: &Path) -> Result<(u32, u32), DataError> {
    let reader = ImageReader::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    reader
        .into_dimensions()
        .map_err(|source| DataError::Unreadable {
            path: path.to_path_buf(),
            source,
        })
}
