//! The MediaAttachment entity, and reading an upload from a multipart body.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use serde::Serialize;
use serde_json::{json, Value};
use starling_core::media::UploadInput;
use starling_domain::media::parse_description;
use starling_domain::{FieldError, Focus, MediaAttachment, MediaFile};

use crate::error::ApiError;
use crate::params::ParamsWithFiles;
use crate::settings::ApiSettings;

/// Mastodon's MediaAttachment.
#[derive(Clone, Debug, Serialize)]
pub struct MediaJson {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub url: Option<String>,
    pub preview_url: Option<String>,
    pub remote_url: Option<String>,
    pub preview_remote_url: Option<String>,
    pub text_url: Option<String>,
    pub meta: Value,
    pub description: Option<String>,
    pub blurhash: Option<String>,
}

fn dimensions(f: &MediaFile) -> Value {
    let aspect = if f.height == 0 {
        1.0
    } else {
        f64::from(f.width) / f64::from(f.height)
    };
    json!({
        "width": f.width,
        "height": f.height,
        "size": format!("{}x{}", f.width, f.height),
        "aspect": aspect,
    })
}

/// `H:MM:SS.ss`, as Mastodon writes a video's length.
fn length(seconds: f64) -> String {
    let whole = seconds.max(0.0);
    let hours = (whole / 3600.0).floor();
    let minutes = ((whole - hours * 3600.0) / 60.0).floor();
    let rest = whole - hours * 3600.0 - minutes * 60.0;
    format!("{}:{:02}:{:05.2}", hours as u64, minutes as u64, rest)
}

impl MediaJson {
    pub fn new(m: &MediaAttachment, settings: &ApiSettings) -> Self {
        let mut meta = serde_json::Map::new();
        if let Some(original) = &m.original {
            let mut o = dimensions(original);
            if let (Some(d), Value::Object(map)) = (m.duration, &mut o) {
                map.insert("duration".into(), json!(d));
                meta.insert("length".into(), json!(length(d)));
                meta.insert("duration".into(), json!(d));
            }
            meta.insert("original".into(), o);
        }
        if let Some(small) = &m.small {
            meta.insert("small".into(), dimensions(small));
        }
        if let Some(focus) = m.focus {
            meta.insert("focus".into(), json!({"x": focus.x, "y": focus.y}));
        }
        Self {
            id: m.id.to_string(),
            kind: m.kind.as_str(),
            url: m.original.as_ref().map(|f| settings.media_url(&f.key)),
            preview_url: m.small.as_ref().map(|f| settings.media_url(&f.key)),
            remote_url: None,
            preview_remote_url: None,
            text_url: None,
            meta: Value::Object(meta),
            description: m.description.clone(),
            blurhash: m.blurhash.clone(),
        }
    }
}

/// The form of `POST /api/v{1,2}/media`: the file and what describes it.
pub struct UploadForm(pub UploadInput);

/// The parts of a media form that are not the file.
fn parse_description_field(text: &str) -> Result<Option<String>, ApiError> {
    parse_description(text)
        .map_err(|why| ApiError::Unprocessable(format!("Validation failed: {why}")))
}

fn parse_focus_field(text: &str) -> Result<Focus, ApiError> {
    Focus::parse(text).ok_or_else(|| {
        ApiError::Unprocessable(
            "Validation failed: Focus must be two numbers between -1 and 1, as \"x,y\"".into(),
        )
    })
}

impl UploadForm {
    /// Reads the multipart form, at most `max_bytes` of it.
    pub async fn read(req: Request, max_bytes: usize) -> Result<Self, ApiError> {
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_bytes as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        let (parts, body) = req.into_parts();
        let limited = http_body_util::Limited::new(body, max_bytes);
        let req = Request::from_parts(parts, Body::new(limited));
        let is_multipart = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        if !is_multipart {
            return Err(ApiError::BadRequest(
                "A media upload is a multipart/form-data body with a `file` part".into(),
            ));
        }
        let ParamsWithFiles(params, files) = ParamsWithFiles::from_request(req, &()).await?;
        let p: MediaTextParams = params.parse()?;
        let bytes = files
            .into_iter()
            .rev()
            .find(|f| f.name == "file" && !f.bytes.is_empty())
            .map(|f| f.bytes)
            .ok_or_else(|| ApiError::Validation(FieldError::blank("file").into()))?;
        Ok(Self(UploadInput {
            bytes,
            description: p.description()?.flatten(),
            focus: p.focus()?,
        }))
    }
}

/// The text parameters of an upload and of `PUT /api/v1/media/:id`
/// (`thumbnail`, a custom poster for video and audio, is not kept yet: the
/// poster is taken from the video itself).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct MediaTextParams {
    description: Option<String>,
    focus: Option<String>,
}

impl MediaTextParams {
    /// `Some(None)` when given blank (which clears it).
    pub fn description(&self) -> Result<Option<Option<String>>, ApiError> {
        self.description
            .as_deref()
            .map(parse_description_field)
            .transpose()
    }

    pub fn focus(&self) -> Result<Option<Focus>, ApiError> {
        self.focus.as_deref().map(parse_focus_field).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::length;

    #[test]
    fn lengths_read_like_mastodon() {
        assert_eq!(length(5.0), "0:00:05.00");
        assert_eq!(length(65.5), "0:01:05.50");
        assert_eq!(length(3723.25), "1:02:03.25");
    }
}
