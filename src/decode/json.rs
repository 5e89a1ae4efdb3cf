//! JSON records, read straight from the bytes: a `serde` visitor walks the object once and
//! looks each name up in the tree of configured fields, descending only into objects that hold
//! one. Nothing is collected into an untyped `serde_json::Value`; serde_json's recursion limit
//! bounds the depth of what is skipped.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::fields::{FieldTree, Node, RawRecord, Scalar};
use super::{Decoder, Reject};

/// The configured fields of one JSON message; `Ok(None)` for valid JSON that is not an object.
pub(super) fn read(dec: &Decoder, value: &[u8]) -> Result<Option<RawRecord>, Reject> {
    let mut de = serde_json::Deserializer::from_slice(value);
    let raw = RecordSeed { dec }
        .deserialize(&mut de)
        .map_err(|e| reject(&e))?;
    de.end().map_err(|e| reject(&e))?;
    Ok(raw)
}

/// The reason for a serde_json failure. serde_json has no error kind for a number beyond f64,
/// only its message, which the tests pin.
fn reject(e: &serde_json::Error) -> Reject {
    if e.to_string().starts_with("number out of range") {
        Reject::NumberOutOfRange
    } else {
        Reject::MalformedJson
    }
}

/// Visits the top level: `Some` for an object, `None` for any other (valid) JSON value.
struct RecordSeed<'a> {
    dec: &'a Decoder,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Option<RawRecord>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = Option<RawRecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let spec = &self.dec.spec;
        let mut rec = RawRecord::new(spec.features.len(), spec.passthrough.len());
        read_fields(&mut map, &self.dec.fields, self.dec, &mut rec)?;
        Ok(Some(rec))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The entries of one object: configured names are read (or descended into), others skipped.
fn read_fields<'de, A: MapAccess<'de>>(
    map: &mut A,
    tree: &FieldTree,
    dec: &Decoder,
    rec: &mut RawRecord,
) -> Result<(), A::Error> {
    let mut next = 0;
    while let Some(node) = map.next_key_seed(NameSeed {
        tree,
        next: &mut next,
    })? {
        match node {
            None => {
                map.next_value::<IgnoredAny>()?;
            }
            Some(node) => map.next_value_seed(ValueSeed { node, dec, rec })?,
        }
    }
    Ok(())
}

/// Maps a name to its node without allocating. `next` is the place after the name found last
/// in this object (see `FieldTree::find`).
struct NameSeed<'a, 'n> {
    tree: &'a FieldTree,
    next: &'n mut usize,
}

impl<'de, 'a> DeserializeSeed<'de> for NameSeed<'a, '_> {
    type Value = Option<&'a Node>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'a> Visitor<'de> for NameSeed<'a, '_> {
    type Value = Option<&'a Node>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.tree.find(v, self.next))
    }
}

/// The value of a configured name: given to the roles of the field, or, for an object with
/// configured fields below, read further.
struct ValueSeed<'a, 'r> {
    node: &'a Node,
    dec: &'a Decoder,
    rec: &'r mut RawRecord,
}

impl ValueSeed<'_, '_> {
    fn set(self, v: Scalar<'_>) {
        let spec = &self.dec.spec;
        self.rec.set(
            &self.node.roles,
            &v,
            &spec.time_format,
            &self.dec.pass_types,
        );
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.set(Scalar::Null);
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.set(Scalar::Null);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.set(Scalar::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.set(Scalar::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.set(Scalar::UInt(v));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.set(Scalar::Float(v));
        Ok(())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        self.set(Scalar::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.set(Scalar::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.node.below.is_empty() {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        } else {
            read_fields(&mut map, &self.node.below, self.dec, self.rec)?;
        }
        self.set(Scalar::Nested);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.set(Scalar::Nested);
        Ok(())
    }
}
