//! Anomaly maps on disk: one-channel 32-bit float TIFF at the original image size, in the
//! layout the official MVTec LOCO evaluation reads (`<maps>/<category>/test/<kind>/<id>.tiff`),
//! and `<maps>/maps.json`, how the model that wrote them scores an image.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tiff::ColorType;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::encoder::{TiffEncoder, colortype::Gray32Float};

use super::ImageScore;
use crate::store::layout::MAPS_INFO_FILE;
use crate::store::limits;

/// Far more than the few fields of a maps description; a larger file is not one.
const MAPS_INFO_LIMIT: u64 = 64 * 1024;

/// What a folder of maps was scored with (`<maps>/maps.json`): `slsg predict` and `slsg fit`
/// write it, so that an evaluation of those maps takes each image's score as the model did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapsInfo {
    /// The image score of the model that wrote the maps (from its card).
    pub image_score: ImageScore,
}

impl MapsInfo {
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a maps description serialises");
        bytes.push(b'\n');
        bytes
    }

    /// `<maps>/maps.json`, or `None` where the maps come without one (another tool's).
    pub fn read(maps: &Path) -> Result<Option<MapsInfo>, MapError> {
        let path = maps.join(MAPS_INFO_FILE);
        let io = |source| MapError::Io {
            path: path.clone(),
            source,
        };
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAPS_INFO_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAPS_INFO_LIMIT {
            return Err(MapError::Unsupported {
                path,
                message: format!("over {MAPS_INFO_LIMIT} bytes; not a maps description"),
            });
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| MapError::Unsupported {
                path,
                message: format!("not a maps description: {e}"),
            })
    }

    /// Writes `<maps>/maps.json`, through a temporary file and a rename as the maps are.
    pub fn write(&self, maps: &Path) -> Result<(), MapError> {
        let path = maps.join(MAPS_INFO_FILE);
        let temporary = path.with_extension("json.partial");
        std::fs::create_dir_all(maps)
            .and_then(|()| std::fs::write(&temporary, self.to_json()))
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|source| MapError::Io { path, source })
    }
}

/// A row-major score map.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyMap {
    pub width: u32,
    pub height: u32,
    pub values: Vec<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable TIFF: {source}")]
    Tiff {
        path: PathBuf,
        source: tiff::TiffError,
    },
    #[error("{path}: {message}")]
    Unsupported { path: PathBuf, message: String },
}

/// Where the map of test image `<kind>/<id>` of `category` is written.
pub fn map_path(root: &Path, category: &str, kind: &str, id: &str) -> PathBuf {
    root.join(category)
        .join("test")
        .join(kind)
        .join(format!("{id}.tiff"))
}

/// The map of a test image if one exists, with any of the extensions the official evaluation
/// accepts (`.tif`, `.tiff`, either case).
pub fn find_map(root: &Path, category: &str, kind: &str, id: &str) -> Option<PathBuf> {
    let dir = root.join(category).join("test").join(kind);
    ["tiff", "tif", "TIFF", "TIF"]
        .iter()
        .map(|ext| dir.join(format!("{id}.{ext}")))
        .find(|p| p.is_file())
}

/// A map as the bytes of a one-channel 32-bit float TIFF.
pub fn encode_tiff(map: &AnomalyMap) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    let mut encoder = TiffEncoder::new(&mut bytes).expect("encoding into memory cannot fail");
    encoder
        .write_image::<Gray32Float>(map.width, map.height, &map.values)
        .expect("encoding into memory cannot fail");
    bytes.into_inner()
}

/// Writes a map as a one-channel 32-bit float TIFF, through a temporary file and a rename so
/// a reader never sees half a map.
pub fn write_tiff(path: &Path, map: &AnomalyMap) -> Result<(), MapError> {
    let io = |source| MapError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let temporary = path.with_extension("tiff.partial");
    std::fs::write(&temporary, encode_tiff(map)).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

/// Reads a one-channel TIFF of any numeric sample type as `f32`; rejects multi-channel images
/// and non-finite scores. Its size, from the header, must be `expected` (width, height) when
/// given and within [`crate::data::IMAGE_PIXELS`], before any sample is decoded.
pub fn read_tiff(path: &Path, expected: Option<(u32, u32)>) -> Result<AnomalyMap, MapError> {
    let io = |source| MapError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limits::MAP_BYTES {
        return Err(MapError::Unsupported {
            path: path.to_path_buf(),
            message: format!(
                "{size} bytes, over the limit of {} bytes for a map",
                limits::MAP_BYTES
            ),
        });
    }
    let tiff_error = |source| MapError::Tiff {
        path: path.to_path_buf(),
        source,
    };
    let mut decoder = Decoder::new(BufReader::new(file)).map_err(tiff_error)?;
    let (width, height) = decoder.dimensions().map_err(tiff_error)?;
    if let Some((expected_width, expected_height)) = expected
        && (width, height) != (expected_width, expected_height)
    {
        return Err(MapError::Unsupported {
            path: path.to_path_buf(),
            message: format!(
                "map is {width}×{height} but its test image is {expected_width}×{expected_height}"
            ),
        });
    }
    if u64::from(width) * u64::from(height) > crate::data::IMAGE_PIXELS {
        return Err(MapError::Unsupported {
            path: path.to_path_buf(),
            message: format!(
                "map is {width}×{height}, over the limit of {} pixels",
                crate::data::IMAGE_PIXELS
            ),
        });
    }
    let colortype = decoder.colortype().map_err(tiff_error)?;
    if !matches!(colortype, ColorType::Gray(_)) {
        return Err(MapError::Unsupported {
            path: path.to_path_buf(),
            message: format!("one channel expected, found {colortype:?}"),
        });
    }
    let values: Vec<f32> = match decoder.read_image().map_err(tiff_error)? {
        DecodingResult::F32(v) => v,
        DecodingResult::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        DecodingResult::U8(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::U16(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::U32(v) => v.into_iter().map(|x| x as f32).collect(),
        DecodingResult::I8(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::I16(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::I32(v) => v.into_iter().map(|x| x as f32).collect(),
        other => {
            let kind = match other {
                DecodingResult::F16(_) => "16-bit float",
                DecodingResult::U64(_) => "64-bit unsigned",
                DecodingResult::I64(_) => "64-bit signed",
                _ => "this",
            };
            return Err(MapError::Unsupported {
                path: path.to_path_buf(),
                message: format!("{kind} samples are not read; write the map as 32-bit float"),
            });
        }
    };
    if values.len() != width as usize * height as usize {
        return Err(MapError::Unsupported {
            path: path.to_path_buf(),
            message: format!("{} samples for {width}×{height} pixels", values.len()),
        });
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(MapError::Unsupported {
            path: path.to_path_buf(),
            message: format!(
                "non-finite score at pixel ({}, {})",
                i % width as usize,
                i / width as usize
            ),
        });
    }
    Ok(AnomalyMap {
        width,
        height,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_tiff_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = map_path(dir.path(), "cat", "good", "000");
        let map = AnomalyMap {
            width: 3,
            height: 2,
            values: vec![0.0, 0.25, -1.5, 3.0e-7, 1.0, 0.5],
        };
        write_tiff(&path, &map).unwrap();
        assert_eq!(read_tiff(&path, None).unwrap(), map);
        assert_eq!(find_map(dir.path(), "cat", "good", "000"), Some(path));
        assert_eq!(find_map(dir.path(), "cat", "good", "001"), None);
    }

    /// A little-endian TIFF header declaring a `side × side` 32-bit float map whose samples
    /// are not there.
    fn tiff_header(side: u32) -> Vec<u8> {
        let entries: [(u16, u16, u32); 10] = [
            (256, 4, side),
            (257, 4, side),
            (258, 3, 32),
            (259, 3, 1),
            (262, 3, 1),
            (273, 4, 8 + 2 + 10 * 12 + 4),
            (277, 3, 1),
            (278, 4, side),
            (279, 4, side.saturating_mul(side).saturating_mul(4)),
            (339, 3, 3),
        ];
        let mut bytes = b"II*\0".to_vec();
        bytes.extend_from_slice(&8u32.to_le_bytes());
        bytes.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, value) in entries {
            bytes.extend_from_slice(&tag.to_le_bytes());
            bytes.extend_from_slice(&kind.to_le_bytes());
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes
    }

    #[test]
    fn a_maps_size_is_checked_from_its_header_before_any_sample_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000.tiff");
        std::fs::write(&path, tiff_header(16_000)).unwrap();
        let err = read_tiff(&path, Some((10, 10))).unwrap_err().to_string();
        assert!(
            err.contains("000.tiff")
                && err.contains("map is 16000×16000 but its test image is 10×10"),
            "{err}"
        );
        let err = read_tiff(&path, None).unwrap_err().to_string();
        assert!(err.contains("over the limit of"), "{err}");
    }

    #[test]
    fn a_maps_description_round_trips_and_a_wrong_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(MapsInfo::read(dir.path()).unwrap(), None);
        let info = MapsInfo {
            image_score: ImageScore::Top100,
        };
        info.write(dir.path()).unwrap();
        assert_eq!(MapsInfo::read(dir.path()).unwrap(), Some(info));
        let path = dir.path().join(MAPS_INFO_FILE);
        for bad in [
            &b"{\"image_score\": \"median\"}"[..],
            b"{\"image_score\": \"max\", \"extra\": 1}",
            b"\x00\x01",
            &vec![b' '; 100_000],
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = MapsInfo::read(dir.path()).unwrap_err().to_string();
            assert!(err.contains("maps.json"), "{err}");
        }
    }

    #[test]
    fn corrupt_tiff_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.tiff");
        let map = AnomalyMap {
            width: 64,
            height: 64,
            values: vec![0.5; 64 * 64],
        };
        write_tiff(&path, &map).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        let err = read_tiff(&path, None).unwrap_err().to_string();
        assert!(err.contains("broken.tiff"), "{err}");
        std::fs::write(&path, b"not a tiff at all").unwrap();
        assert!(
            read_tiff(&path, None)
                .unwrap_err()
                .to_string()
                .contains("broken.tiff")
        );
    }
}
