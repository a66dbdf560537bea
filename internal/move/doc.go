// Package move moves databases and tables between clusters while the
// application keeps running: the engine behind `sluice move`.
//
// A Move runs in phases (see Phase):
//
//  1. checking: refuse, before anything changes, what cannot move safely —
//     no binary log or binlog_format other than ROW on the source, the same
//     gtid_domain_id or server_id on both sides, a read-only primary, a
//     target primary that already replicates (another move into it), objects
//     missing on the source or present on the target, triggers, foreign keys
//     crossing the moved set, non-InnoDB tables, views, routines and events
//     in a moved database.
//  2. copying: one START TRANSACTION WITH CONSISTENT SNAPSHOT on the source
//     (its replica when one is usable, else the primary). MariaDB records
//     the binary log coordinates of that snapshot (Binlog_snapshot_file /
//     _position) and BINLOG_GTID_POS turns them into the snapshot's GTID
//     position; on a replica with log_slave_updates that is the source
//     primary's position too. The tables are created on the target from
//     SHOW CREATE TABLE and filled with multi-row INSERTs of BatchRows rows
//     (each its own transaction, in the target's binary log, so the
//     target's replicas get the copy), counting rows for the progress.
//  3. catching-up: a named replication connection (Options.Connection,
//     default "sluice_move") on the target primary replicates from the
//     source primary from the snapshot's GTID, with replicate_do_table (the
//     moved tables) or replicate_wild_do_table (the moved databases) and
//     DO_DOMAIN_IDS (the source's domain). The move watches it: an SQL
//     error, a source primary or a connection gone for BrokenAfter, or
//     either primary turning read-only aborts it.
//  4. cutover: Router.Hold(objects); read the source primary's
//     @@gtid_binlog_pos; MASTER_GTID_WAIT on the target (bounded by
//     HoldTimeout: if it runs out the statements are released and the move
//     catches up and tries again, at most CutoverAttempts times); check that
//     no DDL changed a moved table; compare CHECKSUM TABLE of the moved
//     tables on both primaries; Router.Place(objects, target); release;
//     remove the replication connection (after the release, to keep it out
//     of the hold: once placed, nothing reaches the source copy through
//     sluice). Status.Hold is the time from Hold to release.
//  5. done: the source copy stays (unreachable through sluice) until
//     Cleanup drops it.
//
// Cancel before Place, a refusal or an abort (a failover of either cluster
// included) undo the move: the replication connection is removed and the
// tables and databases the move created on the target are dropped; nothing
// was placed. A rerun is a new Move. If the undo cannot reach the target
// (its primary failed), the status says so and Abandon removes the
// leftovers later.
//
// # Why MariaDB's replication for the catch-up
//
// The alternative — sluice reading the source's binary log and applying
// row events itself — needs a binlog event decoder (the Go library that
// has one is not available to this project) and reimplements what the
// server already does correctly: row-event application with the right
// types, character sets and NULLs, transaction boundaries, crash-safe
// positions in mysql.gtid_slave_pos, reconnects. A named multi-source
// connection with per-connection filters costs nothing to build, is
// observable with SHOW SLAVE 'name' STATUS, and MASTER_GTID_WAIT gives the
// exact "target has applied the source's last GTID" the cutover needs.
// The price is a few requirements on the servers:
//
//   - every cluster has its own gtid_domain_id (and server_ids are unique
//     across clusters): the target's binary log then holds the moved
//     changes under the source's domain beside its own, which
//     gtid_strict_mode accepts, and the target's replicas receive them
//     (log_slave_updates=ON on the target primary is required);
//   - binlog_format=ROW on the source, so the filters see each row's table;
//   - the target primary is not itself a replica (the move sets the global
//     gtid_slave_pos that all connections share), so one move into a
//     cluster at a time;
//   - the account in Endpoint.ReplUser has REPLICATION SLAVE on the source,
//     and the target Endpoint's user may CHANGE MASTER / START SLAVE
//     (REPLICATION SLAVE ADMIN, SUPER) and create the moved objects.
//
// Writes made on the source outside sluice (not held at the cutover) after
// the cutover are not moved; sluice's placement is what makes the source
// copy unreachable.
package move
