//! Reading checkpoints of format 1, written by the Burn 0.21 build: each section was a Burn
//! 0.21 record in named MessagePack, converted here to the burnpack bytes format 2 holds.
//!
//! A module record is a tree of named fields whose leaves are parameters (`{id, param: {bytes,
//! shape, dtype}}`); it becomes one tensor per parameter, named by its path (`encoder.stem.
//! weight`, `blocks.0.conv1.weight`) and keeping its id, as Burn 0.22 records a module. An
//! optimiser record maps each parameter id to its state (`{V1: {Rank4: {momentum: {velocity}}}}`
//! for SGD, `moment_1`, `moment_2` and `time` for Adam); it becomes Burn 0.22's flattened state:
//! `<id>.momentum.velocity` tensors, `<id>.momentum.time` and `<id>.__rank` scalars. The
//! learning-rate schedule's record has no counterpart (the schedule is computed from the step)
//! and is dropped.

use burn_pack::{Bytes, DType, Scalar, Tensor, Writer};

/// The container format these sections come in.
pub const FORMAT_VERSION: u32 = 1;

/// Sections whose record has no counterpart in format 2.
const DROPPED_SECTIONS: [&str; 1] = ["lr_schedule"];

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("MessagePack ends early")]
    Truncated,
    #[error("MessagePack type byte {0:#04x} is not used by Burn records")]
    UnknownType(u8),
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0}")]
    Shape(String),
    #[error("writing burnpack: {0}")]
    Pack(#[from] burn_pack::Error),
}

/// Burn records nest a few levels per module; anything deeper is not one.
const MAX_DEPTH: usize = 64;

/// Format 2's bytes for section `name` of a format-1 checkpoint, or `None` for a section that
/// format 2 no longer keeps.
pub fn convert_section(name: &str, bytes: &[u8]) -> Result<Option<Vec<u8>>, ConvertError> {
    if DROPPED_SECTIONS.contains(&name) {
        return Ok(None);
    }
    let mut reader = MsgPack { bytes, at: 0 };
    let record = reader.value(0)?;
    let item = record
        .field("item")
        .ok_or_else(|| ConvertError::Shape("no `item` in the record".into()))?;
    let Value::Map(entries) = item else {
        return Err(ConvertError::Shape("the record's item is not a map".into()));
    };
    let mut out = Packed::default();
    if !entries.is_empty()
        && entries
            .iter()
            .all(|(_, state)| optimizer_state(state).is_some())
    {
        for (id, state) in entries {
            let id = param_id(id)?;
            let (rank, state) = optimizer_state(state).expect("checked above");
            out.scalars
                .push((format!("{id}.__rank"), Scalar::from(rank)));
            out.leaves(&id.to_string(), state, Some(id))?;
        }
    } else {
        out.module(String::new(), item, 0)?;
    }
    let mut writer = Writer::new(out.tensors);
    for (key, value) in out.scalars {
        writer = writer.with_scalar(&key, value);
    }
    Ok(Some(writer.into_bytes()?.to_vec()))
}

/// `{V1: {Rank<n>: state}}`: the rank and the state of one parameter's optimiser entry.
fn optimizer_state(value: &Value) -> Option<(usize, &Value)> {
    let Value::Map(version) = value else {
        return None;
    };
    let [(Value::Str(v), Value::Map(ranked))] = version.as_slice() else {
        return None;
    };
    let [(Value::Str(rank), state)] = ranked.as_slice() else {
        return None;
    };
    if !v.starts_with('V') {
        return None;
    }
    Some((rank.strip_prefix("Rank")?.parse().ok()?, state))
}

/// Burn 0.21 wrote a parameter id as its eight little-endian bytes in DNSSEC base32 (digits,
/// then `a` to `v`, no padding).
fn param_id(value: &Value) -> Result<u64, ConvertError> {
    let Value::Str(text) = value else {
        return Err(ConvertError::Shape("a parameter id is not a string".into()));
    };
    let bad = || ConvertError::Shape(format!("`{text}` is not a Burn parameter id"));
    if text.len() != 13 {
        return Err(bad());
    }
    let mut bits: u128 = 0;
    for c in text.bytes() {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'v' => c - b'a' + 10,
            _ => return Err(bad()),
        };
        bits = (bits << 5) | u128::from(digit);
    }
    // 13 digits carry 65 bits: the eight bytes, then one bit of padding.
    if bits & 1 != 0 {
        return Err(bad());
    }
    let bytes = ((bits >> 1) as u64).to_be_bytes();
    Ok(u64::from_le_bytes(bytes))
}

#[derive(Default)]
struct Packed {
    tensors: Vec<Tensor>,
    scalars: Vec<(String, Scalar)>,
}

impl Packed {
    fn tensor(&mut self, path: String, leaf: &Value, id: Option<u64>) -> Result<(), ConvertError> {
        let shape_error = |what: &str| ConvertError::Shape(format!("`{path}`: {what}"));
        let (Some(Value::Bin(bytes)), Some(Value::Array(shape)), Some(Value::Str(dtype))) = (
            leaf.field("bytes"),
            leaf.field("shape"),
            leaf.field("dtype"),
        ) else {
            return Err(shape_error("not a tensor"));
        };
        if dtype != "F32" {
            return Err(shape_error(&format!("element type {dtype}, not F32")));
        }
        let shape = shape
            .iter()
            .map(|d| match d {
                Value::UInt(n) => usize::try_from(*n).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| shape_error("a dimension is not a size"))?;
        let elements = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| shape_error("too many elements"))?;
        if elements.checked_mul(4) != Some(bytes.len()) {
            return Err(shape_error(&format!(
                "{} bytes for shape {shape:?}",
                bytes.len()
            )));
        }
        self.tensors.push(Tensor::new(
            path,
            DType::F32,
            shape,
            id,
            Bytes::from_bytes_vec(bytes.clone()),
        ));
        Ok(())
    }

    /// A module's fields: a parameter is `{id, param}`; `None` is a constant or an absent
    /// optional module; lists are numbered.
    fn module(&mut self, path: String, value: &Value, depth: usize) -> Result<(), ConvertError> {
        if depth > MAX_DEPTH {
            return Err(ConvertError::TooDeep);
        }
        match value {
            Value::Map(_) => {
                if let (Some(id), Some(param)) = (value.field("id"), value.field("param")) {
                    return self.tensor(path, param, Some(param_id(id)?));
                }
                let Value::Map(fields) = value else {
                    unreachable!()
                };
                for (name, field) in fields {
                    let Value::Str(name) = name else {
                        return Err(ConvertError::Shape(format!(
                            "`{path}`: a field name is not a string"
                        )));
                    };
                    self.module(join(&path, name), field, depth + 1)?;
                }
                Ok(())
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.module(join(&path, &i.to_string()), item, depth + 1)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// An optimiser state's leaves: tensors, and counters as scalars.
    fn leaves(&mut self, path: &str, value: &Value, id: Option<u64>) -> Result<(), ConvertError> {
        match value {
            Value::Map(fields) if value.field("bytes").is_some() => {
                let _ = fields;
                self.tensor(path.to_string(), value, id)
            }
            Value::Map(fields) => {
                for (name, field) in fields {
                    let Value::Str(name) = name else {
                        return Err(ConvertError::Shape(format!(
                            "`{path}`: a field name is not a string"
                        )));
                    };
                    self.leaves(&join(path, name), field, id)?;
                }
                Ok(())
            }
            Value::UInt(n) => {
                self.scalars.push((path.to_string(), Scalar::UInt(*n)));
                Ok(())
            }
            Value::Int(n) => {
                self.scalars.push((path.to_string(), Scalar::Int(*n)));
                Ok(())
            }
            Value::Nil => Ok(()),
            _ => Err(ConvertError::Shape(format!(
                "`{path}`: not a tensor or a counter"
            ))),
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// The MessagePack values Burn's records use.
#[derive(Debug, PartialEq)]
enum Value {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

impl Value {
    fn field(&self, name: &str) -> Option<&Value> {
        let Value::Map(entries) = self else {
            return None;
        };
        entries
            .iter()
            .find(|(key, _)| matches!(key, Value::Str(k) if k == name))
            .map(|(_, value)| value)
    }
}

struct MsgPack<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl MsgPack<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ConvertError> {
        let end = self.at.checked_add(n).ok_or(ConvertError::Truncated)?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(ConvertError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn uint(&mut self, width: usize) -> Result<u64, ConvertError> {
        Ok(self
            .take(width)?
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b)))
    }

    fn length(&mut self, width: usize) -> Result<usize, ConvertError> {
        let n = usize::try_from(self.uint(width)?).map_err(|_| ConvertError::Truncated)?;
        // Every element takes at least one byte: a longer count than the bytes left is damage.
        if n > self.bytes.len() - self.at {
            return Err(ConvertError::Truncated);
        }
        Ok(n)
    }

    fn value(&mut self, depth: usize) -> Result<Value, ConvertError> {
        if depth > MAX_DEPTH {
            return Err(ConvertError::TooDeep);
        }
        let tag = self.take(1)?[0];
        Ok(match tag {
            0x00..=0x7f => Value::UInt(u64::from(tag)),
            0x80..=0x8f => self.map(usize::from(tag & 0x0f), depth)?,
            0x90..=0x9f => self.array(usize::from(tag & 0x0f), depth)?,
            0xa0..=0xbf => self.string(usize::from(tag & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.length(1 << (tag - 0xc4))?;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xca => Value::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.uint(8)?)),
            0xcc..=0xcf => Value::UInt(self.uint(1 << (tag - 0xcc))?),
            0xd0..=0xd3 => {
                let width = 1 << (tag - 0xd0);
                let raw = self.uint(width)?;
                let shift = 64 - 8 * width as u32;
                Value::Int(((raw << shift) as i64) >> shift)
            }
            0xd9..=0xdb => {
                let n = self.length(1 << (tag - 0xd9))?;
                self.string(n)?
            }
            0xdc | 0xdd => {
                let n = self.length(2 << (tag - 0xdc))?;
                self.array(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.length(2 << (tag - 0xde))?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(i64::from(tag as i8)),
            other => return Err(ConvertError::UnknownType(other)),
        })
    }

    fn string(&mut self, n: usize) -> Result<Value, ConvertError> {
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec())
            .map(Value::Str)
            .map_err(|_| ConvertError::Shape("a string is not UTF-8".into()))
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, ConvertError> {
        (0..n)
            .map(|_| self.value(depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::Array)
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, ConvertError> {
        (0..n)
            .map(|_| Ok((self.value(depth + 1)?, self.value(depth + 1)?)))
            .collect::<Result<_, _>>()
            .map(Value::Map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_messagepack_types_records_use() {
        let bytes = [
            0x83, 0xa1, b'a', 0xcd, 0x01, 0x00, 0xa1, b'b', 0x92, 0xff, 0xc0, 0xa1, b'c', 0xc4,
            0x02, 0x01, 0x02,
        ];
        let value = MsgPack {
            bytes: &bytes,
            at: 0,
        }
        .value(0)
        .unwrap();
        assert_eq!(value.field("a"), Some(&Value::UInt(256)));
        assert_eq!(
            value.field("b"),
            Some(&Value::Array(vec![Value::Int(-1), Value::Nil]))
        );
        assert_eq!(value.field("c"), Some(&Value::Bin(vec![1, 2])));
        for cut in 0..bytes.len() {
            let mut reader = MsgPack {
                bytes: &bytes[..cut],
                at: 0,
            };
            assert!(reader.value(0).is_err(), "{cut} bytes");
        }
    }

    #[test]
    fn decodes_burn_0_21_parameter_ids() {
        // 1 as eight little-endian bytes, in DNSSEC base32.
        assert_eq!(param_id(&Value::Str("0400000000000".into())).unwrap(), 1);
        for wrong in ["040000000000", "0400000000001", "04000000000w0"] {
            assert!(param_id(&Value::Str(wrong.into())).is_err(), "{wrong}");
        }
    }
}
