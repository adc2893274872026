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

/// All parameters of a request as one JSON object.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Map<String, Value>);

impl Params {
    pub fn from_query(query: Option<&str>) -> Self {
        let mut params = Params::default();
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                params.insert_pair(&k, Value::String(v.into_owned()));
            }
        }
        params.normalize();
        params
    }

    /// Deserializes into a handler's parameter struct; a type mismatch is a
    /// 422 naming the parameter.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_value(Value::Object(self.0.clone()))
            .map_err(|e| ApiError::Unprocessable(format!("Invalid parameters: {e}")))
    }

    /// Inserts `key=value` where `key` may be `a[b][]` or `a[0][c]`.
    fn insert_pair(&mut self, key: &str, value: Value) {
        let (head, rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (key, ""),
        };
        if head.is_empty() {
            return;
        }
        let mut path: Vec<&str> = vec![head];
        let mut rest = rest;
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            path.push(&stripped[..end]);
            rest = &stripped[end + 1..];
        }
        insert_path(&mut self.0, &path, value);
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

fn insert_path(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match rest.first() {
        None => {
            map.insert((*first).to_owned(), value);
        }
        Some(&"") => {
            // key[] = value: append to an array.
            let entry = map
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Array(vec![]));
            match entry {
                Value::Array(list) => list.push(value),
                other => *other = Value::Array(vec![value]),
            }
        }
        Some(_) => {
            let entry = map
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
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
        let mut params = Params::from_query(req.uri().query());
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, state).await.map_err(|e| {
                ApiError::BadRequest(format!("Invalid multipart body: {}", e.body_text()))
            })?;
            let mut body = Params::default();
            while let Some(field) = multipart.next_field().await.map_err(|e| {
                ApiError::BadRequest(format!("Invalid multipart body: {}", e.body_text()))
            })? {
                let Some(name) = field.name().map(str::to_owned) else {
                    continue;
                };
                if field.file_name().is_some() {
                    // File parts (avatar, header, media) are read by the
                    // endpoints that take files; elsewhere they are skipped.
                    tracing::debug!(field = %name, "skipping file part");
                    continue;
                }
                let text = field.text().await.map_err(|e| {
                    ApiError::BadRequest(format!("Invalid multipart body: {}", e.body_text()))
                })?;
                body.insert_pair(&name, Value::String(text));
            }
            body.normalize();
            params.merge(body.0);
            return Ok(params);
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
            return Ok(params);
        }
        if content_type.starts_with("application/json") || content_type.ends_with("+json") {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => params.merge(map),
                Ok(_) => {
                    return Err(ApiError::BadRequest(
                        "The JSON body must be an object".into(),
                    ))
                }
                Err(e) => return Err(ApiError::BadRequest(format!("Invalid JSON body: {e}"))),
            }
        } else {
            // Forms, and bodies sent without a content type.
            let mut body = Params::default();
            for (k, v) in form_urlencoded::parse(&bytes) {
                body.insert_pair(&k, Value::String(v.into_owned()));
            }
            body.normalize();
            params.merge(body.0);
        }
        Ok(params)
    }
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
        Value::Object(Params::from_query(Some(q)).0)
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
}
