//! A small PHP `serialize()` / `unserialize()` for the values CA keeps in its blob columns
//! (`ca_object_representations.media`, `ca_users.vars`, session variables, ...).
//!
//! Supported: `N;`, `b:`, `i:`, `d:`, `s:` (byte strings) and `a:` (ordered arrays with
//! integer or string keys). Objects (`O:`) and references are not: CA does not put them in the
//! columns this crate writes.

use anyhow::{Context, Result, bail};

/// A PHP value.
#[derive(Clone, Debug, PartialEq)]
pub enum Php {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A PHP string: bytes, usually UTF-8.
    Str(Vec<u8>),
    /// An ordered PHP array.
    Array(Vec<(Key, Php)>),
}

/// A PHP array key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Int(i64),
    Str(String),
}

impl Php {
    /// A string value.
    pub fn str(s: impl AsRef<str>) -> Php {
        Php::Str(s.as_ref().as_bytes().to_vec())
    }

    /// An associative array from `(key, value)` pairs, in order.
    pub fn assoc<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Php)>) -> Php {
        Php::Array(pairs.into_iter().map(|(k, v)| (Key::Str(k.into()), v)).collect())
    }

    /// A list (keys 0, 1, 2, ...).
    pub fn list(items: impl IntoIterator<Item = Php>) -> Php {
        Php::Array(items.into_iter().enumerate().map(|(i, v)| (Key::Int(i as i64), v)).collect())
    }

    /// The value under string key `key`, when this is an array that has it.
    pub fn get(&self, key: &str) -> Option<&Php> {
        match self {
            Php::Array(items) => items.iter().find_map(|(k, v)| match k {
                Key::Str(s) if s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The string content (lossy UTF-8), for strings and numbers.
    pub fn as_string(&self) -> Option<String> {
        match self {
            Php::Str(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Php::Int(i) => Some(i.to_string()),
            Php::Float(f) => Some(f.to_string()),
            _ => None,
        }
    }

    /// The integer value, for ints and numeric strings.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Php::Int(i) => Some(*i),
            Php::Float(f) => Some(*f as i64),
            Php::Str(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn items(&self) -> Option<&[(Key, Php)]> {
        match self {
            Php::Array(items) => Some(items),
            _ => None,
        }
    }
}

impl From<&str> for Php {
    fn from(s: &str) -> Php {
        Php::str(s)
    }
}
impl From<String> for Php {
    fn from(s: String) -> Php {
        Php::Str(s.into_bytes())
    }
}
impl From<i64> for Php {
    fn from(i: i64) -> Php {
        Php::Int(i)
    }
}
impl From<u64> for Php {
    fn from(i: u64) -> Php {
        Php::Int(i as i64)
    }
}
impl From<u32> for Php {
    fn from(i: u32) -> Php {
        Php::Int(i64::from(i))
    }
}
impl From<usize> for Php {
    fn from(i: usize) -> Php {
        Php::Int(i as i64)
    }
}
impl From<f64> for Php {
    fn from(f: f64) -> Php {
        Php::Float(f)
    }
}
impl From<bool> for Php {
    fn from(b: bool) -> Php {
        Php::Bool(b)
    }
}

/// `serialize($v)` as PHP 7.1+ writes it (`serialize_precision = -1`).
pub fn serialize(v: &Php) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut Vec<u8>, v: &Php) {
    match v {
        Php::Null => out.extend_from_slice(b"N;"),
        Php::Bool(b) => out.extend_from_slice(if *b { b"b:1;" } else { b"b:0;" }),
        Php::Int(i) => {
            out.extend_from_slice(b"i:");
            out.extend_from_slice(i.to_string().as_bytes());
            out.push(b';');
        }
        Php::Float(f) => {
            out.extend_from_slice(b"d:");
            let s = if f.is_nan() {
                "NAN".to_string()
            } else if f.is_infinite() {
                if *f > 0.0 { "INF".to_string() } else { "-INF".to_string() }
            } else {
                // Rust's Display is the shortest string that round-trips, like PHP's -1 precision.
                f.to_string()
            };
            out.extend_from_slice(s.as_bytes());
            out.push(b';');
        }
        Php::Str(b) => {
            out.extend_from_slice(b"s:");
            out.extend_from_slice(b.len().to_string().as_bytes());
            out.extend_from_slice(b":\"");
            out.extend_from_slice(b);
            out.extend_from_slice(b"\";");
        }
        Php::Array(items) => {
            out.extend_from_slice(b"a:");
            out.extend_from_slice(items.len().to_string().as_bytes());
            out.extend_from_slice(b":{");
            for (k, v) in items {
                match k {
                    Key::Int(i) => write_value(out, &Php::Int(*i)),
                    Key::Str(s) => write_value(out, &Php::str(s)),
                }
                write_value(out, v);
            }
            out.push(b'}');
        }
    }
}

/// `unserialize($bytes)` for the subset described in the module docs.
pub fn unserialize(bytes: &[u8]) -> Result<Php> {
    let mut p = Parser { b: bytes, pos: 0 };
    let v = p.value().with_context(|| format!("PHP unserialize failed at byte {}", p.pos))?;
    if p.pos != bytes.len() {
        bail!("PHP unserialize: {} trailing bytes after the value", bytes.len() - p.pos);
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn byte(&mut self) -> Result<u8> {
        let c = *self.b.get(self.pos).context("unexpected end of input")?;
        self.pos += 1;
        Ok(c)
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        let got = self.byte()?;
        if got != c {
            bail!("expected {:?}, found {:?}", c as char, got as char);
        }
        Ok(())
    }

    /// Bytes up to (not including) `end`, which is consumed.
    fn until(&mut self, end: u8) -> Result<&[u8]> {
        let start = self.pos;
        let rel = self.b[start..].iter().position(|&c| c == end).with_context(|| format!("missing {:?}", end as char))?;
        self.pos = start + rel + 1;
        Ok(&self.b[start..start + rel])
    }

    fn number<T: std::str::FromStr>(&mut self, end: u8) -> Result<T> {
        let raw = self.until(end)?;
        let s = std::str::from_utf8(raw).context("number is not ASCII")?;
        s.parse().ok().with_context(|| format!("bad number {s:?}"))
    }

    fn value(&mut self) -> Result<Php> {
        let tag = self.byte()?;
        match tag {
            b'N' => {
                self.expect(b';')?;
                Ok(Php::Null)
            }
            b'b' => {
                self.expect(b':')?;
                let n: u8 = self.number(b';')?;
                Ok(Php::Bool(n != 0))
            }
            b'i' => {
                self.expect(b':')?;
                Ok(Php::Int(self.number(b';')?))
            }
            b'd' => {
                self.expect(b':')?;
                let raw = self.until(b';')?;
                let s = std::str::from_utf8(raw).context("float is not ASCII")?;
                let f = match s {
                    "NAN" => f64::NAN,
                    "INF" => f64::INFINITY,
                    "-INF" => f64::NEG_INFINITY,
                    _ => s.parse().ok().with_context(|| format!("bad float {s:?}"))?,
                };
                Ok(Php::Float(f))
            }
            b's' => {
                self.expect(b':')?;
                let len: usize = self.number(b':')?;
                self.expect(b'"')?;
                let end = self.pos.checked_add(len).filter(|&e| e <= self.b.len()).context("string runs past the end")?;
                let s = self.b[self.pos..end].to_vec();
                self.pos = end;
                self.expect(b'"')?;
                self.expect(b';')?;
                Ok(Php::Str(s))
            }
            b'a' => {
                self.expect(b':')?;
                let n: usize = self.number(b':')?;
                self.expect(b'{')?;
                let mut items = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    let k = match self.value()? {
                        Php::Int(i) => Key::Int(i),
                        Php::Str(s) => Key::Str(String::from_utf8_lossy(&s).into_owned()),
                        other => bail!("array key must be int or string, got {other:?}"),
                    };
                    items.push((k, self.value()?));
                }
                self.expect(b'}')?;
                Ok(Php::Array(items))
            }
            other => bail!("unsupported PHP type tag {:?}", other as char),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = Php::assoc([
            ("name", Php::str("Säule \"B\"; {x}")),
            ("n", Php::Int(-42)),
            ("f", Php::Float(0.25)),
            ("t", Php::Bool(true)),
            ("z", Php::Null),
            ("list", Php::list([Php::Int(1), Php::str("two")])),
        ]);
        let s = serialize(&v);
        assert!(s.starts_with(b"a:6:{s:4:\"name\";s:15:\"S\xc3\xa4ule"));
        assert_eq!(unserialize(&s).unwrap(), v);
    }

    #[test]
    fn php_format() {
        assert_eq!(serialize(&Php::list([Php::str("a")])), b"a:1:{i:0;s:1:\"a\";}");
        assert_eq!(serialize(&Php::Float(1.5)), b"d:1.5;");
        assert!(unserialize(b"a:1:{i:0;s:5:\"a\";}").is_err());
        assert!(unserialize(b"i:1;x").is_err());
    }
}
