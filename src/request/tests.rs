use serde_json::{Value, json};

use super::*;
use crate::providers::{Operation, lookup};

fn policy(cap: Option<u32>, models: &[&str]) -> Policy {
    Policy {
        max_output_tokens: cap,
        models: models.iter().map(|m| m.to_string()).collect(),
        ..Policy::default()
    }
}

fn run(
    provider: &str,
    path: &str,
    policy: &Policy,
    body: Value,
) -> Result<(Value, Prepared), BodyRefusal> {
    let provider = lookup(provider).unwrap();
    let call = Call {
        provider,
        operation: Operation::of(provider.family, &http::Method::POST, path),
        path_model: crate::providers::model_in_path(provider.family, path),
        content_type: None,
        secret_lifetime: 0,
        policy,
    };
    let prepared = prepare(Bytes::from(body.to_string()), &call)?;
    let sent = serde_json::from_slice(&prepared.body.to_vec()).expect("valid JSON sent");
    Ok((sent, prepared))
}

#[test]
fn a_null_limit_is_replaced_by_the_cap_in_every_spelling() {
    let p = policy(Some(100), &[]);
    let (sent, _) = run(
        "openai",
        "/v1/chat/completions",
        &p,
        json!({"model":"m","max_completion_tokens":null,"max_tokens":null}),
    )
    .unwrap();
    assert_eq!(sent, json!({"model":"m","max_completion_tokens":100}));
    let (sent, _) = run(
        "openai",
        "/v1/responses",
        &p,
        json!({"max_output_tokens":null}),
    )
    .unwrap();
    assert_eq!(sent, json!({"max_output_tokens":100}));
    let (sent, _) = run(
        "anthropic",
        "/v1/complete",
        &p,
        json!({"prompt":"x","max_tokens_to_sample":100000}),
    )
    .unwrap();
    assert_eq!(sent["max_tokens_to_sample"], 100);
    let (sent, _) = run("anthropic", "/v1/messages", &p, json!({"max_tokens":null})).unwrap();
    assert_eq!(sent["max_tokens"], 100);
    // A compatible provider gets the field it knows; a lower value stays.
    let (sent, _) = run(
        "groq",
        "/openai/v1/chat/completions",
        &p,
        json!({"max_tokens":7}),
    )
    .unwrap();
    assert_eq!(sent, json!({"max_tokens":7}));
}

#[test]
fn the_cap_is_shared_among_choices() {
    let p = policy(Some(100), &[]);
    let (sent, prepared) = run(
        "openai",
        "/v1/chat/completions",
        &p,
        json!({"n":4,"max_tokens":1000}),
    )
    .unwrap();
    assert_eq!(sent, json!({"n":4,"max_tokens":25}));
    assert_eq!(prepared.max_output, Some(100));
    let (sent, _) = run(
        "openai",
        "/v1/completions",
        &p,
        json!({"prompt":"x","best_of":5,"n":2}),
    )
    .unwrap();
    assert_eq!(sent["max_tokens"], 20);
    assert_eq!(
        run("openai", "/v1/chat/completions", &p, json!({"n":101})).unwrap_err(),
        BodyRefusal::TooManyChoices
    );
    for bad in [
        json!({"n":0}),
        json!({"n":"2"}),
        json!({"n":1.5}),
        json!({"n":-1}),
    ] {
        assert_eq!(
            run("openai", "/v1/chat/completions", &p, bad).unwrap_err(),
            BodyRefusal::InvalidField("n")
        );
    }
}

#[test]
fn gemini_configs_are_capped_in_either_spelling() {
    let p = policy(Some(90), &[]);
    let path = "/v1beta/models/gemini-2.0-flash:generateContent";
    let (sent, _) = run(
        "gemini",
        path,
        &p,
        json!({"contents":[],"generation_config":{"max_output_tokens":5000,"candidate_count":3}}),
    )
    .unwrap();
    assert_eq!(
        sent["generation_config"],
        json!({"max_output_tokens":30,"candidate_count":3})
    );
    assert!(sent.get("generationConfig").is_none());
    let (sent, _) = run("gemini", path, &p, json!({"contents":[]})).unwrap();
    assert_eq!(sent["generationConfig"], json!({"maxOutputTokens":90}));
    let (sent, _) = run(
        "gemini",
        path,
        &p,
        json!({"generationConfig":{"temperature":0.5,"maxOutputTokens":null}}),
    )
    .unwrap();
    assert_eq!(
        sent["generationConfig"],
        json!({"temperature":0.5,"maxOutputTokens":90})
    );
    for twice in [
        json!({"generationConfig":{},"generation_config":{}}),
        json!({"generationConfig":{"maxOutputTokens":1,"max_output_tokens":1}}),
    ] {
        assert!(matches!(
            run("gemini", path, &p, twice).unwrap_err(),
            BodyRefusal::Duplicate(_)
        ));
    }
}

#[test]
fn duplicate_read_fields_are_refused() {
    let p = Policy::default();
    let provider = lookup("openai").unwrap();
    let call = Call {
        provider,
        operation: Operation::ChatCompletions,
        path_model: None,
        content_type: None,
        secret_lifetime: 0,
        policy: &p,
    };
    for body in [
        r#"{"stream":false,"stream":true}"#,
        r#"{"model":"a","model":"b"}"#,
        r#"{"max_tokens":1,"max_tokens":null}"#,
        r#"{"stream":true,"stream_options":{"include_usage":false,"include_usage":true}}"#,
    ] {
        assert!(
            matches!(
                prepare(Bytes::from(body), &call).unwrap_err(),
                BodyRefusal::Duplicate(_)
            ),
            "{body}"
        );
    }
    assert_eq!(
        prepare(Bytes::from(r#"{"stream":"yes"}"#), &call).unwrap_err(),
        BodyRefusal::InvalidField("stream")
    );
}

#[test]
fn every_model_a_body_or_path_names_must_be_allowed() {
    let p = policy(None, &["gpt-4o*"]);
    assert!(
        run(
            "openrouter",
            "/v1/chat/completions",
            &p,
            json!({"model":"gpt-4o"})
        )
        .is_ok()
    );
    assert_eq!(
        run(
            "openrouter",
            "/v1/chat/completions",
            &p,
            json!({"model":"gpt-4o","models":["gpt-4o-mini","anthropic/claude-opus-4"]})
        )
        .unwrap_err(),
        BodyRefusal::ModelNotAllowed
    );
    assert!(
        run(
            "openrouter",
            "/v1/chat/completions",
            &p,
            json!({"models":["gpt-4o-mini"]})
        )
        .is_ok()
    );
    assert_eq!(
        run("openai", "/v1/chat/completions", &p, json!({"messages":[]})).unwrap_err(),
        BodyRefusal::ModelUnreadable
    );
    // Azure runs the deployment the path names, whatever the body says.
    assert_eq!(
        run(
            "azure",
            "/openai/deployments/o1-pro/chat/completions",
            &p,
            json!({"model":"gpt-4o"})
        )
        .unwrap_err(),
        BodyRefusal::ModelNotAllowed
    );
    let (_, prepared) = run(
        "azure",
        "/openai/deployments/gpt-4o-prod/chat/completions",
        &p,
        json!({"messages":[]}),
    )
    .unwrap();
    assert_eq!(prepared.model.as_deref(), Some("gpt-4o-prod"));
}

#[test]
fn streams_ask_for_usage_on_chat_and_legacy_completions() {
    let p = Policy::default();
    for path in ["/v1/chat/completions", "/v1/completions"] {
        let (sent, prepared) = run("openai", path, &p, json!({"stream":true})).unwrap();
        assert_eq!(
            sent["stream_options"],
            json!({"include_usage":true}),
            "{path}"
        );
        assert!(prepared.hide_usage && prepared.stream);
    }
    let (sent, prepared) = run(
        "openai",
        "/v1/chat/completions",
        &p,
        json!({"stream":true,"stream_options":{"include_usage":true}}),
    )
    .unwrap();
    assert_eq!(sent["stream_options"], json!({"include_usage":true}));
    assert!(!prepared.hide_usage);
    let (sent, _) = run(
        "openai",
        "/v1/chat/completions",
        &p,
        json!({"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":false}}),
    )
    .unwrap();
    assert_eq!(
        sent["stream_options"],
        json!({"include_obfuscation":false,"include_usage":true})
    );
    // Mistral does not take the option: nothing is added.
    let (sent, _) = run(
        "mistral",
        "/v1/chat/completions",
        &p,
        json!({"stream":true}),
    )
    .unwrap();
    assert!(sent.get("stream_options").is_none());
}

/// An OpenAI transcription upload, a form with boundary `x`, under `policy`.
fn upload(policy: &Policy) -> Call<'_> {
    let provider = lookup("openai").unwrap();
    Call {
        provider,
        operation: Operation::of(
            provider.family,
            &http::Method::POST,
            "/v1/audio/transcriptions",
        ),
        path_model: None,
        content_type: Some("multipart/form-data; boundary=x"),
        secret_lifetime: 0,
        policy,
    }
}

#[test]
fn bodies_the_cap_does_not_concern_pass_untouched() {
    let p = policy(Some(10), &[]);
    let call = upload(&p);
    let form = Bytes::from_static(
        b"--x\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--x--\r\n",
    );
    let prepared = prepare(form.clone(), &call).unwrap();
    assert_eq!(prepared.body.to_vec(), form.to_vec());
    let chat = Call {
        operation: Operation::ChatCompletions,
        ..call
    };
    assert_eq!(prepare(form, &chat).unwrap_err(), BodyRefusal::NotAnObject);
}

#[test]
fn a_form_s_model_is_held_to_the_allow_list() {
    let p = policy(Some(10), &["whisper-1"]);
    let call = upload(&p);
    let form = |model: &str| {
        Bytes::from(format!(
            "--x\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n\
             RIFF....\r\n--x\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n--x--\r\n"
        ))
    };
    let allowed = prepare(form("whisper-1"), &call).unwrap();
    assert_eq!(allowed.model.as_deref(), Some("whisper-1"));
    assert_eq!(
        allowed.body.to_vec(),
        form("whisper-1").to_vec(),
        "forwarded as it came"
    );
    assert_eq!(
        prepare(form("gpt-4o-transcribe"), &call).unwrap_err(),
        BodyRefusal::ModelNotAllowed
    );
    let no_model = Bytes::from_static(
        b"--x\r\ncontent-disposition: form-data; name=\"file\"\r\n\r\nRIFF\r\n--x--\r\n",
    );
    assert_eq!(
        prepare(no_model, &call).unwrap_err(),
        BodyRefusal::ModelUnreadable
    );
    let unclosed = Bytes::from_static(b"--x\r\ncontent-disposition: form-data; name=\"model\"");
    assert_eq!(
        prepare(unclosed, &call).unwrap_err(),
        BodyRefusal::MalformedForm
    );
}

#[test]
fn a_client_secret_is_held_to_the_model_list_and_outlives_no_token() {
    let p = policy(None, &["gpt-realtime*"]);
    let provider = lookup("openai").unwrap();
    let call = Call {
        provider,
        operation: Operation::RealtimeClientSecret,
        path_model: None,
        content_type: Some("application/json"),
        policy: &p,
        secret_lifetime: 300,
    };
    let sent = |body: Value| -> Result<(Value, Option<String>), BodyRefusal> {
        let prepared = prepare(Bytes::from(body.to_string()), &call)?;
        Ok((
            serde_json::from_slice(&prepared.body.to_vec()).unwrap(),
            prepared.model,
        ))
    };
    // Asked for an hour: lowered to the five minutes the token allows.
    let (body, model) = sent(json!({
        "expires_after": {"anchor": "created_at", "seconds": 3600},
        "session": {"type": "realtime", "model": "gpt-realtime", "instructions": "hi"}
    }))
    .unwrap();
    assert_eq!(
        body["expires_after"],
        json!({"anchor": "created_at", "seconds": 300})
    );
    assert_eq!(body["session"]["instructions"], "hi");
    assert_eq!(model.as_deref(), Some("gpt-realtime"));
    // No lifetime asked: OpenAI's ten minutes would outlive the token, so it is set.
    let (body, _) =
        sent(json!({"session": {"type": "realtime", "model": "gpt-realtime"}})).unwrap();
    assert_eq!(body["expires_after"]["seconds"], 300);
    // Within bounds: sent as it came.
    let asked = json!({"expires_after": {"anchor": "created_at", "seconds": 60},
                       "session": {"type": "realtime", "model": "gpt-realtime"}});
    assert_eq!(sent(asked.clone()).unwrap().0, asked);

    for (body, refusal) in [
        (
            json!({"session": {"type": "realtime", "model": "gpt-4o-realtime-preview"}}),
            BodyRefusal::ModelNotAllowed,
        ),
        (
            json!({"session": {"type": "realtime"}}),
            BodyRefusal::ModelUnreadable,
        ),
        (
            json!({"session": "gpt-realtime"}),
            BodyRefusal::InvalidField("session"),
        ),
        (
            json!({"session": {"model": "gpt-realtime"}, "expires_after": {"seconds": -1}}),
            BodyRefusal::InvalidField("expires_after"),
        ),
    ] {
        assert_eq!(sent(body.clone()).unwrap_err(), refusal, "{body}");
    }
    let twice = br#"{"session":{"model":"gpt-realtime","model":"o3"}}"#;
    assert_eq!(
        prepare(Bytes::from_static(twice), &call).unwrap_err(),
        BodyRefusal::Duplicate("model")
    );
}
