//! Avro records in Confluent's wire format, read straight into the event's fields.
//!
//! Each writer schema (parsed by the `apache-avro` crate) is compiled once, against the tree
//! of configured fields, into a [`Program`]: for every field of the record, either how to
//! read it (a configured field, or a record holding one) or how to skip it. Reading a record
//! then walks the bytes once, in the writer's field order, without building a value tree.
//! Fields are matched by name, so a producer may add, drop or reorder fields from one schema
//! version to the next. Recursive types are skipped through an arena of skip steps.

use std::borrow::Cow;
use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{RecordSchema, ResolvedSchema};

use super::fields::{FieldTree, Node, RawRecord, Role, Scalar};
use super::{Decoder, Reject};

/// What a Schema Registry answered for a schema id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaLookup {
    /// The schema, as the JSON text the registry returned.
    Found(String),
    /// The registry does not know the id.
    NotFound,
}

/// The schema id in Confluent's header: a zero byte, then 4 bytes big-endian.
pub fn schema_id(value: &[u8]) -> Option<u32> {
    match value {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// How to step over a value of one type. Named types are compiled once, so a recursive type
/// refers back to its own step.
#[derive(Debug, Clone)]
enum Skip {
    Null,
    Bool,
    Varint,
    Float,
    Double,
    Bytes,
    Fixed(usize),
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Record(Vec<usize>),
}

/// How to read the value of a configured field (or of a record holding one).
#[derive(Debug, Clone)]
enum Read {
    Leaf {
        roles: Vec<Role>,
        leaf: Leaf,
    },
    Record {
        roles: Vec<Role>,
        fields: Vec<FieldOp>,
    },
    Union(Vec<Read>),
}

#[derive(Debug, Clone)]
enum FieldOp {
    Skip(usize),
    Read(Read),
}

/// A value as the roles see it, by the writer's type.
#[derive(Debug, Clone)]
enum Leaf {
    Null,
    Bool,
    Long,
    Float,
    Double,
    Str,
    Enum(Vec<String>),
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    Date,
    /// Arrays, maps, bytes, fixed, decimals, records: not a scalar.
    Other(usize),
}

/// A writer schema compiled against the configured fields.
#[derive(Debug)]
pub(super) struct Program {
    fields: Vec<FieldOp>,
    skips: Vec<Skip>,
}

/// Deeper nesting than this is rejected rather than risk the stack.
const MAX_DEPTH: u32 = 128;

impl Program {
    pub fn compile(text: &str, dec: &Decoder) -> Result<Program, String> {
        let schema = Schema::parse_str(text).map_err(|e| e.to_string())?;
        let resolved = ResolvedSchema::try_from(&schema).map_err(|e| e.to_string())?;
        let mut c = Compiler {
            names: resolved.get_names(),
            skips: Vec::new(),
            named: HashMap::new(),
        };
        let Schema::Record(r) = &schema else {
            return Err("the top-level schema is not a record".into());
        };
        let fields = c.fields(r, &dec.fields)?;
        Ok(Program {
            fields,
            skips: c.skips,
        })
    }
}

struct Compiler<'s, 'n> {
    names: &'n HashMap<apache_avro::schema::Name, &'s Schema>,
    skips: Vec<Skip>,
    /// Skip steps of named types, by the address of their definition.
    named: HashMap<usize, usize>,
}

impl<'s> Compiler<'s, '_> {
    fn resolve(&self, s: &'s Schema) -> Result<&'s Schema, String> {
        match s {
            Schema::Ref { name } => self
                .names
                .get(name)
                .copied()
                .ok_or_else(|| format!("unknown type {name}")),
            other => Ok(other),
        }
    }

    fn fields(&mut self, r: &'s RecordSchema, tree: &FieldTree) -> Result<Vec<FieldOp>, String> {
        r.fields
            .iter()
            .map(|f| match tree.get(&f.name) {
                Some(node) => self.read(&f.schema, node).map(FieldOp::Read),
                None => self.skip(&f.schema).map(FieldOp::Skip),
            })
            .collect()
    }

    fn read(&mut self, s: &'s Schema, node: &Node) -> Result<Read, String> {
        Ok(match self.resolve(s)? {
            Schema::Record(r) if !node.below.is_empty() => Read::Record {
                roles: node.roles.clone(),
                fields: self.fields(r, &node.below)?,
            },
            Schema::Union(u) => Read::Union(
                u.variants()
                    .iter()
                    .map(|v| self.read(v, node))
                    .collect::<Result<_, _>>()?,
            ),
            other => Read::Leaf {
                roles: node.roles.clone(),
                leaf: self.leaf(other)?,
            },
        })
    }

    fn leaf(&mut self, s: &'s Schema) -> Result<Leaf, String> {
        use apache_avro::schema::UuidSchema;
        Ok(match s {
            Schema::Null => Leaf::Null,
            Schema::Boolean => Leaf::Bool,
            Schema::Int | Schema::Long | Schema::TimeMillis | Schema::TimeMicros => Leaf::Long,
            Schema::Float => Leaf::Float,
            Schema::Double => Leaf::Double,
            Schema::String | Schema::Uuid(UuidSchema::String) => Leaf::Str,
            Schema::Enum(e) => Leaf::Enum(e.symbols.clone()),
            Schema::TimestampMillis | Schema::LocalTimestampMillis => Leaf::TimestampMillis,
            Schema::TimestampMicros | Schema::LocalTimestampMicros => Leaf::TimestampMicros,
            Schema::TimestampNanos | Schema::LocalTimestampNanos => Leaf::TimestampNanos,
            Schema::Date => Leaf::Date,
            other => Leaf::Other(self.skip(other)?),
        })
    }

    fn skip(&mut self, s: &'s Schema) -> Result<usize, String> {
        use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
        let s = self.resolve(s)?;
        let key = s as *const Schema as usize;
        if let Some(&ix) = self.named.get(&key) {
            return Ok(ix);
        }
        let step = match s {
            Schema::Null => Skip::Null,
            Schema::Boolean => Skip::Bool,
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Skip::Varint,
            Schema::Float => Skip::Float,
            Schema::Double => Skip::Double,
            Schema::Bytes
            | Schema::String
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes) => Skip::Bytes,
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => Skip::Bytes,
                InnerDecimalSchema::Fixed(f) => Skip::Fixed(f.size),
            },
            Schema::Fixed(f) | Schema::Duration(f) => Skip::Fixed(f.size),
            Schema::Uuid(_) => Skip::Fixed(16),
            Schema::Array(a) => Skip::Array(self.skip(&a.items)?),
            Schema::Map(m) => Skip::Map(self.skip(&m.types)?),
            Schema::Union(u) => Skip::Union(
                u.variants()
                    .iter()
                    .map(|v| self.skip(v))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Record(r) => {
                // Registered before its fields, which may refer back to it.
                let ix = self.skips.len();
                self.skips.push(Skip::Null);
                self.named.insert(key, ix);
                let fields = r
                    .fields
                    .iter()
                    .map(|f| self.skip(&f.schema))
                    .collect::<Result<_, _>>()?;
                self.skips[ix] = Skip::Record(fields);
                return Ok(ix);
            }
            Schema::Ref { name } => return Err(format!("unresolved type {name}")),
        };
        self.skips.push(step);
        Ok(self.skips.len() - 1)
    }
}

/// The configured fields of one Avro message.
pub(super) fn read(dec: &Decoder, value: &[u8]) -> Result<RawRecord, Reject> {
    let id = schema_id(value).ok_or(Reject::NotAvro)?;
    let program = dec
        .schemas
        .get(&id)
        .and_then(Option::as_ref)
        .ok_or(Reject::UnknownSchema)?;
    let spec = &dec.spec;
    let mut rec = RawRecord::new(spec.features.len(), spec.passthrough.len());
    let body = &value[5..];
    let mut run = Run {
        cur: Cursor {
            buf: body,
            pos: 0,
            budget: body.len().saturating_mul(16).saturating_add(1024),
        },
        program,
        dec,
    };
    run.fields(&program.fields, &mut rec, 0)
        .map_err(|Malformed| Reject::MalformedAvro)?;
    if run.cur.pos != body.len() {
        return Err(Reject::MalformedAvro);
    }
    Ok(rec)
}

/// Bytes that do not follow the writer schema.
#[derive(Debug)]
struct Malformed;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Values left to read: arrays of empty items cost no bytes, so their length is bounded
    /// by this instead.
    budget: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(Malformed)?;
        let s = self.buf.get(self.pos..end).ok_or(Malformed)?;
        self.pos = end;
        Ok(s)
    }

    /// A zigzag-encoded variable-length long.
    fn long(&mut self) -> Result<i64, Malformed> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(Malformed)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        Err(Malformed)
    }

    fn len(&mut self) -> Result<usize, Malformed> {
        usize::try_from(self.long()?).map_err(|_| Malformed)
    }

    fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.len()?;
        self.take(n)
    }

    fn spend(&mut self, n: usize) -> Result<(), Malformed> {
        self.budget = self.budget.checked_sub(n).ok_or(Malformed)?;
        Ok(())
    }
}

struct Run<'a, 'p> {
    cur: Cursor<'a>,
    program: &'p Program,
    dec: &'p Decoder,
}

impl<'a> Run<'a, '_> {
    fn fields(
        &mut self,
        ops: &[FieldOp],
        rec: &mut RawRecord,
        depth: u32,
    ) -> Result<(), Malformed> {
        for op in ops {
            match op {
                FieldOp::Skip(ix) => self.skip(*ix, depth)?,
                FieldOp::Read(r) => self.read(r, rec, depth)?,
            }
        }
        Ok(())
    }

    fn read(&mut self, r: &Read, rec: &mut RawRecord, depth: u32) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        match r {
            Read::Leaf { roles, leaf } => {
                let v = self.leaf(leaf, depth)?;
                self.set(rec, roles, &v);
            }
            Read::Record { roles, fields } => {
                self.fields(fields, rec, depth + 1)?;
                self.set(rec, roles, &Scalar::Nested);
            }
            Read::Union(branches) => {
                let i = usize::try_from(self.cur.long()?).map_err(|_| Malformed)?;
                self.read(branches.get(i).ok_or(Malformed)?, rec, depth + 1)?;
            }
        }
        Ok(())
    }

    fn set(&self, rec: &mut RawRecord, roles: &[Role], v: &Scalar<'_>) {
        if !roles.is_empty() {
            rec.set(roles, v, &self.dec.spec.time_format, &self.dec.pass_types);
        }
    }

    fn leaf(&mut self, leaf: &Leaf, depth: u32) -> Result<Scalar<'a>, Malformed> {
        let cur = &mut self.cur;
        Ok(match leaf {
            Leaf::Null => Scalar::Null,
            Leaf::Bool => match cur.take(1)? {
                [0] => Scalar::Bool(false),
                [1] => Scalar::Bool(true),
                _ => return Err(Malformed),
            },
            Leaf::Long => Scalar::Int(cur.long()?),
            Leaf::Float => {
                let b = cur.take(4)?;
                Scalar::Float(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            Leaf::Double => {
                let b: [u8; 8] = cur.take(8)?.try_into().map_err(|_| Malformed)?;
                Scalar::Float(f64::from_le_bytes(b))
            }
            Leaf::Str => {
                let s = std::str::from_utf8(cur.bytes()?).map_err(|_| Malformed)?;
                Scalar::Str(Cow::Borrowed(s))
            }
            Leaf::Enum(symbols) => {
                let i = cur.len()?;
                let s = symbols.get(i).ok_or(Malformed)?;
                Scalar::Str(Cow::Owned(s.clone()))
            }
            Leaf::TimestampMillis => micros(cur.long()?.checked_mul(1000)),
            Leaf::TimestampMicros => Scalar::Micros(cur.long()?),
            Leaf::TimestampNanos => Scalar::Micros(cur.long()?.div_euclid(1000)),
            Leaf::Date => micros(cur.long()?.checked_mul(86_400_000_000)),
            Leaf::Other(ix) => {
                self.skip(*ix, depth)?;
                Scalar::Nested
            }
        })
    }

    fn skip(&mut self, ix: usize, depth: u32) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        self.cur.spend(1)?;
        let program = self.program;
        match program.skips.get(ix).ok_or(Malformed)? {
            Skip::Null => {}
            Skip::Bool => {
                self.cur.take(1)?;
            }
            Skip::Varint => {
                self.cur.long()?;
            }
            Skip::Float => {
                self.cur.take(4)?;
            }
            Skip::Double => {
                self.cur.take(8)?;
            }
            Skip::Bytes => {
                self.cur.bytes()?;
            }
            Skip::Fixed(n) => {
                self.cur.take(*n)?;
            }
            Skip::Array(item) => self.blocks(&[*item], depth)?,
            Skip::Map(value) => self.blocks(&[SKIP_STRING, *value], depth)?,
            Skip::Union(branches) => {
                let i = usize::try_from(self.cur.long()?).map_err(|_| Malformed)?;
                self.skip(*branches.get(i).ok_or(Malformed)?, depth + 1)?;
            }
            Skip::Record(fields) => {
                for f in fields {
                    self.skip(*f, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// The blocks of an array or map: a count (negative: followed by the block's size in
    /// bytes), that many items, until a count of zero.
    fn blocks(&mut self, item: &[usize], depth: u32) -> Result<(), Malformed> {
        loop {
            let count = self.cur.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.cur.len()?;
            }
            for _ in 0..count.unsigned_abs() {
                for &ix in item {
                    if ix == SKIP_STRING {
                        self.cur.spend(1)?;
                        self.cur.bytes()?;
                    } else {
                        self.skip(ix, depth + 1)?;
                    }
                }
            }
        }
    }
}

/// A map's keys, which have no step of their own.
const SKIP_STRING: usize = usize::MAX;

/// A timestamp beyond i64 microseconds is no time at all: the field's roles treat it as
/// invalid, not the record as malformed.
fn micros(us: Option<i64>) -> Scalar<'static> {
    us.map_or(Scalar::Nested, Scalar::Micros)
}
