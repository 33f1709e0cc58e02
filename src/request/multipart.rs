//! The model a `multipart/form-data` body asks for (speech to text and image edits name it
//! in a `model` part; a realtime call's `session` part is JSON with a `model`), read with
//! multer. The body is already buffered; multer sees it in slices of
//! that buffer, so the file is never copied whole, and every part is read through so that
//! a second `model` is seen.

use bytes::Bytes;
use futures_util::FutureExt;

use super::BodyRefusal;

/// The slice of the body multer is given at a time: its window on the buffer.
const SLICE: usize = 64 * 1024;

/// The longest `model` value read; a model name is a few dozen characters.
const MODEL_MAX: u64 = 1024;
/// The longest realtime `session` read: instructions and tools, not media.
const SESSION_MAX: u64 = 1024 * 1024;

/// The boundary of a `multipart/form-data` content type; `None` for any other type.
pub fn boundary(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    // A multipart type without a usable boundary is a form that cannot be read: an
    // empty boundary says so.
    Some(multer::parse_boundary(content_type).unwrap_or_default())
}

/// The models a form names: its `model` part and its `session` part's `model`. A form that
/// does not parse, a model that is not short text, and a part given twice are refused.
pub fn models(body: &Bytes, boundary: &str) -> Result<Vec<String>, BodyRefusal> {
    if boundary.is_empty() {
        return Err(BodyRefusal::MalformedForm);
    }
    let slices = (0..body.len())
        .step_by(SLICE)
        .map(|at| Ok::<_, std::convert::Infallible>(body.slice(at..body.len().min(at + SLICE))))
        .collect::<Vec<_>>();
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .for_field("model", MODEL_MAX)
            .for_field("session", SESSION_MAX),
    );
    let mut form = multer::Multipart::with_constraints(
        futures_util::stream::iter(slices),
        boundary.to_string(),
        constraints,
    );
    // Every slice is already there: each step completes when first polled.
    let ready = |step: Option<Result<_, multer::Error>>| match step {
        Some(Ok(value)) => Ok(value),
        Some(Err(_)) | None => Err(BodyRefusal::MalformedForm),
    };
    let (mut model, mut session) = (None, None);
    while let Some(field) = ready(form.next_field().now_or_never())? {
        let (slot, name) = match field.name() {
            Some("model") => (&mut model, "model"),
            Some("session") => (&mut session, "session"),
            _ => continue,
        };
        if slot.is_some() {
            return Err(BodyRefusal::Duplicate(name));
        }
        let text = match field.text().now_or_never() {
            Some(Ok(text)) => text,
            Some(Err(multer::Error::FieldSizeExceeded { .. })) => {
                return Err(BodyRefusal::InvalidField(name));
            }
            Some(Err(_)) | None => return Err(BodyRefusal::MalformedForm),
        };
        *slot = Some(text);
    }
    let mut named: Vec<String> = model.map(|m| m.trim().to_string()).into_iter().collect();
    if let Some(session) = session {
        let session: serde_json::Value =
            serde_json::from_str(&session).map_err(|_| BodyRefusal::InvalidField("session"))?;
        match session.get("model") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(m)) => named.push(m.clone()),
            Some(_) => return Err(BodyRefusal::InvalidField("session")),
        }
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(parts: &[(&str, &[u8])], boundary: &str) -> Bytes {
        let mut body = Vec::new();
        for (name, value) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let filename = if *name == "file" {
                "; filename=\"a.wav\"\r\nContent-Type: audio/wav"
            } else {
                ""
            };
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Bytes::from(body)
    }

    #[test]
    fn the_model_is_found_after_a_large_file() {
        let audio = vec![0x5a_u8; 3 * 1024 * 1024 + 17];
        let body = form(&[("file", &audio), ("model", b"whisper-1")], "XyZ");
        assert_eq!(models(&body, "XyZ").unwrap(), ["whisper-1"]);
        let body = form(&[("model", b"gpt-4o-transcribe"), ("file", &audio)], "b");
        assert_eq!(models(&body, "b").unwrap(), ["gpt-4o-transcribe"]);
        let body = form(&[("file", &audio)], "b");
        assert!(models(&body, "b").unwrap().is_empty());
        // A realtime call: the SDP offer and the session, whose model counts.
        let session = br#"{"type":"realtime","model":"gpt-realtime"}"#;
        let body = form(
            &[
                ("sdp", b"v=0\r\no=- 1 1 IN IP4 0.0.0.0"),
                ("session", session),
            ],
            "b",
        );
        assert_eq!(models(&body, "b").unwrap(), ["gpt-realtime"]);
        let body = form(&[("session", br#"{"model":7}"#)], "b");
        assert_eq!(
            models(&body, "b"),
            Err(BodyRefusal::InvalidField("session"))
        );
    }

    #[test]
    fn a_second_model_an_endless_one_and_broken_forms_are_refused() {
        let two = form(&[("model", b"a"), ("file", b"x"), ("model", b"b")], "b");
        assert_eq!(models(&two, "b"), Err(BodyRefusal::Duplicate("model")));
        let long = vec![b'm'; 4096];
        let body = form(&[("model", &long)], "b");
        assert_eq!(models(&body, "b"), Err(BodyRefusal::InvalidField("model")));
        let body = form(&[("model", b"a")], "b");
        assert_eq!(models(&body, "other"), Err(BodyRefusal::MalformedForm));
        let cut = body.slice(..body.len() - 8);
        assert_eq!(models(&cut, "b"), Err(BodyRefusal::MalformedForm));
        assert_eq!(models(&body, ""), Err(BodyRefusal::MalformedForm));
    }

    #[test]
    fn boundaries_come_only_from_form_types() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("multipart/form-data").as_deref(), Some(""));
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/mixed; boundary=x"), None);
    }
}
