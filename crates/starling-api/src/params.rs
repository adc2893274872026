//! Request parameters the way Mastodon (Rails) reads them.
//!
//! Clients send the same parameters as a query string, a form, JSON or
//! multipart, with arrays as `key[]=a`, `key[0]=a`, plain `key=a` or JSON
//! arrays, nested as `source[privacy]=x`, and booleans as `true`, `"1"`,
//! `"on"`... [`Params`] folds all of that into one JSON object (query string
//! first, then the body on top), and the lenient deserializers in [`de`] turn
//! values into the types handlers want. Handlers declare a plain serde struct
//! and never see the encoding.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Most `key=value` pairs a query string or form may carry.
pub const MAX_PAIRS: usize = 1000;
/// Most levels of brackets in a key (`a[b][c]` is three), and of nesting in
/// a JSON body.
pub const MAX_DEPTH: usize = 32;

fn reject_nul(text: &str) -> Result<(), ApiError> {
    if text.contains('\0') {
        return Err(ApiError::BadRequest(
            "Invalid parameters: NUL characters are not allowed".into(),
        ));
    }
    Ok(())
}

/// All parameters of a request as one JSON object.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Map<String, Value>);

impl Params {
    /// The query string's parameters; 400 when it breaks the limits below.
    pub fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        match query {
            Some(q) => Self::from_pairs(form_urlencoded::parse(q.as_bytes())),
            None => Ok(Params::default()),
        }
    }

    /// Folds `key=value` pairs (a query string or a form body) into one
    /// object. Bounded: at most [`MAX_PAIRS`] pairs and [`MAX_DEPTH`]
    /// levels of brackets (Rack's limits; a few thousand levels used to
    /// overflow the stack and abort the process), and no NUL character
    /// (PostgreSQL cannot store one; Starling refuses it everywhere alike).
    fn from_pairs<'a>(
        pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    ) -> Result<Self, ApiError> {
        let mut params = Params::default();
        for (count, (k, v)) in pairs.enumerate() {
            if count >= MAX_PAIRS {
                return Err(ApiError::BadRequest(format!(
                    "Invalid parameters: more than {MAX_PAIRS} parameters"
                )));
            }
            reject_nul(&k)?;
            reject_nul(&v)?;
            params.insert_pair(&k, Value::String(v.into_owned()))?;
        }
        params.normalize();
        Ok(params)
    }

    /// Deserializes into a handler's parameter struct; a type mismatch is a
    /// 422 naming the parameter.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_value(Value::Object(self.0.clone()))
            .map_err(|e| ApiError::Unprocessable(format!("Invalid parameters: {e}")))
    }

    /// Inserts `key=value` where `key` may be `a[b][]` or `a[0][c]`.
    fn insert_pair(&mut self, key: &str, value: Value) -> Result<(), ApiError> {
        let (head, rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (key, ""),
        };
        if head.is_empty() {
            return Ok(());
        }
        let mut path: Vec<&str> = vec![head];
        let mut rest = rest;
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            if path.len() >= MAX_DEPTH {
                return Err(ApiError::BadRequest(format!(
                    "Invalid parameters: nested more than {MAX_DEPTH} levels deep"
                )));
            }
            path.push(&stripped[..end]);
            rest = &stripped[end + 1..];
        }
        insert_path(&mut self.0, &path, value);
        Ok(())
    }

    /// Objects whose keys are all indices (`key[0]`, `key[1]`) become arrays.
    fn normalize(&mut self) {
        for v in self.0.values_mut() {
            normalize_value(v);
        }
    }

    fn merge(&mut self, other: Map<String, Value>) {
        for (k, v) in other {
            self.0.insert(k, v);
        }
    }
}

/// Walks (creating as needed) the objects along `path` and sets or appends
/// the value at its end. A loop, not recursion: `path` is bounded anyway.
fn insert_path(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    // `key[]` appends to the array at `key`; what follows the `[]` is
    // ignored, as before.
    let (keys, append) = match path.iter().position(|k| k.is_empty()) {
        Some(i) => (&path[..i], true),
        None => (path, false),
    };
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut current = map;
    for key in parents {
        let entry = current
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(inner) = entry else {
            return;
        };
        current = inner;
    }
    if append {
        let entry = current
            .entry((*last).to_owned())
            .or_insert_with(|| Value::Array(vec![]));
        match entry {
            Value::Array(list) => list.push(value),
            other => *other = Value::Array(vec![value]),
        }
    } else {
        current.insert((*last).to_owned(), value);
    }
}

fn normalize_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for inner in map.values_mut() {
                normalize_value(inner);
            }
            if !map.is_empty() && map.keys().all(|k| k.parse::<u32>().is_ok()) {
                let mut items: Vec<(u32, Value)> = std::mem::take(map)
                    .into_iter()
                    .filter_map(|(k, v)| k.parse().ok().map(|i| (i, v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                *v = Value::Array(items.into_iter().map(|(_, v)| v).collect());
            }
        }
        Value::Array(list) => list.iter_mut().for_each(normalize_value),
        _ => {}
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(read(req, state, false).await?.0)
    }
}

/// A file part of a multipart body (`avatar`, `header`).
#[derive(Clone, Debug)]
pub struct FilePart {
    pub name: String,
    pub bytes: Bytes,
}

/// Most file parts one request may carry.
const MAX_FILES: usize = 4;

/// [`Params`] and the file parts of a multipart body, for the endpoints
/// that take files besides parameters (`update_credentials`).
pub struct ParamsWithFiles(pub Params, pub Vec<FilePart>);

impl<S: Send + Sync> FromRequest<S> for ParamsWithFiles {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (params, files) = read(req, state, true).await?;
        Ok(Self(params, files))
    }
}

async fn read<S: Send + Sync>(
    req: Request,
    state: &S,
    keep_files: bool,
) -> Result<(Params, Vec<FilePart>), ApiError> {
    let mut files = Vec::new();
    let mut params = Params::from_query(req.uri().query())?;
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let bad = |e: axum::extract::multipart::MultipartError| {
            ApiError::BadRequest(format!("Invalid multipart body: {}", e.body_text()))
        };
        let mut multipart = Multipart::from_request(req, state).await.map_err(|e| {
            ApiError::BadRequest(format!("Invalid multipart body: {}", e.body_text()))
        })?;
        let mut pairs = Vec::new();
        while let Some(field) = multipart.next_field().await.map_err(bad)? {
            let Some(name) = field.name().map(str::to_owned) else {
                continue;
            };
            if field.file_name().is_some() {
                // File parts are kept for the endpoints that take
                // files; elsewhere they are skipped.
                if keep_files {
                    if files.len() >= MAX_FILES {
                        return Err(ApiError::BadRequest(
                            "Invalid multipart body: too many files".into(),
                        ));
                    }
                    let bytes = field.bytes().await.map_err(bad)?;
                    files.push(FilePart { name, bytes });
                } else {
                    tracing::debug!(field = %name, "skipping file part");
                }
                continue;
            }
            let text = field.text().await.map_err(bad)?;
            pairs.push((name.into(), text.into()));
            if pairs.len() > MAX_PAIRS {
                break;
            }
        }
        params.merge(Params::from_pairs(pairs.into_iter())?.0);
        return Ok((params, files));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(format!(
                "Could not read the request body: {}",
                e.body_text()
            ))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((params, files));
    }
    if content_type.starts_with("application/json") || content_type.ends_with("+json") {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => {
                check_json(&map)?;
                params.merge(map)
            }
            Ok(_) => {
                return Err(ApiError::BadRequest(
                    "The JSON body must be an object".into(),
                ))
            }
            Err(e) => return Err(ApiError::BadRequest(format!("Invalid JSON body: {e}"))),
        }
    } else {
        // Forms, and bodies sent without a content type.
        params.merge(Params::from_pairs(form_urlencoded::parse(&bytes))?.0);
    }
    Ok((params, files))
}

/// The limits of [`Params::from_pairs`] for a JSON body (serde_json stops
/// at 128 levels by itself; this is the tighter bound handlers are written
/// for), walked with a stack of its own.
fn check_json(map: &Map<String, Value>) -> Result<(), ApiError> {
    let mut stack: Vec<(&Value, usize)> = map.values().map(|v| (v, 1)).collect();
    for key in map.keys() {
        reject_nul(key)?;
    }
    let mut seen = 0usize;
    while let Some((value, depth)) = stack.pop() {
        seen += 1;
        if seen > MAX_PAIRS * 10 {
            return Err(ApiError::BadRequest(
                "Invalid parameters: too many values".into(),
            ));
        }
        if depth > MAX_DEPTH {
            return Err(ApiError::BadRequest(format!(
                "Invalid parameters: nested more than {MAX_DEPTH} levels deep"
            )));
        }
        match value {
            Value::String(s) => reject_nul(s)?,
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(inner) => {
                for (k, v) in inner {
                    reject_nul(k)?;
                    stack.push((v, depth + 1));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A boolean parameter spelled as Rails spells one (`true`, `"1"`, `"on"`,
/// `"false"`, `"0"`, `"off"`...), absent or empty as `false`; anything else
/// is a 422 naming it. For the parameters that destroy something, where a
/// garbled value must not count as yes (Rails would take it for `true`).
pub fn strict_bool(name: &str, value: Option<&Value>) -> Result<bool, ApiError> {
    let known = match value {
        None | Some(Value::Null | Value::Bool(_)) => true,
        Some(Value::Number(n)) => n.as_u64().is_some_and(|x| x <= 1),
        Some(Value::String(s)) => matches!(
            s.as_str(),
            "" | "true"
                | "TRUE"
                | "True"
                | "t"
                | "T"
                | "1"
                | "on"
                | "ON"
                | "On"
                | "false"
                | "FALSE"
                | "False"
                | "f"
                | "F"
                | "0"
                | "off"
                | "OFF"
                | "Off"
        ),
        Some(Value::Array(_) | Value::Object(_)) => false,
    };
    if !known {
        return Err(ApiError::Unprocessable(format!(
            "Invalid parameters: {name} must be true or false"
        )));
    }
    Ok(value.and_then(de::truthy).unwrap_or(false))
}

/// Lenient deserializers for parameter structs.
pub mod de {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// Rails' false set; everything else present is true.
    pub fn truthy(v: &Value) -> Option<bool> {
        match v {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            Value::Number(n) => Some(n.as_f64() != Some(0.0)),
            Value::String(s) => Some(!matches!(
                s.as_str(),
                "" | "false" | "FALSE" | "False" | "0" | "f" | "F" | "off" | "OFF" | "Off"
            )),
            Value::Array(_) | Value::Object(_) => Some(true),
        }
    }

    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(truthy(&Value::deserialize(d)?))
    }

    pub fn bool_or_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(truthy(&Value::deserialize(d)?).unwrap_or(false))
    }

    fn scalar_string(v: Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A string; numbers and booleans are taken as their text, anything
    /// else as absent.
    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(scalar_string(Value::deserialize(d)?))
    }

    /// A list given as an array, or as one string.
    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(items) => items.into_iter().filter_map(scalar_string).collect(),
            other => scalar_string(other).into_iter().collect(),
        })
    }

    /// A space-separated list given as a string or an array.
    pub fn opt_space_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(items) => Some(
                items
                    .into_iter()
                    .filter_map(scalar_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            other => scalar_string(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(q: &str) -> Value {
        Value::Object(Params::from_query(Some(q)).expect("within limits").0)
    }

    #[test]
    fn rails_brackets() {
        assert_eq!(pairs("a=1&b[]=x&b[]=y"), json!({"a":"1","b":["x","y"]}));
        assert_eq!(pairs("id=5"), json!({"id":"5"}));
        assert_eq!(
            pairs("source[privacy]=unlisted&source[sensitive]=1"),
            json!({"source":{"privacy":"unlisted","sensitive":"1"}})
        );
        assert_eq!(
            pairs("fields_attributes[1][name]=b&fields_attributes[0][name]=a"),
            json!({"fields_attributes":[{"name":"a"},{"name":"b"}]})
        );
        assert_eq!(
            pairs("poll[options][]=x&poll[options][]=y&poll[expires_in]=300"),
            json!({"poll":{"options":["x","y"],"expires_in":"300"}})
        );
        assert_eq!(pairs("key[0]=a&key[1]=b"), json!({"key":["a","b"]}));
        assert_eq!(pairs("[x]=1&=2"), json!({}));
    }

    #[test]
    fn booleans() {
        for t in [
            json!(true),
            json!("true"),
            json!("1"),
            json!("on"),
            json!(1),
        ] {
            assert_eq!(de::truthy(&t), Some(true), "{t}");
        }
        for f in [
            json!(false),
            json!("false"),
            json!("0"),
            json!("f"),
            json!("off"),
            json!(0),
            json!(""),
        ] {
            assert_eq!(de::truthy(&f), Some(false), "{f}");
        }
        assert_eq!(de::truthy(&Value::Null), None);
    }

    #[test]
    fn strict_booleans() {
        let parse = |q: &str| {
            let p = Params::from_query(Some(q)).unwrap();
            strict_bool("flag", p.0.get("flag"))
        };
        for (q, want) in [
            ("flag=true", true),
            ("flag=1", true),
            ("flag=on", true),
            ("flag=false", false),
            ("flag=0", false),
            ("flag=", false),
            ("other=x", false),
        ] {
            assert_eq!(parse(q).expect(q), want, "{q}");
        }
        for q in ["flag=notabool", "flag=yes", "flag[]=1", "flag=2"] {
            let err = parse(q).unwrap_err();
            assert!(
                matches!(&err, ApiError::Unprocessable(m) if m.contains("flag")),
                "{q}: {err:?}"
            );
        }
        assert_eq!(strict_bool("flag", Some(&json!(true))).ok(), Some(true));
        assert_eq!(strict_bool("flag", Some(&json!(0))).ok(), Some(false));
        assert!(strict_bool("flag", Some(&json!({"a": 1}))).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        // A few thousand levels used to overflow the stack and abort.
        let key = format!("x{}", "[a]".repeat(8000));
        let err = Params::from_query(Some(&format!("{key}=1"))).unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");
        let ok = format!("x{}=1", "[a]".repeat(MAX_DEPTH - 1));
        assert!(Params::from_query(Some(&ok)).is_ok());
        let deep_array = format!("x{}[]=1", "[a]".repeat(8000));
        assert!(Params::from_query(Some(&deep_array)).is_err());
    }

    #[test]
    fn too_many_pairs_and_nul_are_refused() {
        let many = (0..=MAX_PAIRS)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>();
        assert!(Params::from_query(Some(&many.join("&"))).is_err());
        assert!(Params::from_query(Some(&many[..MAX_PAIRS].join("&"))).is_ok());
        assert!(Params::from_query(Some("status=a%00b")).is_err());
        assert!(Params::from_query(Some("a%00=b")).is_err());
    }

    #[test]
    fn json_bodies_are_bounded_too() {
        let mut deep = json!("x");
        for _ in 0..(MAX_DEPTH + 1) {
            deep = json!({ "a": deep });
        }
        let Value::Object(map) = json!({ "k": deep }) else {
            unreachable!()
        };
        assert!(check_json(&map).is_err());
        let Value::Object(nul) = json!({ "status": "a\u{0}b" }) else {
            unreachable!()
        };
        assert!(check_json(&nul).is_err());
        let Value::Object(fine) = json!({ "status": "hello", "media_ids": ["1", "2"] }) else {
            unreachable!()
        };
        assert!(check_json(&fine).is_ok());
    }

    /// The fuzz target: any query string, made of the pieces that matter to
    /// the parser (names, brackets, indices, separators, escapes), is parsed
    /// or refused with a 400, never a panic or a stack overflow, and what is
    /// parsed stays within the bounds.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("[".to_owned()),
                Just("]".to_owned()),
                Just("[]".to_owned()),
                Just("[a]".to_owned()),
                Just("[0]".to_owned()),
                Just("[1]".to_owned()),
                Just("=".to_owned()),
                Just("&".to_owned()),
                Just("%00".to_owned()),
                Just("%5B".to_owned()),
                Just("%5D".to_owned()),
                Just("+".to_owned()),
                Just("poll".to_owned()),
                Just("x".to_owned()),
                proptest::collection::vec(proptest::char::range('a', 'z'), 1..4)
                    .prop_map(String::from_iter),
                any::<char>().prop_map(|c| c.to_string()),
                (1usize..200).prop_map(|n| "[a]".repeat(n)),
            ]
        }

        fn depth(v: &Value) -> usize {
            let mut deepest = 0;
            let mut stack = vec![(v, 1usize)];
            while let Some((v, d)) = stack.pop() {
                deepest = deepest.max(d);
                match v {
                    Value::Object(m) => stack.extend(m.values().map(|v| (v, d + 1))),
                    Value::Array(a) => stack.extend(a.iter().map(|v| (v, d + 1))),
                    _ => {}
                }
            }
            deepest
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: std::env::var("PROPTEST_CASES").ok()
                    .and_then(|c| c.parse().ok()).unwrap_or(2000),
                ..ProptestConfig::default()
            })]

            #[test]
            fn any_query_is_parsed_or_refused(pieces in proptest::collection::vec(piece(), 0..60)) {
                let query = pieces.concat();
                match Params::from_query(Some(&query)) {
                    Ok(params) => {
                        let value = Value::Object(params.0);
                        prop_assert!(depth(&value) <= MAX_DEPTH + 2);
                        prop_assert!(!value.to_string().contains("\\u0000"));
                    }
                    Err(e) => prop_assert!(matches!(e, ApiError::BadRequest(_)), "{:?}", e),
                }
            }
        }
    }
}
