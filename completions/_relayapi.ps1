
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
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Create the server''s P-256 key pair (or rotate it, or list the key ring)')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Issue, list, show and revoke tokens')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Apply pending database migrations, or list their status')
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'List the providers the relay knows, with base URL and auth style')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'relayapi;keygen' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--rotate', '--rotate', [CompletionResultType]::ParameterName, 'Make a new active key; older keys stay so that their tokens still open')
            [CompletionResult]::new('--list', '--list', [CompletionResultType]::ParameterName, 'List the key ring (kid, created, active) instead of creating a key')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;token' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue a token that seals a provider API key')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tokens (active and exhausted; --all adds revoked and expired)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one token')
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
            [CompletionResult]::new('--expires-in', '--expires-in', [CompletionResultType]::ParameterName, 'Lifetime from now, like 30m, 24h, 7d [default: never expires]')
            [CompletionResult]::new('--expires-at', '--expires-at', [CompletionResultType]::ParameterName, 'Expiry time, RFC 3339 (2026-12-31T23:59:00Z)')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Allowed model (repeatable; a trailing * matches a prefix)')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Allowed browser origin, exactly (repeatable)')
            [CompletionResult]::new('--ip', '--ip', [CompletionResultType]::ParameterName, 'Allowed client network, CIDR or address (repeatable)')
            [CompletionResult]::new('--endpoint', '--endpoint', [CompletionResultType]::ParameterName, 'Allowed request path (repeatable; a trailing * matches a prefix)')
            [CompletionResult]::new('--rpm', '--rpm', [CompletionResultType]::ParameterName, 'Requests per minute')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Requests in flight at once')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
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
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;token;revoke' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
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
        'relayapi;token;help;revoke' {
            break
        }
        'relayapi;token;help;help' {
            break
        }
        'relayapi;migrate' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'List applied and pending migrations without applying any')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;providers' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;completions' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Folder for the key ring and the default SQLite database [default: the platform''s data directory for relayapi]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with the same settings [default: ./relayapi.toml when present]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'relayapi;help' {
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Create the server''s P-256 key pair (or rotate it, or list the key ring)')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Issue, list, show and revoke tokens')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Apply pending database migrations, or list their status')
            [CompletionResult]::new('providers', 'providers', [CompletionResultType]::ParameterValue, 'List the providers the relay knows, with base URL and auth style')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
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
        'relayapi;help;token;revoke' {
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
        'relayapi;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
