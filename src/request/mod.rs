//! A request body under a token's policy: what it asks for (model, stream, output tokens),
//! checked against the allow-list and rewritten where the policy caps it or where usage
//! must be asked for. Pure functions over the body's bytes, so they can be tested and
//! fuzzed alone; no JSON tree is built, and a rewrite shares the original buffer.

pub mod json;
pub mod multipart;

use bytes::Bytes;

use crate::policy::Policy;
use crate::providers::{Family, Operation, Provider};
use json::{Edit, Object, ObjectError, Spliced};

/// Why a body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefusal {
    #[error("this token may not use that model")]
    ModelNotAllowed,
    #[error("the model could not be read from the request body")]
    ModelUnreadable,
    #[error("the request body must be a JSON object for this token")]
    NotAnObject,
    #[error("the field {0} appears more than once")]
    Duplicate(&'static str),
    #[error("the field {0} is invalid")]
    InvalidField(&'static str),
    #[error("the token's output cap cannot cover this many choices")]
    TooManyChoices,
    #[error("the multipart form could not be read")]
    MalformedForm,
}

impl From<ObjectError> for BodyRefusal {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::NotAnObject => BodyRefusal::NotAnObject,
            ObjectError::Duplicate(name) => BodyRefusal::Duplicate(name),
        }
    }
}

/// What the relay learned from a body, and the body to forward.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub body: Spliced,
    pub model: Option<String>,
    pub stream: bool,
    /// The relay asked for a usage report the client did not: hide it from the client.
    pub hide_usage: bool,
    /// The most output tokens the call may produce, over all its choices, when known.
    pub max_output: Option<u64>,
}

/// The call a body belongs to.
pub struct Call<'a> {
    pub provider: &'a Provider,
    pub operation: Operation,
    /// The model the path names (Gemini's model, Azure's deployment).
    pub path_model: Option<&'a str>,
    /// The request's `Content-Type`, when it has one.
    pub content_type: Option<&'a str>,
    pub policy: &'a Policy,
    /// The longest life, in seconds, a realtime client secret minted by this call may
    /// have: the token's own remaining life, and the relay's maximum.
    pub secret_lifetime: u64,
}

/// Every top-level field the relay reads. Each is refused when it appears twice.
const READ: &[&str] = &[
    "model",
    "models",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "max_tokens_to_sample",
    "n",
    "best_of",
    "generationConfig",
    "generation_config",
];
/// Gemini's generation config, in either spelling (its JSON parser accepts both).
const GEMINI_CONFIG: &[&str] = &[
    "maxOutputTokens",
    "max_output_tokens",
    "candidateCount",
    "candidate_count",
];

/// Where an operation's output cap is written, and what multiplies it.
struct OutputFields {
    /// Every spelling of the limit; the first present wins nothing, all are capped.
    limits: &'static [&'static str],
    /// The spelling written when none is present.
    primary: &'static str,
    /// Fields asking for several outputs in one call.
    choices: &'static [&'static str],
}

fn output_fields(operation: Operation, provider: &Provider) -> Option<OutputFields> {
    let openai_itself = matches!(provider.name, "openai" | "azure");
    Some(match operation {
        Operation::ChatCompletions => OutputFields {
            limits: &["max_completion_tokens", "max_tokens"],
            // OpenAI's own API wants the newer field (reasoning models refuse
            // `max_tokens`); compatible servers generally know only `max_tokens`.
            primary: if openai_itself {
                "max_completion_tokens"
            } else {
                "max_tokens"
            },
            choices: &["n"],
        },
        Operation::Completions => OutputFields {
            limits: &["max_tokens"],
            primary: "max_tokens",
            // `best_of` candidates are generated (and billed) server-side.
            choices: &["n", "best_of"],
        },
        Operation::Responses => OutputFields {
            limits: &["max_output_tokens"],
            primary: "max_output_tokens",
            choices: &[],
        },
        Operation::Messages => OutputFields {
            limits: &["max_tokens"],
            primary: "max_tokens",
            choices: &[],
        },
        Operation::Complete => OutputFields {
            limits: &["max_tokens_to_sample"],
            primary: "max_tokens_to_sample",
            choices: &[],
        },
        Operation::GenerateContent { .. } => OutputFields {
            limits: &["maxOutputTokens", "max_output_tokens"],
            primary: "maxOutputTokens",
            choices: &["candidateCount", "candidate_count"],
        },
        // A session's output is not capped by rewriting its messages; its budget holds.
        Operation::Embeddings
        | Operation::RealtimeClientSecret
        | Operation::RealtimeSession
        | Operation::Other => return None,
    })
}

/// A JSON value that must be a non-negative integer, or null/absent.
fn count(raw: Option<&[u8]>, name: &'static str) -> Result<Option<u64>, BodyRefusal> {
    match raw {
        None | Some(b"null") => Ok(None),
        Some(raw) => serde_json::from_slice::<u64>(raw)
            .map(Some)
            .map_err(|_| BodyRefusal::InvalidField(name)),
    }
}

/// Caps the limit fields of one object (the body, or Gemini's config): nulls removed,
/// values above `per_choice` lowered, the primary spelling set when none is left.
fn cap_fields(
    object: &Object,
    fields: &OutputFields,
    per_choice: u64,
) -> Result<Edit, BodyRefusal> {
    let capped = Bytes::from(per_choice.to_string());
    let Edit {
        mut remove,
        mut set,
    } = Edit::default();
    let mut limited = false;
    for &name in fields.limits {
        match count(object.raw(name), name)? {
            // `null` means "no limit" upstream: it goes, and the cap takes its place.
            None if object.get(name).is_some() => remove.push(name),
            None => {}
            Some(v) if v > per_choice => {
                set.push((name, capped.clone()));
                limited = true;
            }
            Some(_) => limited = true,
        }
    }
    if !limited {
        set.push((fields.primary, capped));
    }
    Ok(Edit { remove, set })
}

/// An upload or a realtime call (`multipart/form-data`, where no output cap applies): the
/// models it names checked against the allow-list when there is one, the form forwarded
/// as it came.
fn prepare_form(body: Bytes, boundary: &str, call: &Call) -> Result<Prepared, BodyRefusal> {
    let policy = call.policy;
    let mut named = Vec::new();
    if !policy.models.is_empty() {
        named = multipart::models(&body, boundary)?;
        if named.is_empty() && call.path_model.is_none() {
            return Err(BodyRefusal::ModelUnreadable);
        }
        if !named.iter().all(|m| policy.model_allowed(m)) {
            return Err(BodyRefusal::ModelNotAllowed);
        }
    }
    Ok(Prepared {
        max_output: None,
        body: whole(body),
        model: named
            .into_iter()
            .next()
            .or_else(|| call.path_model.map(str::to_string)),
        stream: false,
        hide_usage: false,
    })
}

/// The fields of a client-secret request the relay reads, and of its `session` and
/// `expires_after` objects.
const SECRET_READ: &[&str] = &["session", "expires_after"];
const SESSION_READ: &[&str] = &["model"];
const EXPIRY_READ: &[&str] = &["anchor", "seconds"];
/// The life OpenAI gives a client secret when the request does not say.
const SECRET_DEFAULT_SECONDS: u64 = 600;

/// A realtime client secret: the session's model held to the allow-list, and the secret's
/// life lowered to what the token allows (a secret must not outlive the token that minted
/// it, since the relay cannot revoke it).
fn prepare_client_secret(body: Bytes, call: &Call) -> Result<Prepared, BodyRefusal> {
    let policy = call.policy;
    let object = Object::parse(body.clone(), SECRET_READ)?;
    let present = |name| object.value_bytes(name).filter(|raw| &raw[..] != b"null");
    let model = match present("session") {
        None => None,
        Some(raw) => {
            let session = nested_object(raw, SESSION_READ, "session")?;
            match session.raw("model") {
                None | Some(b"null") => None,
                Some(raw) => Some(
                    serde_json::from_slice::<String>(raw)
                        .map_err(|_| BodyRefusal::InvalidField("model"))?,
                ),
            }
        }
    };
    if !policy.models.is_empty() {
        match &model {
            None => return Err(BodyRefusal::ModelUnreadable),
            Some(m) if !policy.model_allowed(m) => return Err(BodyRefusal::ModelNotAllowed),
            Some(_) => {}
        }
    }
    let requested = match present("expires_after") {
        None => SECRET_DEFAULT_SECONDS,
        Some(raw) => {
            let expiry = nested_object(raw, EXPIRY_READ, "expires_after")?;
            count(expiry.raw("seconds"), "expires_after")?.unwrap_or(SECRET_DEFAULT_SECONDS)
        }
    };
    let mut edit = Edit::default();
    if requested > call.secret_lifetime {
        let expiry = format!(
            "{{\"anchor\":\"created_at\",\"seconds\":{}}}",
            call.secret_lifetime
        );
        edit.set.push(("expires_after", Bytes::from(expiry)));
    }
    Ok(Prepared {
        body: if edit.is_empty() {
            whole(body)
        } else {
            object.edited(&edit)
        },
        model,
        stream: false,
        hide_usage: false,
        max_output: None,
    })
}

/// Reads and checks a body; rewrites it where the policy caps it or usage must be asked for.
pub fn prepare(body: Bytes, call: &Call) -> Result<Prepared, BodyRefusal> {
    let policy = call.policy;
    let fields = output_fields(call.operation, call.provider);
    let cap = policy.max_output_tokens.filter(|_| fields.is_some());
    let path_stream = call.operation == Operation::GenerateContent { stream: true };
    if let Some(model) = call.path_model
        && !policy.model_allowed(model)
    {
        return Err(BodyRefusal::ModelNotAllowed);
    }
    if call.operation == Operation::RealtimeClientSecret {
        return prepare_client_secret(body, call);
    }
    if fields.is_none()
        && let Some(boundary) = call.content_type.and_then(multipart::boundary)
    {
        return prepare_form(body, &boundary, call);
    }
    let looks_like_object = body.trim_ascii_start().starts_with(b"{");
    let object = if looks_like_object {
        match Object::parse(body.clone(), READ) {
            Ok(object) => Some(object),
            Err(ObjectError::Duplicate(name)) => return Err(BodyRefusal::Duplicate(name)),
            Err(ObjectError::NotAnObject) => None,
        }
    } else {
        None
    };
    let Some(object) = object else {
        // Not a JSON object: forwarded untouched unless a policy must read it.
        if !body.is_empty() {
            if cap.is_some() {
                return Err(BodyRefusal::NotAnObject);
            }
            if !policy.models.is_empty() && call.path_model.is_none() {
                return Err(BodyRefusal::ModelUnreadable);
            }
        }
        return Ok(Prepared {
            max_output: None,
            body: whole(body),
            model: call.path_model.map(str::to_string),
            stream: path_stream,
            hide_usage: false,
        });
    };

    // The model, and OpenRouter's fallback list: each must be allowed.
    let model = match object.raw("model") {
        None | Some(b"null") => None,
        Some(raw) => match serde_json::from_slice::<String>(raw) {
            Ok(m) => Some(m),
            Err(_) if policy.models.is_empty() => None,
            Err(_) => return Err(BodyRefusal::InvalidField("model")),
        },
    };
    let fallbacks: Vec<String> = match object.raw("models") {
        None | Some(b"null") => Vec::new(),
        Some(raw) => match serde_json::from_slice(raw) {
            Ok(list) => list,
            Err(_) if policy.models.is_empty() => Vec::new(),
            Err(_) => return Err(BodyRefusal::InvalidField("models")),
        },
    };
    if !policy.models.is_empty() {
        let named: Vec<&str> = call
            .path_model
            .into_iter()
            .chain(model.as_deref())
            .chain(fallbacks.iter().map(String::as_str))
            .collect();
        if named.is_empty() {
            return Err(BodyRefusal::ModelUnreadable);
        }
        if !named.iter().all(|m| policy.model_allowed(m)) {
            return Err(BodyRefusal::ModelNotAllowed);
        }
    }

    let stream = match object.raw("stream") {
        None | Some(b"null") => false,
        Some(b"true") => true,
        Some(b"false") => false,
        Some(_) if call.operation.metered() => return Err(BodyRefusal::InvalidField("stream")),
        Some(_) => false,
    } || path_stream;

    let mut edit = Edit::default();
    let mut max_output = None;
    if let Some(fields) = &fields {
        let gemini = call.provider.family == Family::Gemini;
        let config = if gemini {
            gemini_config(&object)?
        } else {
            None
        };
        let holder = config.as_ref().map_or(&object, |(_, c)| c);
        let mut choices = 1u64;
        for &name in fields.choices {
            if let Some(n) = count(holder.raw(name), name)? {
                if n == 0 {
                    return Err(BodyRefusal::InvalidField(name));
                }
                choices = choices.max(n);
            }
        }
        if let Some(cap) = cap {
            // The cap bounds the call's whole output: it is shared among the choices.
            let per_choice = u64::from(cap) / choices;
            if per_choice == 0 {
                return Err(BodyRefusal::TooManyChoices);
            }
            max_output = Some(per_choice * choices);
            let capped = cap_fields(holder, fields, per_choice)?;
            match &config {
                Some((name, config)) => {
                    let config = Bytes::from(config.edited(&capped).to_vec());
                    edit.set.push((name, config));
                }
                None if gemini => {
                    let config = format!("{{\"{}\":{per_choice}}}", fields.primary);
                    edit.set.push(("generationConfig", Bytes::from(config)));
                }
                None => edit = capped,
            }
        } else {
            // Uncapped: the request's own limit, if it set one, bounds it.
            let mut own = None;
            for &name in fields.limits {
                if let Some(v) = count(holder.raw(name), name)? {
                    own = Some(own.map_or(v, |o: u64| o.min(v)));
                }
            }
            max_output = own.and_then(|v| v.checked_mul(choices));
        }
    }

    let mut hide_usage = false;
    let asks_usage = stream
        && call.provider.stream_usage_option
        && matches!(call.provider.family, Family::OpenAi | Family::Azure)
        && matches!(
            call.operation,
            Operation::ChatCompletions | Operation::Completions
        );
    if asks_usage && let Some(options) = stream_options_with_usage(&object)? {
        edit.set.push(("stream_options", options));
        hide_usage = true;
    }

    let body = if edit.is_empty() {
        whole(body)
    } else {
        object.edited(&edit)
    };
    Ok(Prepared {
        body,
        model: call.path_model.map(str::to_string).or(model),
        stream,
        hide_usage,
        max_output,
    })
}

fn whole(body: Bytes) -> Spliced {
    Spliced {
        len: body.len(),
        pieces: if body.is_empty() {
            Vec::new()
        } else {
            vec![body]
        },
    }
}

/// The object a field holds: another type refuses that field, and a duplicate inside it
/// refuses the duplicated one.
fn nested_object(
    raw: Bytes,
    wanted: &[&'static str],
    field: &'static str,
) -> Result<Object, BodyRefusal> {
    Object::parse(raw, wanted).map_err(|e| match e {
        ObjectError::NotAnObject => BodyRefusal::InvalidField(field),
        ObjectError::Duplicate(inner) => BodyRefusal::Duplicate(inner),
    })
}

/// Gemini's generation config, in whichever spelling the body uses (both is an error).
fn gemini_config(object: &Object) -> Result<Option<(&'static str, Object)>, BodyRefusal> {
    let camel = object.get("generationConfig").is_some();
    let snake = object.get("generation_config").is_some();
    let name = match (camel, snake) {
        (true, true) => return Err(BodyRefusal::Duplicate("generationConfig")),
        (true, false) => "generationConfig",
        (false, true) => "generation_config",
        (false, false) => return Ok(None),
    };
    let raw = object.value_bytes(name).expect("present");
    if &raw[..] == b"null" {
        return Ok(None);
    }
    let config = nested_object(raw, GEMINI_CONFIG, name)?;
    for (camel, snake) in [
        ("maxOutputTokens", "max_output_tokens"),
        ("candidateCount", "candidate_count"),
    ] {
        if config.get(camel).is_some() && config.get(snake).is_some() {
            return Err(BodyRefusal::Duplicate(camel));
        }
    }
    Ok(Some((name, config)))
}

/// `stream_options` with `include_usage: true`, or `None` when the client asked already.
fn stream_options_with_usage(object: &Object) -> Result<Option<Bytes>, BodyRefusal> {
    const ASKED: &[u8] = br#"{"include_usage":true}"#;
    let Some(raw) = object.value_bytes("stream_options") else {
        return Ok(Some(Bytes::from_static(ASKED)));
    };
    if &raw[..] == b"null" {
        return Ok(Some(Bytes::from_static(ASKED)));
    }
    let options = nested_object(raw, &["include_usage"], "stream_options")?;
    if options.raw("include_usage") == Some(b"true") {
        return Ok(None);
    }
    let asked = Edit {
        remove: Vec::new(),
        set: vec![("include_usage", Bytes::from_static(b"true"))],
    };
    Ok(Some(Bytes::from(options.edited(&asked).to_vec())))
}

#[cfg(test)]
mod tests;
