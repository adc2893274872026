//! `/api/v{1,2}/media` (uploads) and `/media/...` (the files, CDN-ready).

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use starling_core::media::MediaUpdate;
use starling_domain::{Id, MediaAttachment, MediaState};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::media::{MediaJson, MediaTextParams, UploadForm};
use crate::params::Params;
use crate::AppState;

fn media_id(id: &str) -> ApiResult<Id> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// A failed upload answers with why (its owner polls for it).
fn failed(m: &MediaAttachment) -> ApiError {
    ApiError::Unprocessable(
        m.error
            .clone()
            .unwrap_or_else(|| "Validation failed: File could not be processed".into()),
    )
}

/// An upload as its owner polls it: 200 when ready, 206 while processing,
/// 422 with the reason when it failed.
fn shown(state: &AppState, media: &MediaAttachment) -> ApiResult<Response> {
    let status = match media.state {
        MediaState::Ready => StatusCode::OK,
        MediaState::Processing => StatusCode::PARTIAL_CONTENT,
        MediaState::Failed => return Err(failed(media)),
    };
    Ok((status, Json(MediaJson::new(media, &state.settings))).into_response())
}

/// `POST /api/v2/media`: 200 with the URLs when processed at once (small
/// images), 202 with `url: null` when a worker processes it.
pub async fn create_v2(
    State(state): State<AppState>,
    Auth(caller): Auth,
    req: Request,
) -> ApiResult<Response> {
    let UploadForm(input) = UploadForm::read(req, state.settings.max_upload_bytes).await?;
    let media = state.core.upload_media(&caller, input, false).await?;
    let status = if media.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(MediaJson::new(&media, &state.settings))).into_response())
}

/// `POST /api/v1/media` (Elk): answered once processed (a video still
/// processing after a bound is answered 202, as v2 would).
pub async fn create_v1(
    State(state): State<AppState>,
    Auth(caller): Auth,
    req: Request,
) -> ApiResult<Response> {
    let UploadForm(input) = UploadForm::read(req, state.settings.max_upload_bytes).await?;
    let media = state.core.upload_media(&caller, input, true).await?;
    if media.state == MediaState::Processing {
        return Ok((
            StatusCode::ACCEPTED,
            Json(MediaJson::new(&media, &state.settings)),
        )
            .into_response());
    }
    shown(&state, &media)
}

/// `GET /api/v1/media/:id`: 200 when ready, 206 while processing.
pub async fn show(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let media = state.core.own_media(&caller, media_id(&id)?).await?;
    shown(&state, &media)
}

/// `PUT /api/v1/media/:id`: description and focus, before it is attached.
pub async fn update(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let p: MediaTextParams = params.parse()?;
    let update = MediaUpdate {
        description: p.description()?,
        focus: p.focus()?,
    };
    let media = state
        .core
        .update_media(&caller, media_id(&id)?, update)
        .await?;
    shown(&state, &media)
}

/// A year: the files under a key never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `GET /media/:id/:file`: a processed file (never the upload as it came),
/// with immutable caching, an ETag and byte ranges, so a CDN or a browser
/// may keep it and a video may be sought.
pub async fn file(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = media_id(&id)?;
    if !servable(&file) {
        return Err(ApiError::NotFound);
    }
    let key = format!("media/{id}/{file}");
    let object = state
        .core
        .media_file(&key)
        .await?
        .ok_or(ApiError::NotFound)?;
    let len = object.bytes.len() as u64;
    let etag = format!("\"{id}-{file}-{len}\"");
    let mut out = HeaderMap::new();
    let put = |out: &mut HeaderMap, name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    put(&mut out, header::CONTENT_TYPE, &object.content_type);
    put(&mut out, header::CACHE_CONTROL, IMMUTABLE);
    put(&mut out, header::ETAG, &etag);
    put(&mut out, header::ACCEPT_RANGES, "bytes");
    put(&mut out, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put(
        &mut out,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox",
    );
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        // An If-Range that no longer matches asks for the whole file.
        .filter(|_| {
            headers
                .get(header::IF_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v == etag)
        });
    match range.map(|r| byte_range(r, len)) {
        None | Some(RangeAsk::Ignore) => Ok((StatusCode::OK, out, object.bytes).into_response()),
        Some(RangeAsk::Unsatisfiable) => {
            put(&mut out, header::CONTENT_RANGE, &format!("bytes */{len}"));
            Ok((StatusCode::RANGE_NOT_SATISFIABLE, out).into_response())
        }
        Some(RangeAsk::Bytes(start, end)) => {
            put(
                &mut out,
                header::CONTENT_RANGE,
                &format!("bytes {start}-{end}/{len}"),
            );
            let body = object.bytes.slice(start as usize..=end as usize);
            Ok((StatusCode::PARTIAL_CONTENT, out, body).into_response())
        }
    }
}

/// Only processed variants are served: `original.<ext>` or `small.<ext>`.
fn servable(file: &str) -> bool {
    let Some((name, ext)) = file.split_once('.') else {
        return false;
    };
    matches!(name, "original" | "small")
        && (2..=4).contains(&ext.len())
        && ext
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// Not one range we answer (several, another unit, malformed): the
    /// whole file, as RFC 9110 allows.
    Ignore,
    Unsatisfiable,
    /// Inclusive.
    Bytes(u64, u64),
}

/// One `bytes=` range of a `len`-byte file.
fn byte_range(header: &str, len: u64) -> RangeAsk {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAsk::Ignore;
    };
    if spec.contains(',') {
        return RangeAsk::Ignore;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // The last N bytes.
        let Ok(n) = last.parse::<u64>() else {
            return RangeAsk::Ignore;
        };
        if n == 0 || len == 0 {
            return RangeAsk::Unsatisfiable;
        }
        return RangeAsk::Bytes(len.saturating_sub(n), len - 1);
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeAsk::Ignore;
    };
    let end = if last.is_empty() {
        len.saturating_sub(1)
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end.min(len.saturating_sub(1)),
            _ => return RangeAsk::Ignore,
        }
    };
    if start >= len {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Bytes(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range("bytes=0-9", 100), RangeAsk::Bytes(0, 9));
        assert_eq!(byte_range("bytes=90-", 100), RangeAsk::Bytes(90, 99));
        assert_eq!(byte_range("bytes=-10", 100), RangeAsk::Bytes(90, 99));
        assert_eq!(byte_range("bytes=-500", 100), RangeAsk::Bytes(0, 99));
        assert_eq!(byte_range("bytes=50-500", 100), RangeAsk::Bytes(50, 99));
        assert_eq!(byte_range("bytes=100-", 100), RangeAsk::Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 100), RangeAsk::Unsatisfiable);
        for ignored in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=1",
        ] {
            assert_eq!(byte_range(ignored, 100), RangeAsk::Ignore, "{ignored}");
        }
    }

    #[test]
    fn only_variants_are_served() {
        assert!(servable("original.jpg"));
        assert!(servable("small.webp"));
        assert!(servable("original.mp4"));
        for no in [
            "upload",
            "upload.jpg",
            "original",
            "../x.jpg",
            "original.JPG",
            "small.jpeg..",
        ] {
            assert!(!servable(no), "{no}");
        }
    }
}
