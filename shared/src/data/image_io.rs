use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use image::{ImageDecoder, ImageFormat, ImageReader, RgbImage};

use super::DataError;
use crate::raster::resize_rgb;
use crate::store::limits;

/// File extensions read as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Pixels one image may have (8192 × 8192): a larger one is refused from its header, before any
/// pixel is decoded. Industrial cameras and every public anomaly dataset stay far below it.
pub const IMAGE_PIXELS: u64 = 1 << 26;

/// Bytes that the full-size decodes in progress hold together, whatever the number of reading
/// threads: a decode waits until its share is free. The largest image allowed fits in it.
const DECODE_BUDGET_BYTES: u64 = 2 << 30;

/// A budget of bytes shared by decodes in progress.
struct DecodeBudget {
    capacity: u64,
    held: Mutex<u64>,
    freed: Condvar,
}

static DECODES: DecodeBudget = DecodeBudget::new(DECODE_BUDGET_BYTES);

/// A share of a decode budget, given back when dropped.
struct Share<'a> {
    budget: &'a DecodeBudget,
    bytes: u64,
}

impl DecodeBudget {
    const fn new(capacity: u64) -> DecodeBudget {
        DecodeBudget {
            capacity,
            held: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Waits until `bytes` (at most the whole budget) are free, and takes them.
    fn take(&self, bytes: u64) -> Share<'_> {
        let bytes = bytes.min(self.capacity);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        while *held + bytes > self.capacity {
            held = self.freed.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        *held += bytes;
        Share {
            budget: self,
            bytes,
        }
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        let mut held = self.budget.held.lock().unwrap_or_else(|e| e.into_inner());
        *held -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// Decodes the image at `path` and hands it to `use_image` while its share of the decode
/// budget is held (the decoded pixels and one 8-bit RGB copy of them).
fn with_decoded<T>(
    path: &Path,
    use_image: impl FnOnce(image::DynamicImage) -> T,
) -> Result<T, DataError> {
    let bytes = limits::read_file(path, limits::IMAGE_BYTES).map_err(|e| DataError::io(path, e))?;
    let reader = ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let unreadable = |source| DataError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(&bytes) {
        return Err(unreadable(image::ImageError::IoError(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "truncated JPEG: no end-of-image marker after the last scan",
        ))));
    }
    let decoder = reader.into_decoder().map_err(unreadable)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > IMAGE_PIXELS {
        return Err(DataError::TooManyPixels {
            path: path.to_path_buf(),
            width,
            height,
            limit: IMAGE_PIXELS,
        });
    }
    let _share = DECODES.take(pixels * (u64::from(decoder.color_type().bytes_per_pixel()) + 3));
    let image = image::DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    Ok(use_image(image))
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
    with_decoded(path, |image| image.to_rgb8())
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
    with_decoded(path, mask_samples)
}

fn mask_samples(image: image::DynamicImage) -> MaskSamples {
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
    MaskSamples {
        width,
        height,
        levels,
    }
}

/// Reads an image and resizes it to `width × height` (the training resolution).
pub fn read_rgb_resized(path: &Path, width: u32, height: u32) -> Result<RgbImage, DataError> {
    with_decoded(path, |image| resize_rgb(&image.to_rgb8(), width, height))
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// A BMP header declaring `width × height` 8-bit grey pixels, with no pixel data after it.
    fn bmp_header(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"BM".to_vec();
        let palette = 256 * 4;
        let offset = 14 + 40 + palette;
        bytes.extend_from_slice(&(offset as u32).to_le_bytes()); // file size (wrong on purpose)
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&(offset as u32).to_le_bytes());
        bytes.extend_from_slice(&40u32.to_le_bytes());
        bytes.extend_from_slice(&width.to_le_bytes());
        bytes.extend_from_slice(&height.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&8u16.to_le_bytes());
        bytes.extend_from_slice(&[0; 24]);
        for level in 0..=255u8 {
            bytes.extend_from_slice(&[level, level, level, 0]);
        }
        bytes
    }

    #[test]
    fn an_image_over_the_pixel_budget_is_refused_from_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let bomb = dir.path().join("bomb.bmp");
        std::fs::write(&bomb, bmp_header(23_000, 23_000)).unwrap();
        for error in [
            read_rgb(&bomb).unwrap_err(),
            read_rgb_resized(&bomb, 32, 32).unwrap_err(),
            read_mask(&bomb).err().unwrap(),
        ] {
            let message = error.to_string();
            assert!(
                matches!(error, DataError::TooManyPixels { .. }),
                "{message}"
            );
            assert!(
                message.contains("bomb.bmp") && message.contains("23000×23000"),
                "{message}"
            );
        }
        let small = dir.path().join("small.png");
        RgbImage::new(4, 3).save(&small).unwrap();
        assert_eq!(read_rgb(&small).unwrap().dimensions(), (4, 3));
    }

    #[test]
    fn decodes_wait_for_their_share_of_the_budget() {
        let budget = DecodeBudget::new(100);
        let first = budget.take(70);
        let second_taken = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _second = budget.take(70);
                second_taken.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                !second_taken.load(Ordering::SeqCst),
                "70 + 70 bytes do not fit in 100"
            );
            drop(first);
        });
        assert!(second_taken.load(Ordering::SeqCst));
        let _whole = budget.take(1_000);
        assert_eq!(
            *budget.held.lock().unwrap(),
            100,
            "a share is at most the budget"
        );
    }
}
