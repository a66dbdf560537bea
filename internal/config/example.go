package config

// Example returns a complete, commented config file: every key, with its
// default where it has one. `sluice check --example` prints it and the
// README quotes it; a test parses it and checks that it names every key,
// so it cannot drift from the code.
func Example() string { return example }

const example = `# sluice configuration. Check a file with: sluice check -c sluice.yaml
#
# Durations use Go syntax: 250ms, 1s, 1m30s, 8h (a bare number is an error,
# since 5 could mean seconds or milliseconds). Sizes are bytes or a number
# with K, M or G; every unit is binary, as in MySQL (64M = 64MB = 64MiB).
# Keys left out take the default shown here.

# Where clients connect (MySQL protocol): host:port, an absolute path for a
# Unix socket, or a list of them, e.g. [127.0.0.1:4040, /run/sluice/mysqld.sock].
# An empty host means every interface, e.g. ":4040".
listen: 127.0.0.1:4040

# Admin HTTP: /metrics, /api/..., /health/{server}, dashboard.
# Write http_listen: "" to disable it.
http_listen: 127.0.0.1:4041
# Bearer token the admin API requires ("Authorization: Bearer <token>").
# Required when http_listen is not a loopback address. Or http_token: ...
http_token_env: SLUICE_HTTP_TOKEN

# Accounts clients log in with. sluice opens backend connections with the
# same credentials, so each must exist on the servers too.
users:
  - name: app
    # The password is read from this environment variable when the file
    # is loaded. "password: ..." writes it in the file instead (not both).
    password_env: APP_DB_PASSWORD
    # mysql_native_password (default) or caching_sha2_password.
    auth_plugin: mysql_native_password

# The account the monitor uses for health checks, read_only, replication
# status and lag. Required.
monitor:
  user: sluice_monitor
  password_env: SLUICE_MONITOR_PASSWORD

# The servers of one primary/replica topology. Roles are not configured:
# the monitor discovers them (writable and not replicating = primary), so
# a failover done by another tool is followed.
servers:
  - name: db1                # letters, digits, '.', '_', '-'; used in URLs and metrics
    address: 127.0.0.1:3306  # host:port
    weight: 1                # share of reads with balance: weighted; 0 = no reads
    max_connections: 0       # backend connections to this server; 0 = unlimited
    priority: 0              # failover: breaks ties between equally advanced candidates; higher wins
    no_promotion: false      # true = never made primary by a failover or switchover
  - name: db2
    address: 127.0.0.1:3307
  - name: db3
    address: 127.0.0.1:3308
    backup: true             # takes reads only when no other replica can
    no_promotion: true       # e.g. a replica in another data centre

# Several clusters behind one sluice: write clusters: instead of servers:
# (not both). Server names are unique across clusters. Each cluster has its
# own monitor, read/write split, failover and epoch; health, routing and
# failover keys written in a cluster override the top-level ones for it
# (failover.state_file stays top-level). servers: alone is one cluster
# named "default".
# clusters:
#   - name: east
#     servers:
#       - {name: e1, address: 10.0.1.1:3306}
#       - {name: e2, address: 10.0.1.2:3306}
#     health: {interval: 500ms}
#     routing: {read_fallback: error}
#     failover: {auto: true}
#   - name: west
#     servers:
#       - {name: w1, address: 10.0.2.1:3306}

# Which cluster owns each database and table (with clusters:). Tables
# placed apart from their database take precedence: an exact name, or a
# numbered family with one {A..B} range (a leading zero pads every number
# to the bounds' width). A statement or transaction touching two clusters
# is refused with error 9005. This is the initial map: once the state
# file holds one (after the first start, or a move), the state file wins.
# placement:
#   default_cluster: east      # owns everything unplaced; default: the first cluster
#   databases:
#     - {name: shop, cluster: west}
#   tables:
#     - {database: app, tables: "bucket_{0000..0511}", cluster: west}
#     - {database: app, tables: audit_log, cluster: east}

# Online moves between clusters (sluice move DB[.TABLES] --to CLUSTER). The
# mover logs in to the source and target primaries with this account
# (default: the monitor's): SELECT on the moved objects on the source; ALL
# on them plus SUPER, REPLICATION SLAVE ADMIN and BINLOG MONITOR on the
# target. The target's replication connection uses the source cluster's
# failover.replication account.
# moves:
#   user: sluice_mover
#   password_env: SLUICE_MOVER_PASSWORD
#   hold_timeout: 800ms      # one cutover attempt's hold (drain + apply); retried up to 5 times
#   batch_rows: 1000         # rows per INSERT of the snapshot copy

# Monitor timing. A server is up after rise good checks in a row and down
# after fall bad ones (as in HAProxy).
health:
  interval: 1s
  timeout: 1s
  rise: 2
  fall: 3

routing:
  # Replicas further behind than this get no reads; 0s disables the check.
  max_replication_lag: 5s
  # When no replica can take a read: primary (send it there) or error.
  read_fallback: primary
  # least-connections, round-robin or weighted (by server weight).
  balance: least-connections
  # Which writes a read must see. session: the session's own (its reads go
  # to a replica that has applied its last write's GTID, waiting for one up
  # to causal_timeout); global: every write committed through this sluice
  # before the read began; eventual: no wait (replicas may lag).
  consistency: session
  causal_timeout: 1s
  # When no replica has applied the GTID within causal_timeout: primary
  # (read there) or error (sluice error 9002).
  causal_fallback: primary
  # The older knob: after a session writes, its reads go to the primary for
  # this long. true = 2s, false = off (default), or a duration.
  read_your_writes: false
  # Measure lag from a pt-heartbeat-compatible table (db.table) instead of
  # Seconds_Behind_Master; sluice's monitor writes the primary's row.
  # heartbeat_table: percona.heartbeat

# Every network wait has a limit, so a frozen server never freezes a client.
timeouts:
  connect: 2s       # backend connect and handshake
  query: 1h         # longest silence from a backend while a command runs
  handshake: 10s    # client handshake
  client_idle: 8h   # idle client connections are closed after this
  pool_wait: 5s     # wait for a backend connection when max_connections is reached
  client_write: 60s # a client that stops reading a result is cut off after this (net_write_timeout)
  client_read: 30s  # the rest of a command that stopped arriving mid-packet, and each LOAD DATA LOCAL packet (net_read_timeout)
  warnings_pin: 5s  # an idle session keeps the connection its warnings are on (for SHOW WARNINGS) this long

# Backend connection pools, one per server and user.
pool:
  max_idle: 64      # idle connections kept
  idle_timeout: 60s # close a connection idle this long; 0s = never
  max_lifetime: 1h  # replace connections this old; 0s = never

# TLS for clients; enabled when cert and key are both set. Relative paths
# are relative to this file.
tls:
  # cert: /etc/sluice/server.pem
  # key: /etc/sluice/server-key.pem
  # PEM private key for caching_sha2_password's RSA exchange without TLS;
  # generated at start when left out.
  # rsa_key: /etc/sluice/rsa.pem

log:
  level: info   # debug, info, warn or error
  format: text  # text or json

# Query digests (GET /api/digests): statements normalized (literals become
# ?, IN lists collapsed) and counted by digest, user and schema.
digests:
  max: 1000     # entries kept; when full, a new digest replaces the one with the least total time

# Slow query log: one JSON line for each command that took at least
# threshold (time, session, user, schema, server, duration, digest, query).
slow_query:
  threshold: 1s           # 0s turns the log off
  file: stderr            # stderr, or a file appended to (relative to this file)
  max_query_length: 1024  # bytes of query text kept; 0 leaves the text (and its literals) out

# Push the metrics to Graphite in carbon's plaintext protocol.
graphite:
  address: ""     # host:port of the plaintext listener, e.g. graphite.example:2003; "" = off
  prefix: sluice  # first nodes of every metric path
  interval: 10s   # at least 1s

# Primary changes: automatic failover, planned switchover, and the hooks
# told about each. The epoch and the current primary are kept in state_file.
failover:
  auto: false                    # promote a replica when the primary is lost; false = only report the loss
  state_file: sluice-state.json  # epoch, primary and fenced servers across restarts (relative to this file)
  max_lag: 10s                   # refuse a candidate whose last measured lag exceeded this; 0s = any lag
  max_catchup: 30s               # wait this long for the candidate to apply its relay log, then refuse
  hold_timeout: 10s              # longest time new writes and transactions are held during a change
  drain_timeout: 5s              # switchover: wait for running transactions, then roll them back; < hold_timeout
  min_interval: 5m               # no second automatic failover this soon after a change; an operator still can
  transaction_replay: true       # replay a transaction cut by a primary change on the new one, if every result matches
  replay_max_size: 1MiB          # statement bytes kept per transaction for that; a bigger one is not replayed
  # The account replicas use to connect to the new primary (CHANGE MASTER TO
  # MASTER_USER). Needed to fail over or switch over; required when auto is
  # true. Or password: ... instead of password_env (not both).
  replication:
    user: repl
    password_env: SLUICE_REPL_PASSWORD
  hooks:
    # argv run without a shell, SLUICE_* variables in its environment, e.g.
    # ["/usr/local/bin/update-dns", "--ttl", "5"]; [] = none.
    command: []
    webhook: ""                  # http(s) URL POSTed a JSON body of each event; "" = none
    timeout: 10s                 # limit for each hook run
    # Bearer token sent to the webhook, read from this environment
    # variable. Or token: ... (not both).
    # token_env: SLUICE_HOOK_TOKEN

# Largest client command accepted (1K to 1G). Larger ones get error 1153,
# and so do commands larger than the chosen server's own max_allowed_packet.
max_allowed_packet: 64MiB
# COM_STMT_SEND_LONG_DATA bytes one session may hold buffered (all its
# statements together) until their executes; past it the execute gets 1153.
max_long_data: 64MiB

# Client connections at most; one more gets error 1040 (Too many
# connections). 0 = sized from the file descriptor limit (sluice raises its
# soft limit to the hard one at start), keeping a reserve for backend
# connections, health checks and the admin API.
max_client_connections: 0
# Admin API connections at most; past it idle keep-alive connections are
# closed first, then new ones.
http_max_connections: 64

# Password guessing: after max_failures failed logins in a row from one
# client host, or for one account, logins from that host (for that account)
# are refused with error 1129 (4151) for block, doubled with every further
# failure up to max_block. A successful login resets the count.
login:
  max_failures: 10  # 0 = no throttling
  block: 1s
  max_block: 1m
`
