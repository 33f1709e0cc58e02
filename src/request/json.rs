//! A JSON object read without building a tree: the members the relay cares about are found
//! with their byte spans (everything else is validated and skipped, never copied), and an
//! edited object is produced as slices of the original plus the few new bytes.
//!
//! Keys are compared after unescaping (`"mod\u0065l"` is `model`, as the provider reads it),
//! and a field the relay reads that appears twice is an error: providers' parsers disagree
//! on which copy wins, so the relay cannot know which one it checked.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("the field {0} appears more than once")]
    Duplicate(&'static str),
}

/// One member the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: &'static str,
    /// Position among all members of the object.
    index: usize,
    /// The value's bytes.
    pub value: Range<usize>,
    /// Where the previous member's value ends (or just after `{` for the first member).
    prev_end: usize,
}

/// An object's members of interest, found in `bytes`.
#[derive(Debug, Clone)]
pub struct Object {
    bytes: Bytes,
    members: Vec<Member>,
    /// How many members the object has in all.
    count: usize,
    open: usize,
    close: usize,
}

impl Object {
    /// Reads `bytes` as one JSON object, noting the members named in `wanted`.
    pub fn parse(bytes: Bytes, wanted: &[&'static str]) -> Result<Object, ObjectError> {
        let text: &[u8] = &bytes;
        let open = text
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .filter(|&i| text[i] == b'{')
            .ok_or(ObjectError::NotAnObject)?;
        let close = text
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .ok_or(ObjectError::NotAnObject)?;
        let mut seed = Members {
            base: text.as_ptr() as usize,
            open,
            wanted,
            found: Vec::new(),
            count: 0,
            duplicate: None,
        };
        let mut de = serde_json::Deserializer::from_slice(text);
        let parsed = (&mut seed).deserialize(&mut de).and_then(|()| de.end());
        if let Some(name) = seed.duplicate {
            return Err(ObjectError::Duplicate(name));
        }
        parsed.map_err(|_| ObjectError::NotAnObject)?;
        Ok(Object {
            members: seed.found,
            count: seed.count,
            open,
            close,
            bytes,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// A member's value as raw JSON text.
    pub fn raw(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(|m| &self.bytes[m.value.clone()])
    }

    /// A member's value as its own bytes (shares the buffer).
    pub fn value_bytes(&self, name: &str) -> Option<Bytes> {
        self.get(name).map(|m| self.bytes.slice(m.value.clone()))
    }

    /// The object with the edit applied, as slices of the original and the new bytes.
    pub fn edited(&self, edit: &Edit) -> Spliced {
        let (remove, set) = (&edit.remove, &edit.set);
        let mut cut: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| remove.contains(&m.name) || set.iter().any(|(n, _)| *n == m.name))
            .collect();
        cut.sort_by_key(|m| m.index);
        let text: &[u8] = &self.bytes;
        let next_comma = |from: usize| {
            from + text[from..]
                .iter()
                .position(|&b| b == b',')
                .expect("a comma between members")
        };
        // Byte ranges of the original to leave out, in order and disjoint.
        let mut skip: Vec<Range<usize>> = Vec::with_capacity(cut.len());
        let leading = cut
            .iter()
            .enumerate()
            .take_while(|(i, m)| m.index == *i)
            .count();
        if leading > 0 {
            let last = cut[leading - 1];
            // The cut members that open the object go with the comma after them.
            let end = if last.index + 1 < self.count {
                next_comma(last.value.end) + 1
            } else {
                last.value.end
            };
            skip.push(self.open + 1..end);
        }
        for m in &cut[leading..] {
            // A later member goes with the comma before it.
            skip.push(next_comma(m.prev_end)..m.value.end);
        }
        let mut out = Spliced::default();
        let mut at = 0;
        for range in skip {
            out.push(self.bytes.slice(at..range.start));
            at = range.end;
        }
        out.push(self.bytes.slice(at..self.close));
        let mut any = self.count > cut.len();
        for (name, value) in set.iter() {
            let mut member = Vec::with_capacity(name.len() + 4);
            if any {
                member.push(b',');
            }
            member.extend_from_slice(serde_json::to_string(name).expect("a key").as_bytes());
            member.push(b':');
            out.push(Bytes::from(member));
            out.push(value.clone());
            any = true;
        }
        out.push(self.bytes.slice(self.close..));
        out
    }
}

/// Members to take out of an object, and members to write at its end (replacing any of
/// that name). Names are among those the object was parsed for.
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub remove: Vec<&'static str>,
    pub set: Vec<(&'static str, Bytes)>,
}

impl Edit {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty()
    }
}

/// A body made of slices: sent as they are, never joined, so a rewrite of a large body
/// costs the few bytes that changed.
#[derive(Debug, Clone, Default)]
pub struct Spliced {
    pub pieces: Vec<Bytes>,
    pub len: usize,
}

impl Spliced {
    fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len();
            self.pieces.push(piece);
        }
    }

    /// The whole, joined (for small bodies and tests).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for piece in &self.pieces {
            out.extend_from_slice(piece);
        }
        out
    }
}

struct Members<'w> {
    base: usize,
    open: usize,
    wanted: &'w [&'static str],
    found: Vec<Member>,
    count: usize,
    duplicate: Option<&'static str>,
}

impl<'de> DeserializeSeed<'de> for &mut Members<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut Members<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut prev_end = self.open + 1;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let raw: &'de RawValue = map.next_value()?;
            let start = raw.get().as_ptr() as usize - self.base;
            let end = start + raw.get().len();
            if let Some(name) = self.wanted.iter().find(|w| **w == key) {
                if self.found.iter().any(|m| m.name == *name) {
                    self.duplicate = Some(name);
                    return Err(de::Error::custom("duplicate field"));
                }
                self.found.push(Member {
                    name,
                    index: self.count,
                    value: start..end,
                    prev_end,
                });
            }
            self.count += 1;
            prev_end = end;
        }
        Ok(())
    }
}

/// A key, borrowed from the input unless it had escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    const WANTED: &[&str] = &["model", "max_tokens", "n", "stream"];

    fn parse(s: &str) -> Result<Object, ObjectError> {
        Object::parse(Bytes::from(s.to_string()), WANTED)
    }

    /// The edit as a tree would do it: the reference the spliced bytes must equal.
    fn expected(s: &str, edit: &Edit) -> Value {
        let mut map: Map<String, Value> = serde_json::from_str(s).unwrap();
        for name in edit.remove.iter().chain(edit.set.iter().map(|(n, _)| n)) {
            map.remove(*name);
        }
        for (name, value) in &edit.set {
            map.insert(name.to_string(), serde_json::from_slice(value).unwrap());
        }
        Value::Object(map)
    }

    #[test]
    fn members_are_found_with_their_values_and_escapes_are_read() {
        let o = parse(r#" { "messages": [1, {"model": "x"}], "mod\u0065l" : "gpt-4o", "n":2 } "#)
            .unwrap();
        assert_eq!(o.raw("model"), Some(&b"\"gpt-4o\""[..]));
        assert_eq!(o.raw("n"), Some(&b"2"[..]));
        assert_eq!(o.raw("stream"), None);
    }

    #[test]
    fn duplicates_of_read_fields_are_refused_others_are_not() {
        assert_eq!(
            parse(r#"{"stream":false,"stream":true}"#).unwrap_err(),
            ObjectError::Duplicate("stream")
        );
        assert_eq!(
            parse(r#"{"model":"a","mod\u0065l":"b"}"#).unwrap_err(),
            ObjectError::Duplicate("model")
        );
        assert!(parse(r#"{"other":1,"other":2}"#).is_ok());
        for bad in ["[]", "\"x\"", "{", r#"{"a":1} {}"#, "{\"a\":}", ""] {
            assert_eq!(parse(bad).unwrap_err(), ObjectError::NotAnObject, "{bad}");
        }
    }

    #[test]
    fn edits_splice_the_original_and_equal_a_tree_edit() {
        let bodies = [
            r#"{"model":"m","max_tokens":null,"messages":[],"n":3,"stream":true}"#,
            r#"{"max_tokens":9}"#,
            r#"{ "max_tokens" : 9 , "n" : 1 }"#,
            r#"{"n":1,"max_tokens":9,"a":{"b":[1,2]}}"#,
            r#"{"a":1,"max_tokens":9}"#,
            r#"{}"#,
            r#"{"a":1}"#,
            "{\n  \"stream\": true,\n  \"model\": \"m\",\n  \"x\": \"y\"\n}\n",
        ];
        let capped = || ("max_tokens", Bytes::from_static(b"64"));
        let edit = |remove: &[&'static str], set: Vec<(&'static str, Bytes)>| Edit {
            remove: remove.to_vec(),
            set,
        };
        let edits = [
            edit(&["max_tokens"], vec![]),
            edit(&[], vec![capped()]),
            edit(&["n", "model"], vec![capped()]),
            edit(&["stream", "model", "max_tokens", "n"], vec![]),
            edit(
                &["n"],
                vec![capped(), ("model", Bytes::from_static(b"\"z\""))],
            ),
        ];
        for body in bodies {
            let o = parse(body).unwrap();
            for edit in &edits {
                let spliced = o.edited(edit);
                let bytes = spliced.to_vec();
                assert_eq!(bytes.len(), spliced.len);
                let got: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    panic!("{body} {edit:?}: {e}: {}", String::from_utf8_lossy(&bytes))
                });
                assert_eq!(got, expected(body, edit), "{body} {edit:?}");
            }
        }
        let add_n = edit(&[], vec![("n", Bytes::from_static(b"1"))]);
        assert_eq!(
            parse("{\"x\":1}").unwrap().edited(&add_n).to_vec(),
            br#"{"x":1,"n":1}"#
        );
    }
}
