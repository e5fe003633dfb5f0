//! The `pprof` encoding of a [`Profile`]: the messages of `profile.proto` that a heap profile
//! uses, encoded by prost.
//!
//! Each distinct address becomes a `Location` whose lines are the functions inlined there,
//! innermost first; each function name and file a `Function`; every string is interned in the
//! string table, whose entry 0 is the empty string as the format requires. Addresses of
//! frames that could not be symbolized are kept, so that a tool with the binary at hand can
//! still resolve them.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use super::Profile;

#[derive(Clone, PartialEq, Message)]
struct PprofProfile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    #[prost(message, optional, tag = "11")]
    period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    period: i64,
    #[prost(int64, tag = "14")]
    default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "3")]
    address: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
    #[prost(int64, tag = "2")]
    line: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "3")]
    system_name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
}

#[derive(Default)]
struct Builder {
    out: PprofProfile,
    strings: HashMap<String, i64>,
    functions: HashMap<(i64, i64), u64>,
    locations: HashMap<usize, u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.strings.get(s) {
            return id;
        }
        let id = self.out.string_table.len() as i64;
        self.out.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), id);
        id
    }

    fn value_type(&mut self, kind: &str, unit: &str) -> ValueType {
        ValueType { r#type: self.string(kind), unit: self.string(unit) }
    }

    fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (self.string(name), self.string(file));
        if let Some(&id) = self.functions.get(&key) {
            return id;
        }
        let id = self.out.function.len() as u64 + 1;
        self.out.function.push(Function { id, name: key.0, system_name: key.0, filename: key.1 });
        self.functions.insert(key, id);
        id
    }
}

pub(super) fn encode(profile: &Profile) -> Vec<u8> {
    let mut b = Builder::default();
    b.string("");
    b.out.sample_type = vec![
        b.value_type("alloc_objects", "count"),
        b.value_type("alloc_space", "bytes"),
        b.value_type("inuse_objects", "count"),
        b.value_type("inuse_space", "bytes"),
    ];
    b.out.default_sample_type = b.string("inuse_space");
    b.out.period_type = Some(b.value_type("space", "bytes"));
    b.out.period = profile.interval() as i64;
    b.out.time_nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    for site in profile.sites() {
        let mut location_ids = Vec::new();
        let mut frames = site.frames.iter();
        while let Some(first) = frames.next() {
            // Frames of one address (a function and those inlined into it) make one location.
            let mut lines = vec![first];
            let mut last = first;
            while last.inlined {
                match frames.next() {
                    Some(next) => {
                        lines.push(next);
                        last = next;
                    }
                    None => break,
                }
            }
            let id = match b.locations.get(&first.address) {
                Some(&id) => id,
                None => {
                    let id = b.out.location.len() as u64 + 1;
                    let line = lines
                        .iter()
                        .filter_map(|frame| {
                            let name = frame.function.as_deref()?;
                            let function_id = b.function(name, frame.file.as_deref().unwrap_or(""));
                            Some(Line { function_id, line: frame.line.map_or(0, i64::from) })
                        })
                        .collect();
                    b.out.location.push(Location { id, address: first.address as u64, line });
                    b.locations.insert(first.address, id);
                    id
                }
            };
            location_ids.push(id);
        }
        b.out.sample.push(Sample {
            location_id: location_ids,
            value: vec![
                site.allocations as i64,
                site.allocated_bytes as i64,
                site.live_allocations as i64,
                site.live_bytes as i64,
            ],
        });
    }
    b.out.encode_to_vec()
}
