# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_relayapi_global_optspecs
    string join \n data-dir= database-url= config= h/help V/version
end

function __fish_relayapi_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_relayapi_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_relayapi_using_subcommand
    set -l cmd (__fish_relayapi_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c relayapi -n "__fish_relayapi_needs_command" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_needs_command" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_needs_command" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c relayapi -n "__fish_relayapi_needs_command" -s V -l version -d 'Print version'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "keygen" -d 'Create the server\'s P-256 key pair (or rotate it, or list the key ring)'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "token" -d 'Issue, list, show and revoke tokens'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "migrate" -d 'Apply pending database migrations, or list their status'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "providers" -d 'List the providers the relay knows, with base URL and auth style'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l rotate -d 'Make a new active key; older keys stay so that their tokens still open'
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l list -d 'List the key ring (kid, created, active) instead of creating a key'
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show revoke help" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show revoke help" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show revoke help" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show revoke help" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show revoke help" -f -a "issue" -d 'Issue a token that seals a provider API key'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show revoke help" -f -a "list" -d 'List tokens (active and exhausted; --all adds revoked and expired)'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show revoke help" -f -a "show" -d 'Show one token'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show revoke help" -f -a "revoke" -d 'Revoke a token: the relay refuses it from then on'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l provider -d 'Provider (see `relayapi providers`); `custom` for any other OpenAI-compatible server' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l upstream -d 'Base URL replacing the provider\'s (self-hosted or local servers; required for azure and custom)' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l auth -d 'How a custom provider takes the key: bearer, x-api-key, header:NAME or query:NAME' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l name -d 'A label for people' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l api-key-env -d 'Read the provider API key from this environment variable' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l max-calls -d 'Most calls the token may make [default: unlimited]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l expires-in -d 'Lifetime from now, like 30m, 24h, 7d [default: never expires]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l expires-at -d 'Expiry time, RFC 3339 (2026-12-31T23:59:00Z)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l model -d 'Allowed model (repeatable; a trailing * matches a prefix)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l origin -d 'Allowed browser origin, exactly (repeatable)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l ip -d 'Allowed client network, CIDR or address (repeatable)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l endpoint -d 'Allowed request path (repeatable; a trailing * matches a prefix)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l rpm -d 'Requests per minute' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l concurrency -d 'Requests in flight at once' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l api-key-stdin -d 'Read the provider API key from standard input'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l json -d 'Print one JSON object'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -s q -l quiet -d 'Print the token alone'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l all -d 'Include revoked and expired tokens'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l json -d 'Print a JSON array'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -s y -l yes -d 'Do not ask for confirmation'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "issue" -d 'Issue a token that seals a provider API key'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tokens (active and exhausted; --all adds revoked and expired)'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one token'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a token: the relay refuses it from then on'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -l status -d 'List applied and pending migrations without applying any'
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand completions" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand completions" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand completions" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand completions" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token migrate providers completions help" -f -a "keygen" -d 'Create the server\'s P-256 key pair (or rotate it, or list the key ring)'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token migrate providers completions help" -f -a "token" -d 'Issue, list, show and revoke tokens'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token migrate providers completions help" -f -a "migrate" -d 'Apply pending database migrations, or list their status'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token migrate providers completions help" -f -a "providers" -d 'List the providers the relay knows, with base URL and auth style'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token migrate providers completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token migrate providers completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "issue" -d 'Issue a token that seals a provider API key'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "list" -d 'List tokens (active and exhausted; --all adds revoked and expired)'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "show" -d 'Show one token'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "revoke" -d 'Revoke a token: the relay refuses it from then on'
