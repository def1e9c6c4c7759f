use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{GrayImage, ImageFormat, ImageReader, RgbImage};

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

/// Reads an image as 8-bit grey levels (masks, ground-truth regions).
pub fn read_gray(path: &Path) -> Result<GrayImage, DataError> {
    Ok(decode(path)?.to_luma8())
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
