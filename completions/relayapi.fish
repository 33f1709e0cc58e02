# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_relayapi_global_optspecs
    string join \n data-dir= database-url= database-connections= config= h/help V/version
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
complete -c relayapi -n "__fish_relayapi_needs_command" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_needs_command" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c relayapi -n "__fish_relayapi_needs_command" -s V -l version -d 'Print version'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "keygen" -d 'Create the server\'s P-256 key pair (or rotate it, or list the key ring)'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "token" -d 'Issue, list, show and revoke tokens'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "issuer" -d 'Register, list and revoke issuers (backends that mint signed tokens offline)'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "usage" -d 'Report usage per token, model or day'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "relays" -d 'List the relays sharing this PostgreSQL database, from their heartbeats'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "migrate" -d 'Apply pending database migrations, or list their status'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "providers" -d 'List the providers the relay knows, with base URL and auth style'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "serve" -d 'Run the relay: open tokens, check them, count calls, forward to the provider'
complete -c relayapi -n "__fish_relayapi_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l rotate -d 'Make a new active key; older keys stay so that their tokens still open'
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l list -d 'List the key ring (kid, created, active) instead of creating a key'
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l announce -d 'Only tell the relays on this PostgreSQL database to read their key rings again (after a rotated ring was copied to their hosts); --rotate does it too'
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -f -a "issue" -d 'Issue a token that seals a provider API key'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -f -a "list" -d 'List tokens (active and exhausted; --all adds revoked and expired)'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -f -a "show" -d 'Show one token'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -f -a "update" -d 'Change a token\'s limits and policies (seen by running relays within a second)'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -f -a "revoke" -d 'Revoke a token: the relay refuses it from then on'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and not __fish_seen_subcommand_from issue list show update revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l provider -d 'Provider (see `relayapi providers`); `custom` for any other OpenAI-compatible server' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l upstream -d 'Base URL replacing the provider\'s (self-hosted or local servers; required for azure and custom)' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l auth -d 'How a custom provider takes the key: bearer, x-api-key, header:NAME or query:NAME' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l name -d 'A label for people' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l api-key-env -d 'Read the provider API key from this environment variable' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l max-calls -d 'Most calls the token may make [default: unlimited]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l max-total-tokens -d 'Budget of total (prompt + completion) tokens [default: unlimited]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l expires-in -d 'Lifetime from now, like 30m, 24h, 7d [default: never expires]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l expires-at -d 'Expiry time, RFC 3339 (2026-12-31T23:59:00Z)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l model -d 'Allowed model (repeatable; a trailing * matches a prefix)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l origin -d 'Allowed browser origin, exactly (repeatable)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l ip -d 'Allowed client network, CIDR or address (repeatable)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l endpoint -d 'Allowed request path (repeatable; a trailing * matches a prefix) [default: the provider\'s inference endpoints]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l rpm -d 'Requests per minute (per relay process)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l concurrency -d 'Requests in flight at once, streams included (per relay process)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l max-output-tokens -d 'Cap on the output tokens a request may ask for (set when absent, lowered when higher)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l max-session -d 'Longest a realtime session may stay open, like 10m [default: serve --max-session]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l api-key-stdin -d 'Read the provider API key from standard input'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -l json -d 'Print one JSON object'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -s q -l quiet -d 'Print the token alone'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from issue" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l all -d 'Include revoked and expired tokens'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -l json -d 'Print a JSON array'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l name -d 'A new label' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l max-calls -d 'Most calls the token may make [default: unlimited]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l max-total-tokens -d 'Budget of total (prompt + completion) tokens [default: unlimited]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l expires-in -d 'Lifetime from now, like 30m, 24h, 7d [default: never expires]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l expires-at -d 'Expiry time, RFC 3339 (2026-12-31T23:59:00Z)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l model -d 'Allowed model (repeatable; a trailing * matches a prefix)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l origin -d 'Allowed browser origin, exactly (repeatable)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l ip -d 'Allowed client network, CIDR or address (repeatable)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l endpoint -d 'Allowed request path (repeatable; a trailing * matches a prefix) [default: the provider\'s inference endpoints]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l rpm -d 'Requests per minute (per relay process)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l concurrency -d 'Requests in flight at once, streams included (per relay process)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l max-output-tokens -d 'Cap on the output tokens a request may ask for (set when absent, lowered when higher)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l max-session -d 'Longest a realtime session may stay open, like 10m [default: serve --max-session]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-max-calls -d 'Remove the call limit'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-max-total-tokens -d 'Remove the token budget'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-expiry -d 'Make the token never expire'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-models -d 'Allow any model'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-origins -d 'Allow any origin'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-ips -d 'Allow any client address'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-endpoints -d 'Back to the provider\'s default endpoints'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-rpm -d 'Remove the rate limit'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-concurrency -d 'Remove the concurrency limit'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-max-output-tokens -d 'Remove the output-token cap'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l clear-max-session -d 'Back to the relay\'s session length limit'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -l issuer -d 'For a signed token never used yet (so not in the store): the issuer that minted it; the full id is then required' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -s y -l yes -d 'Do not ask for confirmation'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "issue" -d 'Issue a token that seals a provider API key'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tokens (active and exhausted; --all adds revoked and expired)'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one token'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "update" -d 'Change a token\'s limits and policies (seen by running relays within a second)'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a token: the relay refuses it from then on'
complete -c relayapi -n "__fish_relayapi_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and not __fish_seen_subcommand_from add list revoke help" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and not __fish_seen_subcommand_from add list revoke help" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and not __fish_seen_subcommand_from add list revoke help" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and not __fish_seen_subcommand_from add list revoke help" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and not __fish_seen_subcommand_from add list revoke help" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and not __fish_seen_subcommand_from add list revoke help" -f -a "add" -d 'Register a backend that mints signed tokens offline, with its caps'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and not __fish_seen_subcommand_from add list revoke help" -f -a "list" -d 'List issuers'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and not __fish_seen_subcommand_from add list revoke help" -f -a "revoke" -d 'Revoke an issuer: all its tokens stop working'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and not __fish_seen_subcommand_from add list revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l provider -d 'Provider its tokens may use (repeatable; at least one)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l upstream -d 'Upstream base URL its tokens may name (repeatable; none: providers\' own URLs only)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l max-lifetime -d 'Longest token lifetime, like 15m or 1h' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l max-calls -d 'Most calls per token (tokens without max_calls get this)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l require -d 'Policy its tokens must carry (repeatable)' -r -f -a "origin\t''
model\t''
endpoint\t''
max-output-tokens\t''
max-calls\t''"
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l public-key -d 'The backend\'s P-256 public key (PEM or SEC1 hex); without it a key pair is made' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l private-key-out -d 'Write the generated private key here (mode 0600) instead of printing it' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from list" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from list" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from list" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from list" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from list" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from revoke" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from revoke" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from revoke" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from revoke" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from revoke" -s y -l yes -d 'Do not ask for confirmation'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from help" -f -a "add" -d 'Register a backend that mints signed tokens offline, with its caps'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from help" -f -a "list" -d 'List issuers'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke an issuer: all its tokens stop working'
complete -c relayapi -n "__fish_relayapi_using_subcommand issuer; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -l by -d 'Group by token, model or day (UTC)' -r -f -a "token\t''
model\t''
day\t''"
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -l token -d 'Only this token (id or unique prefix)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -l since -d 'From this time on: a duration back from now (24h, 7d) or an RFC 3339 time' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -l until -d 'Before this time: a duration back from now or an RFC 3339 time' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -l json -d 'Print a JSON array'
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -l csv -d 'Print CSV'
complete -c relayapi -n "__fish_relayapi_using_subcommand usage" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand relays" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand relays" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand relays" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand relays" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand relays" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand relays" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -l status -d 'List applied and pending migrations without applying any'
complete -c relayapi -n "__fish_relayapi_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -l json -d 'Print JSON'
complete -c relayapi -n "__fish_relayapi_using_subcommand providers" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand completions" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand completions" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand completions" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand completions" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand completions" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l trusted-proxy -d 'Proxy whose X-Forwarded-For is believed for --ip policies (repeatable CIDR)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l metrics-listen -d 'Serve /metrics on its own address instead (e.g. 127.0.0.1:9090)' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l admin-token-env -d 'Enable the admin API, with the secret read from this environment variable' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l admin-listen -d 'Serve the admin API on its own address (e.g. 127.0.0.1:8081) instead of the main one' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l tls-cert -d 'Serve HTTPS (HTTP/2 and HTTP/1.1) with this certificate chain (PEM); read again on SIGHUP' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l tls-key -d 'The private key of --tls-cert (PEM)' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l client-secret-lifetime -d 'Longest life of a realtime client secret minted through the relay; never past the token\'s own expiry [default: 10m]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l client-timeout -d 'Time a client has to send a request\'s headers, and again its body [default: 30s]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l connect-timeout -d 'Time allowed to connect to a provider [default: 10s]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l grace-period -d 'How long in-flight requests may finish after SIGINT/SIGTERM [default: 30s]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l idle-timeout -d 'Longest pause between two chunks of a response, or between two messages of a realtime session; no limit on a whole stream [default: 2m]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l listen -d 'Address to listen on [default: 127.0.0.1:8080]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l max-body -d 'Largest request body accepted, like 32MiB [default: 32MiB]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l max-body-memory -d 'Most memory the bodies of all requests in flight may hold together; past it a request gets 503 relay_busy [default: 256MiB]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l max-message -d 'Largest WebSocket message a realtime session relays; a larger one closes the session with 1009 [default: 16MiB]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l max-session -d 'Longest a realtime session may stay open; then both sides are closed with 1008 [default: 1h]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l upstream-timeout -d 'Time allowed until a provider\'s response headers [default: 5m]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l data-dir -d 'Folder for the key ring and the default SQLite database [default: the platform\'s data directory for relayapi]' -r -f -a "(__fish_complete_directories)"
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l database-url -d 'Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: relayapi.db in the data dir]' -r -f
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l database-connections -d 'PostgreSQL: the most database connections this process keeps open [default: 32]' -r
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l config -d 'TOML file with the same settings [default: ./relayapi.toml when present]' -r -F
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l metrics -d 'Serve Prometheus metrics at /metrics on the main listener'
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -l print-config -d 'Print the settings in effect (defaults, relayapi.toml, environment and flags merged) as relayapi.toml would hold them, and exit'
complete -c relayapi -n "__fish_relayapi_using_subcommand serve" -s h -l help -d 'Print help'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token issuer usage relays migrate providers completions serve help" -f -a "keygen" -d 'Create the server\'s P-256 key pair (or rotate it, or list the key ring)'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token issuer usage relays migrate providers completions serve help" -f -a "token" -d 'Issue, list, show and revoke tokens'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token issuer usage relays migrate providers completions serve help" -f -a "issuer" -d 'Register, list and revoke issuers (backends that mint signed tokens offline)'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token issuer usage relays migrate providers completions serve help" -f -a "usage" -d 'Report usage per token, model or day'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token issuer usage relays migrate providers completions serve help" -f -a "relays" -d 'List the relays sharing this PostgreSQL database, from their heartbeats'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token issuer usage relays migrate providers completions serve help" -f -a "migrate" -d 'Apply pending database migrations, or list their status'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token issuer usage relays migrate providers completions serve help" -f -a "providers" -d 'List the providers the relay knows, with base URL and auth style'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token issuer usage relays migrate providers completions serve help" -f -a "completions" -d 'Print a shell completion script'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token issuer usage relays migrate providers completions serve help" -f -a "serve" -d 'Run the relay: open tokens, check them, count calls, forward to the provider'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and not __fish_seen_subcommand_from keygen token issuer usage relays migrate providers completions serve help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "issue" -d 'Issue a token that seals a provider API key'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "list" -d 'List tokens (active and exhausted; --all adds revoked and expired)'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "show" -d 'Show one token'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "update" -d 'Change a token\'s limits and policies (seen by running relays within a second)'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "revoke" -d 'Revoke a token: the relay refuses it from then on'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from issuer" -f -a "add" -d 'Register a backend that mints signed tokens offline, with its caps'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from issuer" -f -a "list" -d 'List issuers'
complete -c relayapi -n "__fish_relayapi_using_subcommand help; and __fish_seen_subcommand_from issuer" -f -a "revoke" -d 'Revoke an issuer: all its tokens stop working'
