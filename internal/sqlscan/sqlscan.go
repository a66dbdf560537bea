// Package sqlscan reads a SQL text, without allocating, and tells
// the router what it needs: the statement kind, routing-relevant flags and a
// normalized digest.
//
// It is a tokenizer, not a parser: it understands comments (--, #, /* */),
// MySQL/MariaDB executable comments (/*! … */, /*!50100 … */, /*M! … */)
// whose content counts as code, quoted strings with backslash escapes and
// doubled quotes, backquoted identifiers, and case-insensitive keywords.
//
// It assumes the default sql_mode. Under ANSI_QUOTES "…" is a name, which
// the scanner takes for a string: harmless, since neither holds keywords.
// Under NO_BACKSLASH_ESCAPES a string that ends in a backslash ('C:\')
// ends earlier than the scanner thinks, so keywords after it in the same
// statement can be missed.
package sqlscan

import "strings"

// Kind is what a statement does, as far as routing cares.
type Kind uint8

const (
	KindUnknown        Kind = iota // empty or not recognised: treat as a write
	KindSelect                     // SELECT, WITH … SELECT, (SELECT …), TABLE t, VALUES …, EXPLAIN ANALYZE SELECT
	KindShow                       // SHOW, DESCRIBE/DESC, EXPLAIN (without ANALYZE), HELP
	KindWrite                      // INSERT, UPDATE, DELETE, REPLACE, LOAD DATA/XML, WITH … UPDATE/DELETE, ANALYZE <write>
	KindDDL                        // CREATE, ALTER, DROP, RENAME, TRUNCATE, GRANT, REVOKE, ANALYZE/OPTIMIZE/REPAIR/CHECK TABLE
	KindBegin                      // BEGIN [WORK], START TRANSACTION [READ WRITE | WITH CONSISTENT SNAPSHOT]
	KindBeginReadOnly              // START TRANSACTION … READ ONLY …
	KindCommit                     // COMMIT [WORK] [AND [NO] CHAIN] [[NO] RELEASE]
	KindRollback                   // ROLLBACK [WORK] [AND [NO] CHAIN] [[NO] RELEASE] (not ROLLBACK TO)
	KindSavepoint                  // SAVEPOINT x, ROLLBACK [WORK] TO [SAVEPOINT] x, RELEASE SAVEPOINT x
	KindSet                        // SET of session state: variables, @user vars, NAMES, CHARACTER SET, SESSION TRANSACTION, ROLE
	KindSetGlobal                  // SET that reaches beyond the session: GLOBAL/PERSIST/PERSIST_ONLY, @@global., PASSWORD, DEFAULT ROLE
	KindSetTransaction             // SET TRANSACTION … without a scope: applies to the next transaction only
	KindUse                        // USE db
	KindPrepare                    // PREPARE name FROM …
	KindExecute                    // EXECUTE name [USING …], EXECUTE IMMEDIATE …
	KindDeallocate                 // DEALLOCATE PREPARE name, DROP PREPARE name
	KindLockTables                 // LOCK TABLE(S) …
	KindUnlockTables               // UNLOCK TABLE(S)
	KindCall                       // CALL proc(…)
	KindDo                         // DO expr
	KindKill                       // KILL [HARD|SOFT] [CONNECTION|QUERY] [ID] n, KILL USER u
	KindOther                      // a known statement with no routing meaning of its own (FLUSH, RESET, CHANGE MASTER, XA, HANDLER, BEGIN NOT ATOMIC, …)
)

var kindNames = [...]string{
	KindUnknown:        "unknown",
	KindSelect:         "select",
	KindShow:           "show",
	KindWrite:          "write",
	KindDDL:            "ddl",
	KindBegin:          "begin",
	KindBeginReadOnly:  "begin_read_only",
	KindCommit:         "commit",
	KindRollback:       "rollback",
	KindSavepoint:      "savepoint",
	KindSet:            "set",
	KindSetGlobal:      "set_global",
	KindSetTransaction: "set_transaction",
	KindUse:            "use",
	KindPrepare:        "prepare",
	KindExecute:        "execute",
	KindDeallocate:     "deallocate",
	KindLockTables:     "lock_tables",
	KindUnlockTables:   "unlock_tables",
	KindCall:           "call",
	KindDo:             "do",
	KindKill:           "kill",
	KindOther:          "other",
}

// String returns a lower-case name fit for a metrics label.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Flags are facts about a statement that change where it may run.
type Flags uint32

const (
	FlagLocking         Flags = 1 << iota // FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE
	FlagInto                              // SELECT … INTO OUTFILE/DUMPFILE/@var
	FlagLastInsertID                      // LAST_INSERT_ID(, @@IDENTITY, @@LAST_INSERT_ID
	FlagGetLock                           // GET_LOCK(
	FlagReleaseLock                       // RELEASE_LOCK(
	FlagReleaseAllLocks                   // RELEASE_ALL_LOCKS(
	FlagCalcFoundRows                     // SQL_CALC_FOUND_ROWS
	FlagFoundRows                         // FOUND_ROWS(
	FlagCreateTemp                        // CREATE [OR REPLACE] TEMPORARY TABLE/SEQUENCE
	FlagDropTemp                          // DROP TEMPORARY TABLE/SEQUENCE
	FlagSequence                          // NEXTVAL(, SETVAL(, LASTVAL(, NEXT VALUE FOR, PREVIOUS VALUE FOR, s.NEXTVAL
	FlagUserVarAssign                     // @var := … outside the targets of a SET
	FlagHintPrimary                       // a sluice:primary hint in a comment
	FlagHintReplica                       // a sluice:replica hint in a comment
	FlagMulti                             // more than one statement in the text
	FlagChain                             // COMMIT/ROLLBACK … AND CHAIN: a new transaction starts at once

	// FlagDiagnostics marks a read of what the session's previous statement
	// left behind: SHOW WARNINGS/ERRORS, SHOW COUNT(*) WARNINGS/ERRORS,
	// SHOW PROFILE(S), ROW_COUNT(), @@warning_count, @@error_count. Only the
	// backend that ran that statement can answer.
	FlagDiagnostics

	// FlagPrimaryOnly marks a read about the primary's own binary log:
	// SHOW MASTER STATUS, SHOW BINARY/MASTER LOGS, SHOW BINLOG EVENTS/STATUS.
	// A replica would answer about its own.
	FlagPrimaryOnly

	// FlagCompound marks a compound statement, one statement though it
	// holds ';': a stored program definition (CREATE PROCEDURE, FUNCTION,
	// TRIGGER, EVENT; ALTER EVENT), whose body raises no flags since it
	// runs later, or a block run at once (BEGIN NOT ATOMIC … END, IF …
	// END IF, CASE, LOOP, WHILE, REPEAT, FOR outside a stored program).
	FlagCompound

	// FlagSetsInsertID marks a statement that may change LAST_INSERT_ID()
	// and answer with a result set, which carries no insert id the way an
	// OK packet does: SELECT LAST_INSERT_ID(expr), INSERT/REPLACE …
	// RETURNING.
	FlagSetsInsertID
)

var flagNames = [...]string{
	"locking", "into", "last_insert_id", "get_lock", "release_lock",
	"release_all_locks", "calc_found_rows", "found_rows", "create_temp",
	"drop_temp", "sequence", "user_var_assign", "hint_primary",
	"hint_replica", "multi", "chain", "diagnostics", "primary_only",
	"compound", "sets_insert_id",
}

// String lists the set flags as "a|b|c", for logs and test failures.
func (f Flags) String() string {
	var b strings.Builder
	for i, name := range flagNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(name)
		}
	}
	return b.String()
}

// notRead are the flags that keep a SELECT or SHOW off the replicas: each
// one locks, writes, depends on session state a replica does not share, or
// changes that state. FlagMulti is among them because Kind only describes
// the first statement: the others may write.
const notRead = FlagLocking | FlagInto | FlagLastInsertID | FlagGetLock |
	FlagReleaseLock | FlagReleaseAllLocks | FlagCalcFoundRows | FlagFoundRows |
	FlagSequence | FlagUserVarAssign | FlagDiagnostics | FlagMulti | FlagPrimaryOnly

// Statement is what Scan learnt about a SQL text.
type Statement struct {
	Kind  Kind  // kind of the first statement
	Flags Flags // union over all statements in the text
}

// IsRead reports whether the statement may run on a replica when the
// session is outside a transaction. Routing hints are left to the router,
// which knows whether it honours them.
func (s Statement) IsRead() bool {
	return (s.Kind == KindSelect || s.Kind == KindShow) && s.Flags&notRead == 0
}
