
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'relayapi' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'relayapi'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'relayapi' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Create the server''s P-256 key pair (or rotate it, or list the key ring)')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Issue, list, show and revoke tokens')
            [CompletionResult]::new('issuer', 'issuer', [CompletionResultType]::ParameterValue, 'Register, list and revoke issuers (backends that mint signed tokens offline)')
            [CompletionResult]::new('usage', 'usage', [CompletionResultType]::ParameterValue, 'Report usage per token, model or day')
            [CompletionResult]::new('relays', 'relays', [CompletionResultType]::ParameterValue, 'List the relays sharing this PostgreSQL database, from their heartbeats')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Apply pending database migrations, or list their status')
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'List the providers the relay knows, with base URL and auth style')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the relay: open tokens, check them, count calls, forward to the provider')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'relayapi;keygen' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--rotate', '--rotate', [CompletionResultType]::ParameterName, 'Make a new active key; older keys stay so that their tokens still open')
            [CompletionResult]::new('--list', '--list', [CompletionResultType]::ParameterName, 'List the key ring (kid, created, active) instead of creating a key')
            [CompletionResult]::new('--announce', '--announce', [CompletionResultType]::ParameterName, 'Only tell the relays on this PostgreSQL database to read their key rings again (after a rotated ring was copied to their hosts); --rotate does it too')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;token' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue a token that seals a provider API key')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (active and exhausted; --all adds revoked and expired)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one token')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a token''s limits and policies (seen by running relays within a second)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a token: the relay refuses it from then on')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'relayapi;token;issue' {
            [CompletionResult]::new('--provider', '--provider', [CompletionResultType]::ParameterName, 'Provider (see `relayapi providers`); `custom` for any other OpenAI-compatible server')
            [CompletionResult]::new('--upstream', '--upstream', [CompletionResultType]::ParameterName, 'Base URL replacing the provider''s (self-hosted or local servers; required for azure and custom)')
            [CompletionResult]::new('--auth', '--auth', [CompletionResultType]::ParameterName, 'How a custom provider takes the key: bearer, x-api-key, header:NAME or query:NAME')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A label for people')
            [CompletionResult]::new('--api-key-env', '--api-key-env', [CompletionResultType]::ParameterName, 'Read the provider API key from this environment variable')
            [CompletionResult]::new('--max-calls', '--max-calls', [CompletionResultType]::ParameterName, 'Most calls the token may make [default: unlimited]')
            [CompletionResult]::new('--max-total-tokens', '--max-total-tokens', [CompletionResultType]::ParameterName, 'Budget of total (prompt + completion) tokens [default: unlimited]')
            [CompletionResult]::new('--expires-in', '--expires-in', [CompletionResultType]::ParameterName, 'Lifetime from now, like 30m, 24h, 7d [default: never expires]')
            [CompletionResult]::new('--expires-at', '--expires-at', [CompletionResultType]::ParameterName, 'Expiry time, RFC 3339 (2026-12-31T23:59:00Z)')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Allowed model (repeatable; a trailing * matches a prefix)')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Allowed browser origin, exactly (repeatable)')
            [CompletionResult]::new('--ip', '--ip', [CompletionResultType]::ParameterName, 'Allowed client network, CIDR or address (repeatable)')
            [CompletionResult]::new('--endpoint', '--endpoint', [CompletionResultType]::ParameterName, 'Allowed request path (repeatable; a trailing * matches a prefix) [default: the provider''s inference endpoints]')
            [CompletionResult]::new('--rpm', '--rpm', [CompletionResultType]::ParameterName, 'Requests per minute (per relay process)')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Requests in flight at once, streams included (per relay process)')
            [CompletionResult]::new('--max-output-tokens', '--max-output-tokens', [CompletionResultType]::ParameterName, 'Cap on the output tokens a request may ask for (set when absent, lowered when higher)')
            [CompletionResult]::new('--max-session', '--max-session', [CompletionResultType]::ParameterName, 'Longest a realtime session may stay open, like 10m [default: serve --max-session]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--api-key-stdin', '--api-key-stdin', [CompletionResultType]::ParameterName, 'Read the provider API key from standard input')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print the token alone')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print the token alone')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;token;list' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Include revoked and expired tokens')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON array')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;token;show' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;token;update' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A new label')
            [CompletionResult]::new('--max-calls', '--max-calls', [CompletionResultType]::ParameterName, 'Most calls the token may make [default: unlimited]')
            [CompletionResult]::new('--max-total-tokens', '--max-total-tokens', [CompletionResultType]::ParameterName, 'Budget of total (prompt + completion) tokens [default: unlimited]')
            [CompletionResult]::new('--expires-in', '--expires-in', [CompletionResultType]::ParameterName, 'Lifetime from now, like 30m, 24h, 7d [default: never expires]')
            [CompletionResult]::new('--expires-at', '--expires-at', [CompletionResultType]::ParameterName, 'Expiry time, RFC 3339 (2026-12-31T23:59:00Z)')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Allowed model (repeatable; a trailing * matches a prefix)')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Allowed browser origin, exactly (repeatable)')
            [CompletionResult]::new('--ip', '--ip', [CompletionResultType]::ParameterName, 'Allowed client network, CIDR or address (repeatable)')
            [CompletionResult]::new('--endpoint', '--endpoint', [CompletionResultType]::ParameterName, 'Allowed request path (repeatable; a trailing * matches a prefix) [default: the provider''s inference endpoints]')
            [CompletionResult]::new('--rpm', '--rpm', [CompletionResultType]::ParameterName, 'Requests per minute (per relay process)')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Requests in flight at once, streams included (per relay process)')
            [CompletionResult]::new('--max-output-tokens', '--max-output-tokens', [CompletionResultType]::ParameterName, 'Cap on the output tokens a request may ask for (set when absent, lowered when higher)')
            [CompletionResult]::new('--max-session', '--max-session', [CompletionResultType]::ParameterName, 'Longest a realtime session may stay open, like 10m [default: serve --max-session]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--clear-max-calls', '--clear-max-calls', [CompletionResultType]::ParameterName, 'Remove the call limit')
            [CompletionResult]::new('--clear-max-total-tokens', '--clear-max-total-tokens', [CompletionResultType]::ParameterName, 'Remove the token budget')
            [CompletionResult]::new('--clear-expiry', '--clear-expiry', [CompletionResultType]::ParameterName, 'Make the token never expire')
            [CompletionResult]::new('--clear-models', '--clear-models', [CompletionResultType]::ParameterName, 'Allow any model')
            [CompletionResult]::new('--clear-origins', '--clear-origins', [CompletionResultType]::ParameterName, 'Allow any origin')
            [CompletionResult]::new('--clear-ips', '--clear-ips', [CompletionResultType]::ParameterName, 'Allow any client address')
            [CompletionResult]::new('--clear-endpoints', '--clear-endpoints', [CompletionResultType]::ParameterName, 'Back to the provider''s default endpoints')
            [CompletionResult]::new('--clear-rpm', '--clear-rpm', [CompletionResultType]::ParameterName, 'Remove the rate limit')
            [CompletionResult]::new('--clear-concurrency', '--clear-concurrency', [CompletionResultType]::ParameterName, 'Remove the concurrency limit')
            [CompletionResult]::new('--clear-max-output-tokens', '--clear-max-output-tokens', [CompletionResultType]::ParameterName, 'Remove the output-token cap')
            [CompletionResult]::new('--clear-max-session', '--clear-max-session', [CompletionResultType]::ParameterName, 'Back to the relay''s session length limit')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;token;revoke' {
            [CompletionResult]::new('--issuer', '--issuer', [CompletionResultType]::ParameterName, 'For a signed token never used yet (so not in the store): the issuer that minted it; the full id is then required')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;token;help' {
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue a token that seals a provider API key')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (active and exhausted; --all adds revoked and expired)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one token')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a token''s limits and policies (seen by running relays within a second)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a token: the relay refuses it from then on')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'relayapi;token;help;issue' {
            break
        }
        'relayapi;token;help;list' {
            break
        }
        'relayapi;token;help;show' {
            break
        }
        'relayapi;token;help;update' {
            break
        }
        'relayapi;token;help;revoke' {
            break
        }
        'relayapi;token;help;help' {
            break
        }
        'relayapi;issuer' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a backend that mints signed tokens offline, with its caps')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List issuers')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an issuer: all its tokens stop working')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'relayapi;issuer;add' {
            [CompletionResult]::new('--provider', '--provider', [CompletionResultType]::ParameterName, 'Provider its tokens may use (repeatable; at least one)')
            [CompletionResult]::new('--upstream', '--upstream', [CompletionResultType]::ParameterName, 'Upstream base URL its tokens may name (repeatable; none: providers'' own URLs only)')
            [CompletionResult]::new('--max-lifetime', '--max-lifetime', [CompletionResultType]::ParameterName, 'Longest token lifetime, like 15m or 1h')
            [CompletionResult]::new('--max-calls', '--max-calls', [CompletionResultType]::ParameterName, 'Most calls per token (tokens without max_calls get this)')
            [CompletionResult]::new('--require', '--require', [CompletionResultType]::ParameterName, 'Policy its tokens must carry (repeatable)')
            [CompletionResult]::new('--public-key', '--public-key', [CompletionResultType]::ParameterName, 'The backend''s P-256 public key (PEM or SEC1 hex); without it a key pair is made')
            [CompletionResult]::new('--private-key-out', '--private-key-out', [CompletionResultType]::ParameterName, 'Write the generated private key here (mode 0600) instead of printing it')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;issuer;list' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;issuer;revoke' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;issuer;help' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a backend that mints signed tokens offline, with its caps')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List issuers')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an issuer: all its tokens stop working')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'relayapi;issuer;help;add' {
            break
        }
        'relayapi;issuer;help;list' {
            break
        }
        'relayapi;issuer;help;revoke' {
            break
        }
        'relayapi;issuer;help;help' {
            break
        }
        'relayapi;usage' {
            [CompletionResult]::new('--by', '--by', [CompletionResultType]::ParameterName, 'Group by token, model or day (UTC)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Only this token (id or unique prefix)')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'From this time on: a duration back from now (24h, 7d) or an RFC 3339 time')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Before this time: a duration back from now or an RFC 3339 time')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON array')
            [CompletionResult]::new('--csv', '--csv', [CompletionResultType]::ParameterName, 'Print CSV')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;relays' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;migrate' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'List applied and pending migrations without applying any')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;providers' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;completions' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;serve' {
            [CompletionResult]::new('--trusted-proxy', '--trusted-proxy', [CompletionResultType]::ParameterName, 'Proxy whose X-Forwarded-For is believed for --ip policies (repeatable CIDR)')
            [CompletionResult]::new('--metrics-listen', '--metrics-listen', [CompletionResultType]::ParameterName, 'Serve /metrics on its own address instead (e.g. 127.0.0.1:9090)')
            [CompletionResult]::new('--admin-token-env', '--admin-token-env', [CompletionResultType]::ParameterName, 'Enable the admin API, with the secret read from this environment variable')
            [CompletionResult]::new('--admin-listen', '--admin-listen', [CompletionResultType]::ParameterName, 'Serve the admin API on its own address (e.g. 127.0.0.1:8081) instead of the main one')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve HTTPS (HTTP/2 and HTTP/1.1) with this certificate chain (PEM); read again on SIGHUP')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The private key of --tls-cert (PEM)')
            [CompletionResult]::new('--client-secret-lifetime', '--client-secret-lifetime', [CompletionResultType]::ParameterName, 'Longest life of a realtime client secret minted through the relay; never past the token''s own expiry [default: 10m]')
            [CompletionResult]::new('--client-timeout', '--client-timeout', [CompletionResultType]::ParameterName, 'Time a client has to send a request''s headers, and again its body [default: 30s]')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Time allowed to connect to a provider [default: 10s]')
            [CompletionResult]::new('--grace-period', '--grace-period', [CompletionResultType]::ParameterName, 'How long in-flight requests may finish after SIGINT/SIGTERM [default: 30s]')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Longest pause between two chunks of a response, or between two messages of a realtime session; no limit on a whole stream [default: 2m]')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on [default: 127.0.0.1:8080]')
            [CompletionResult]::new('--max-body', '--max-body', [CompletionResultType]::ParameterName, 'Largest request body accepted, like 32MiB [default: 32MiB]')
            [CompletionResult]::new('--max-body-memory', '--max-body-memory', [CompletionResultType]::ParameterName, 'Most memory the bodies of all requests in flight may hold together; past it a request gets 503 relay_busy [default: 256MiB]')
            [CompletionResult]::new('--max-message', '--max-message', [CompletionResultType]::ParameterName, 'Largest WebSocket message a realtime session relays; a larger one closes the session with 1009 [default: 16MiB]')
            [CompletionResult]::new('--max-session', '--max-session', [CompletionResultType]::ParameterName, 'Longest a realtime session may stay open; then both sides are closed with 1008 [default: 1h]')
            [CompletionResult]::new('--upstream-timeout', '--upstream-timeout', [CompletionResultType]::ParameterName, 'Time allowed until a provider''s response headers [default: 5m]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--database-connections', '--database-connections', [CompletionResultType]::ParameterName, 'PostgreSQL: the most database connections this process keeps open [default: 32]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics at /metrics on the main listener')
            [CompletionResult]::new('--print-config', '--print-config', [CompletionResultType]::ParameterName, 'Print the settings in effect (defaults, relayapi.toml, environment and flags merged) as relayapi.toml would hold them, and exit')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;help' {
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Create the server''s P-256 key pair (or rotate it, or list the key ring)')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Issue, list, show and revoke tokens')
            [CompletionResult]::new('issuer', 'issuer', [CompletionResultType]::ParameterValue, 'Register, list and revoke issuers (backends that mint signed tokens offline)')
            [CompletionResult]::new('usage', 'usage', [CompletionResultType]::ParameterValue, 'Report usage per token, model or day')
            [CompletionResult]::new('relays', 'relays', [CompletionResultType]::ParameterValue, 'List the relays sharing this PostgreSQL database, from their heartbeats')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Apply pending database migrations, or list their status')
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'List the providers the relay knows, with base URL and auth style')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the relay: open tokens, check them, count calls, forward to the provider')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'relayapi;help;keygen' {
            break
        }
        'relayapi;help;token' {
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue a token that seals a provider API key')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (active and exhausted; --all adds revoked and expired)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one token')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a token''s limits and policies (seen by running relays within a second)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a token: the relay refuses it from then on')
            break
        }
        'relayapi;help;token;issue' {
            break
        }
        'relayapi;help;token;list' {
            break
        }
        'relayapi;help;token;show' {
            break
        }
        'relayapi;help;token;update' {
            break
        }
        'relayapi;help;token;revoke' {
            break
        }
        'relayapi;help;issuer' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Register a backend that mints signed tokens offline, with its caps')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List issuers')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an issuer: all its tokens stop working')
            break
        }
        'relayapi;help;issuer;add' {
            break
        }
        'relayapi;help;issuer;list' {
            break
        }
        'relayapi;help;issuer;revoke' {
            break
        }
        'relayapi;help;usage' {
            break
        }
        'relayapi;help;relays' {
            break
        }
        'relayapi;help;migrate' {
            break
        }
        'relayapi;help;providers' {
            break
        }
        'relayapi;help;completions' {
            break
        }
        'relayapi;help;serve' {
            break
        }
        'relayapi;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
