//! How many bytes are read of each kind of object or file, store or disk: a reader stops at
//! its kind's limit with an error naming the key, so a huge or hostile object costs no memory.

use std::io::Read;
use std::path::Path;

use super::Key;

/// A job's `result.json`: its summary, the same bound as a completion on the wire.
pub const RESULT_BYTES: u64 = 1 << 20;
/// Any other JSON document: journals (`state.json`), plans, cards, manifests of a dataset's
/// images (`data.json`), maps' scores (`maps.json`), the service's runs.
pub const DOCUMENT_BYTES: u64 = 64 << 20;
/// Append-only histories (`curve.jsonl`, `history.jsonl`): a line per logged step or decision.
pub const HISTORY_BYTES: u64 = 256 << 20;
/// A config (`config.toml`, `--config`, a submitted cluster config).
pub const CONFIG_BYTES: u64 = 1 << 20;
/// Weights and checkpoints (`.ckpt`): both networks at the paper's width are far below it.
pub const CHECKPOINT_BYTES: u64 = 4 << 30;
/// An anomaly map (`.tiff`, `.tif`): a 4096² map of 32-bit floats is 64 MiB.
pub const MAP_BYTES: u64 = 256 << 20;
/// An image file (`.png`, `.jpg`, `.jpeg`, `.bmp`), before its pixel budget is checked.
pub const IMAGE_BYTES: u64 = 256 << 20;
/// The run report (`report.html`) and other pages.
pub const PAGE_BYTES: u64 = 64 << 20;
/// Anything else, such as a registry alias (`current`, `previous`).
pub const OTHER_BYTES: u64 = 1 << 20;

/// The limit for reading `key`, by its name: the layout's names and a dataset's files.
pub fn for_key(key: &Key) -> u64 {
    for_name(key.name())
}

/// The limit for a file or object called `name`.
pub fn for_name(name: &str) -> u64 {
    if name == "result.json" {
        return RESULT_BYTES;
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "json" => DOCUMENT_BYTES,
        "jsonl" => HISTORY_BYTES,
        "toml" => CONFIG_BYTES,
        "ckpt" => CHECKPOINT_BYTES,
        "tiff" | "tif" => MAP_BYTES,
        "png" | "jpg" | "jpeg" | "bmp" => IMAGE_BYTES,
        "html" => PAGE_BYTES,
        _ => OTHER_BYTES,
    }
}

/// An object or file over its limit.
#[derive(Debug, thiserror::Error)]
#[error("{size} is over the limit of {limit} bytes for this kind of file")]
pub struct TooLarge {
    /// What was known of the size: `N bytes`, or `more than N bytes` when reading stopped.
    pub size: String,
    pub limit: u64,
}

/// A file's bytes, reading at most `limit` of them.
pub fn read_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let declared = file.metadata()?.len();
    if declared > limit {
        return Err(too_large(format!("{declared} bytes"), limit));
    }
    let mut bytes = Vec::with_capacity(declared as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(format!("more than {limit} bytes"), limit));
    }
    Ok(bytes)
}

/// A file's bytes, reading at most its kind's limit (by its name).
pub fn read_named(path: &Path) -> std::io::Result<Vec<u8>> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    read_file(path, for_name(name))
}

/// A file's text, reading at most its kind's limit (by its name).
pub fn read_text(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_named(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn too_large(size: String, limit: u64) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::FileTooLarge, TooLarge { size, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_limit() {
        assert_eq!(for_name("result.json"), RESULT_BYTES);
        assert_eq!(for_name("state.json"), DOCUMENT_BYTES);
        assert_eq!(for_name("curve.jsonl"), HISTORY_BYTES);
        assert_eq!(for_name("segnet-00000042.ckpt"), CHECKPOINT_BYTES);
        assert_eq!(for_name("000.TIFF"), MAP_BYTES);
        assert_eq!(for_name("001.JPG"), IMAGE_BYTES);
        assert_eq!(for_name("current"), OTHER_BYTES);
    }

    #[test]
    fn reading_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.json");
        std::fs::write(&file, vec![b' '; 101]).unwrap();
        assert_eq!(read_file(&file, 101).unwrap().len(), 101);
        let error = read_file(&file, 100).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(error.to_string().contains("101 bytes"), "{error}");
        assert!(error.to_string().contains("limit of 100 bytes"), "{error}");
    }
}
