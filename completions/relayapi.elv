
use builtin;
use str;

set edit:completion:arg-completer[relayapi] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'relayapi'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'relayapi'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand keygen 'Create the server''s P-256 key pair (or rotate it, or list the key ring)'
            cand token 'Issue, list, show and revoke tokens'
            cand issuer 'Register, list and revoke issuers (backends that mint signed tokens offline)'
            cand usage 'Report usage per token, model or day'
            cand relays 'List the relays sharing this PostgreSQL database, from their heartbeats'
            cand migrate 'Apply pending database migrations, or list their status'
            cand providers 'List the providers the relay knows, with base URL and auth style'
            cand completions 'Print a shell completion script'
            cand serve 'Run the relay: open tokens, check them, count calls, forward to the provider'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'relayapi;keygen'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --rotate 'Make a new active key; older keys stay so that their tokens still open'
            cand --list 'List the key ring (kid, created, active) instead of creating a key'
            cand --announce 'Only tell the relays on this PostgreSQL database to read their key rings again (after a rotated ring was copied to their hosts); --rotate does it too'
            cand --json 'Print JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;token'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand -h 'Print help'
            cand --help 'Print help'
            cand issue 'Issue a token that seals a provider API key'
            cand list 'List tokens (active and exhausted; --all adds revoked and expired)'
            cand show 'Show one token'
            cand update 'Change a token''s limits and policies (seen by running relays within a second)'
            cand revoke 'Revoke a token: the relay refuses it from then on'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'relayapi;token;issue'= {
            cand --provider 'Provider (see `relayapi providers`); `custom` for any other OpenAI-compatible server'
            cand --upstream 'Base URL replacing the provider''s (self-hosted or local servers; required for azure and custom)'
            cand --auth 'How a custom provider takes the key: bearer, x-api-key, header:NAME or query:NAME'
            cand --name 'A label for people'
            cand --api-key-env 'Read the provider API key from this environment variable'
            cand --max-calls 'Most calls the token may make [default: unlimited]'
            cand --max-total-tokens 'Budget of total (prompt + completion) tokens [default: unlimited]'
            cand --expires-in 'Lifetime from now, like 30m, 24h, 7d [default: never expires]'
            cand --expires-at 'Expiry time, RFC 3339 (2026-12-31T23:59:00Z)'
            cand --model 'Allowed model (repeatable; a trailing * matches a prefix)'
            cand --origin 'Allowed browser origin, exactly (repeatable)'
            cand --ip 'Allowed client network, CIDR or address (repeatable)'
            cand --endpoint 'Allowed request path (repeatable; a trailing * matches a prefix) [default: the provider''s inference endpoints]'
            cand --rpm 'Requests per minute (per relay process)'
            cand --concurrency 'Requests in flight at once, streams included (per relay process)'
            cand --max-output-tokens 'Cap on the output tokens a request may ask for (set when absent, lowered when higher)'
            cand --max-session 'Longest a realtime session may stay open, like 10m [default: serve --max-session]'
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --api-key-stdin 'Read the provider API key from standard input'
            cand --json 'Print one JSON object'
            cand -q 'Print the token alone'
            cand --quiet 'Print the token alone'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;token;list'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --all 'Include revoked and expired tokens'
            cand --json 'Print a JSON array'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;token;show'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --json 'Print JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;token;update'= {
            cand --name 'A new label'
            cand --max-calls 'Most calls the token may make [default: unlimited]'
            cand --max-total-tokens 'Budget of total (prompt + completion) tokens [default: unlimited]'
            cand --expires-in 'Lifetime from now, like 30m, 24h, 7d [default: never expires]'
            cand --expires-at 'Expiry time, RFC 3339 (2026-12-31T23:59:00Z)'
            cand --model 'Allowed model (repeatable; a trailing * matches a prefix)'
            cand --origin 'Allowed browser origin, exactly (repeatable)'
            cand --ip 'Allowed client network, CIDR or address (repeatable)'
            cand --endpoint 'Allowed request path (repeatable; a trailing * matches a prefix) [default: the provider''s inference endpoints]'
            cand --rpm 'Requests per minute (per relay process)'
            cand --concurrency 'Requests in flight at once, streams included (per relay process)'
            cand --max-output-tokens 'Cap on the output tokens a request may ask for (set when absent, lowered when higher)'
            cand --max-session 'Longest a realtime session may stay open, like 10m [default: serve --max-session]'
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --clear-max-calls 'Remove the call limit'
            cand --clear-max-total-tokens 'Remove the token budget'
            cand --clear-expiry 'Make the token never expire'
            cand --clear-models 'Allow any model'
            cand --clear-origins 'Allow any origin'
            cand --clear-ips 'Allow any client address'
            cand --clear-endpoints 'Back to the provider''s default endpoints'
            cand --clear-rpm 'Remove the rate limit'
            cand --clear-concurrency 'Remove the concurrency limit'
            cand --clear-max-output-tokens 'Remove the output-token cap'
            cand --clear-max-session 'Back to the relay''s session length limit'
            cand --json 'Print JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;token;revoke'= {
            cand --issuer 'For a signed token never used yet (so not in the store): the issuer that minted it; the full id is then required'
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --json 'Print JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;token;help'= {
            cand issue 'Issue a token that seals a provider API key'
            cand list 'List tokens (active and exhausted; --all adds revoked and expired)'
            cand show 'Show one token'
            cand update 'Change a token''s limits and policies (seen by running relays within a second)'
            cand revoke 'Revoke a token: the relay refuses it from then on'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'relayapi;token;help;issue'= {
        }
        &'relayapi;token;help;list'= {
        }
        &'relayapi;token;help;show'= {
        }
        &'relayapi;token;help;update'= {
        }
        &'relayapi;token;help;revoke'= {
        }
        &'relayapi;token;help;help'= {
        }
        &'relayapi;issuer'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand -h 'Print help'
            cand --help 'Print help'
            cand add 'Register a backend that mints signed tokens offline, with its caps'
            cand list 'List issuers'
            cand revoke 'Revoke an issuer: all its tokens stop working'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'relayapi;issuer;add'= {
            cand --provider 'Provider its tokens may use (repeatable; at least one)'
            cand --upstream 'Upstream base URL its tokens may name (repeatable; none: providers'' own URLs only)'
            cand --max-lifetime 'Longest token lifetime, like 15m or 1h'
            cand --max-calls 'Most calls per token (tokens without max_calls get this)'
            cand --require 'Policy its tokens must carry (repeatable)'
            cand --public-key 'The backend''s P-256 public key (PEM or SEC1 hex); without it a key pair is made'
            cand --private-key-out 'Write the generated private key here (mode 0600) instead of printing it'
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --json 'Print JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;issuer;list'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --json 'Print JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;issuer;revoke'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;issuer;help'= {
            cand add 'Register a backend that mints signed tokens offline, with its caps'
            cand list 'List issuers'
            cand revoke 'Revoke an issuer: all its tokens stop working'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'relayapi;issuer;help;add'= {
        }
        &'relayapi;issuer;help;list'= {
        }
        &'relayapi;issuer;help;revoke'= {
        }
        &'relayapi;issuer;help;help'= {
        }
        &'relayapi;usage'= {
            cand --by 'Group by token, model or day (UTC)'
            cand --token 'Only this token (id or unique prefix)'
            cand --since 'From this time on: a duration back from now (24h, 7d) or an RFC 3339 time'
            cand --until 'Before this time: a duration back from now or an RFC 3339 time'
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --json 'Print a JSON array'
            cand --csv 'Print CSV'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;relays'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --json 'Print JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;migrate'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --status 'List applied and pending migrations without applying any'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;providers'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --json 'Print JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;completions'= {
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;serve'= {
            cand --trusted-proxy 'Proxy whose X-Forwarded-For is believed for --ip policies (repeatable CIDR)'
            cand --metrics-listen 'Serve /metrics on its own address instead (e.g. 127.0.0.1:9090)'
            cand --admin-token-env 'Enable the admin API, with the secret read from this environment variable'
            cand --admin-listen 'Serve the admin API on its own address (e.g. 127.0.0.1:8081) instead of the main one'
            cand --tls-cert 'Serve HTTPS (HTTP/2 and HTTP/1.1) with this certificate chain (PEM); read again on SIGHUP'
            cand --tls-key 'The private key of --tls-cert (PEM)'
            cand --client-secret-lifetime 'Longest life of a realtime client secret minted through the relay; never past the token''s own expiry [default: 10m]'
            cand --client-timeout 'Time a client has to send a request''s headers, and again its body [default: 30s]'
            cand --connect-timeout 'Time allowed to connect to a provider [default: 10s]'
            cand --grace-period 'How long in-flight requests may finish after SIGINT/SIGTERM [default: 30s]'
            cand --idle-timeout 'Longest pause between two chunks of a response, or between two messages of a realtime session; no limit on a whole stream [default: 2m]'
            cand --listen 'Address to listen on [default: 127.0.0.1:8080]'
            cand --max-body 'Largest request body accepted, like 32MiB [default: 32MiB]'
            cand --max-body-memory 'Most memory the bodies of all requests in flight may hold together; past it a request gets 503 relay_busy [default: 256MiB]'
            cand --max-message 'Largest WebSocket message a realtime session relays; a larger one closes the session with 1009 [default: 16MiB]'
            cand --max-session 'Longest a realtime session may stay open; then both sides are closed with 1008 [default: 1h]'
            cand --upstream-timeout 'Time allowed until a provider''s response headers [default: 5m]'
            cand --data-dir 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]'
            cand --database-url 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]'
            cand --database-connections 'PostgreSQL: the most database connections this process keeps open [default: 32]'
            cand --config 'TOML file with the same settings [default: ./relayapi.toml when present]'
            cand --metrics 'Serve Prometheus metrics at /metrics on the main listener'
            cand --print-config 'Print the settings in effect (defaults, relayapi.toml, environment and flags merged) as relayapi.toml would hold them, and exit'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'relayapi;help'= {
            cand keygen 'Create the server''s P-256 key pair (or rotate it, or list the key ring)'
            cand token 'Issue, list, show and revoke tokens'
            cand issuer 'Register, list and revoke issuers (backends that mint signed tokens offline)'
            cand usage 'Report usage per token, model or day'
            cand relays 'List the relays sharing this PostgreSQL database, from their heartbeats'
            cand migrate 'Apply pending database migrations, or list their status'
            cand providers 'List the providers the relay knows, with base URL and auth style'
            cand completions 'Print a shell completion script'
            cand serve 'Run the relay: open tokens, check them, count calls, forward to the provider'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'relayapi;help;keygen'= {
        }
        &'relayapi;help;token'= {
            cand issue 'Issue a token that seals a provider API key'
            cand list 'List tokens (active and exhausted; --all adds revoked and expired)'
            cand show 'Show one token'
            cand update 'Change a token''s limits and policies (seen by running relays within a second)'
            cand revoke 'Revoke a token: the relay refuses it from then on'
        }
        &'relayapi;help;token;issue'= {
        }
        &'relayapi;help;token;list'= {
        }
        &'relayapi;help;token;show'= {
        }
        &'relayapi;help;token;update'= {
        }
        &'relayapi;help;token;revoke'= {
        }
        &'relayapi;help;issuer'= {
            cand add 'Register a backend that mints signed tokens offline, with its caps'
            cand list 'List issuers'
            cand revoke 'Revoke an issuer: all its tokens stop working'
        }
        &'relayapi;help;issuer;add'= {
        }
        &'relayapi;help;issuer;list'= {
        }
        &'relayapi;help;issuer;revoke'= {
        }
        &'relayapi;help;usage'= {
        }
        &'relayapi;help;relays'= {
        }
        &'relayapi;help;migrate'= {
        }
        &'relayapi;help;providers'= {
        }
        &'relayapi;help;completions'= {
        }
        &'relayapi;help;serve'= {
        }
        &'relayapi;help;help'= {
        }
    ]
    $completions[$command]
}
