package sqlscan

// wordID names the keywords the classifier looks for. Other keywords have
// id kwNone and only matter to Digest.
type wordID uint8

const (
	kwNone wordID = iota
	kwAnalyze
	kwAnd
	kwAs
	kwBegin
	kwChain
	kwCharacter
	kwCharset
	kwCommit
	kwConnection
	kwCount
	kwCreate
	kwDeallocate
	kwDefault
	kwDesc
	kwDescribe
	kwDrop
	kwErrors
	kwExplain
	kwFor
	kwFormat
	kwFoundRows
	kwGetLock
	kwGlobal
	kwHard
	kwID
	kwIn
	kwInto
	kwLastInsertID
	kwLastval
	kwLoad
	kwLocal
	kwLock
	kwNames
	kwNext
	kwNextval
	kwNo
	kwNoWriteToBinlog
	kwNot
	kwOnly
	kwOr
	kwPassword
	kwPersist
	kwPersistOnly
	kwPrevious
	kwProfile
	kwProfiles
	kwQuery
	kwRead
	kwRecursive
	kwRelease
	kwReleaseAllLocks
	kwReleaseLock
	kwReplace
	kwResource
	kwRole
	kwRollback
	kwRow
	kwRowCount
	kwSavepoint
	kwSequence
	kwSession
	kwSet
	kwSetval
	kwShare
	kwShow
	kwSoft
	kwSQLCalcFoundRows
	kwStart
	kwStatement
	kwTable
	kwTables
	kwTemporary
	kwTo
	kwTransaction
	kwUnlock
	kwUpdate
	kwUser
	kwValue
	kwValues
	kwWarnings
	kwWith
	kwWork
	kwCurrval
	kwData
	kwXML
	kwAlter
	kwAggregate
	kwAtomic
	kwBetween
	kwBy
	kwCase
	kwDefiner
	kwDistinct
	kwDo
	kwElse
	kwElseif
	kwEnd
	kwEvent
	kwFunction
	kwHaving
	kwIf
	kwIs
	kwLike
	kwLoop
	kwOn
	kwProcedure
	kwRepeat
	kwReturn
	kwSelect
	kwThen
	kwTrigger
	kwUntil
	kwWhen
	kwWhere
	kwWhile
	kwXor
	kwBinary
	kwBinlog
	kwLogs
	kwMaster
	kwEvents
	kwReturning
)

// kwAttr says how Digest writes a keyword.
type kwAttr uint8

const (
	// upper: Digest writes the keyword in upper case. Words without it keep
	// their case, because they are more often names than keywords (id,
	// status, name, …) and table names are case-sensitive.
	upper kwAttr = 1 << iota
	// fn: a function or type name; Digest writes no space before its '('.
	fn
	// operand: a value (NULL, CURRENT_DATE, …); a '-' after it subtracts.
	operand
)

// keyword is one entry of the keyword table.
type keyword struct {
	name string // upper case
	id   wordID
	attr kwAttr
	head Kind // the kind of a statement this word starts, when that is all it takes
}

// named are the keywords with an id or a statement kind.
var named = []keyword{
	{"AGGREGATE", kwAggregate, 0, KindUnknown},
	{"ALTER", kwAlter, upper, KindDDL},
	{"ANALYZE", kwAnalyze, upper, KindUnknown},
	{"AND", kwAnd, upper, KindUnknown},
	{"AS", kwAs, upper, KindUnknown},
	{"ATOMIC", kwAtomic, 0, KindUnknown},
	{"BACKUP", kwNone, upper, KindOther},
	{"BEGIN", kwBegin, upper, KindUnknown},
	{"BETWEEN", kwBetween, upper, KindUnknown},
	{"BINARY", kwBinary, upper | fn, KindUnknown},
	{"BINLOG", kwBinlog, upper, KindOther},
	{"BY", kwBy, upper, KindUnknown},
	{"CACHE", kwNone, upper, KindOther},
	{"CALL", kwNone, upper, KindCall},
	{"CASE", kwCase, upper, KindUnknown},
	{"CHAIN", kwChain, upper, KindUnknown},
	{"CHANGE", kwNone, upper, KindOther},
	{"CHARACTER", kwCharacter, upper, KindUnknown},
	{"CHARSET", kwCharset, upper | fn, KindUnknown},
	{"CHECK", kwNone, upper, KindDDL},
	{"CHECKSUM", kwNone, upper, KindOther},
	{"CLONE", kwNone, upper, KindOther},
	{"COMMIT", kwCommit, upper, KindUnknown},
	{"CONNECTION", kwConnection, upper, KindUnknown},
	{"COUNT", kwCount, upper | fn, KindUnknown},
	{"CREATE", kwCreate, upper, KindDDL},
	{"CURRVAL", kwCurrval, 0, KindUnknown},
	{"DATA", kwData, 0, KindUnknown},
	{"DEALLOCATE", kwDeallocate, upper, KindDeallocate},
	{"DECLARE", kwNone, upper, KindOther},
	{"DEFAULT", kwDefault, upper | fn, KindUnknown},
	{"DEFINER", kwDefiner, upper, KindUnknown},
	{"DELETE", kwNone, upper, KindWrite},
	{"DESC", kwDesc, upper, KindUnknown},
	{"DESCRIBE", kwDescribe, upper, KindUnknown},
	{"DISTINCT", kwDistinct, upper, KindUnknown},
	{"DO", kwDo, upper, KindDo},
	{"DROP", kwDrop, upper, KindDDL},
	{"ELSE", kwElse, upper, KindUnknown},
	{"ELSEIF", kwElseif, upper, KindUnknown},
	{"END", kwEnd, upper, KindUnknown},
	{"ERRORS", kwErrors, upper, KindUnknown},
	{"EVENT", kwEvent, upper, KindUnknown},
	{"EVENTS", kwEvents, 0, KindUnknown},
	{"EXECUTE", kwNone, upper, KindExecute},
	{"EXPLAIN", kwExplain, upper, KindUnknown},
	{"FLUSH", kwNone, upper, KindOther},
	{"FOR", kwFor, upper, KindUnknown},
	{"FORMAT", kwFormat, upper | fn, KindUnknown},
	{"FOUND_ROWS", kwFoundRows, upper | fn, KindUnknown},
	{"FUNCTION", kwFunction, upper, KindUnknown},
	{"GET", kwNone, upper, KindOther},
	{"GET_LOCK", kwGetLock, upper | fn, KindUnknown},
	{"GLOBAL", kwGlobal, upper, KindUnknown},
	{"GRANT", kwNone, upper, KindDDL},
	{"HANDLER", kwNone, upper, KindOther},
	{"HARD", kwHard, 0, KindUnknown},
	{"HAVING", kwHaving, upper, KindUnknown},
	{"HELP", kwNone, upper, KindShow},
	{"ID", kwID, 0, KindUnknown},
	{"IF", kwIf, upper | fn, KindUnknown},
	{"IMPORT", kwNone, upper, KindOther},
	{"IN", kwIn, upper, KindUnknown},
	{"INSERT", kwNone, upper | fn, KindWrite},
	{"INSTALL", kwNone, upper, KindOther},
	{"INTO", kwInto, upper, KindUnknown},
	{"IS", kwIs, upper, KindUnknown},
	{"KILL", kwNone, upper, KindKill},
	{"LASTVAL", kwLastval, upper | fn, KindUnknown},
	{"LAST_INSERT_ID", kwLastInsertID, upper | fn, KindUnknown},
	{"LIKE", kwLike, upper, KindUnknown},
	{"LOAD", kwLoad, upper, KindOther},
	{"LOCAL", kwLocal, upper, KindUnknown},
	{"LOCK", kwLock, upper, KindOther},
	{"LOGS", kwLogs, 0, KindUnknown},
	{"LOOP", kwLoop, upper, KindUnknown},
	{"MASTER", kwMaster, upper, KindUnknown},
	{"NAMES", kwNames, upper, KindUnknown},
	{"NEXT", kwNext, upper, KindUnknown},
	{"NEXTVAL", kwNextval, upper | fn, KindUnknown},
	{"NO", kwNo, upper, KindUnknown},
	{"NOT", kwNot, upper, KindUnknown},
	{"NO_WRITE_TO_BINLOG", kwNoWriteToBinlog, upper, KindUnknown},
	{"ON", kwOn, upper, KindUnknown},
	{"ONLY", kwOnly, upper, KindUnknown},
	{"OPTIMIZE", kwNone, upper, KindDDL},
	{"OR", kwOr, upper, KindUnknown},
	{"PASSWORD", kwPassword, 0, KindUnknown}, // a common column name
	{"PERSIST", kwPersist, upper, KindUnknown},
	{"PERSIST_ONLY", kwPersistOnly, upper, KindUnknown},
	{"PREPARE", kwNone, upper, KindPrepare},
	{"PREVIOUS", kwPrevious, upper, KindUnknown},
	{"PROCEDURE", kwProcedure, upper, KindUnknown},
	{"PROFILE", kwProfile, upper, KindUnknown},
	{"PROFILES", kwProfiles, upper, KindUnknown},
	{"PURGE", kwNone, upper, KindOther},
	{"QUERY", kwQuery, upper, KindUnknown},
	{"READ", kwRead, upper, KindUnknown},
	{"RECURSIVE", kwRecursive, upper, KindUnknown},
	{"RELEASE", kwRelease, upper, KindOther},
	{"RELEASE_ALL_LOCKS", kwReleaseAllLocks, upper | fn, KindUnknown},
	{"RELEASE_LOCK", kwReleaseLock, upper | fn, KindUnknown},
	{"RENAME", kwNone, upper, KindDDL},
	{"REPAIR", kwNone, upper, KindDDL},
	{"REPEAT", kwRepeat, upper | fn, KindUnknown},
	{"REPLACE", kwReplace, upper | fn, KindWrite},
	{"RESET", kwNone, upper, KindOther},
	{"RESIGNAL", kwNone, upper, KindOther},
	{"RESOURCE", kwResource, upper, KindUnknown},
	{"RESTART", kwNone, upper, KindOther},
	{"RETURN", kwReturn, upper, KindUnknown},
	{"RETURNING", kwReturning, upper, KindUnknown},
	{"REVOKE", kwNone, upper, KindDDL},
	{"ROLE", kwRole, upper, KindUnknown},
	{"ROLLBACK", kwRollback, upper, KindUnknown},
	{"ROW", kwRow, upper | fn, KindUnknown},
	{"ROW_COUNT", kwRowCount, upper | fn, KindUnknown},
	{"SAVEPOINT", kwSavepoint, upper, KindSavepoint},
	{"SELECT", kwSelect, upper, KindSelect},
	{"SEQUENCE", kwSequence, upper, KindUnknown},
	{"SESSION", kwSession, upper, KindUnknown},
	{"SET", kwSet, upper, KindUnknown},
	{"SETVAL", kwSetval, upper | fn, KindUnknown},
	{"SHARE", kwShare, upper, KindUnknown},
	{"SHOW", kwShow, upper, KindShow},
	{"SHUTDOWN", kwNone, upper, KindOther},
	{"SIGNAL", kwNone, upper, KindOther},
	{"SOFT", kwSoft, 0, KindUnknown},
	{"SQL_CALC_FOUND_ROWS", kwSQLCalcFoundRows, upper, KindUnknown},
	{"START", kwStart, upper, KindOther},
	{"STATEMENT", kwStatement, upper, KindUnknown},
	{"STOP", kwNone, upper, KindOther},
	{"TABLE", kwTable, upper, KindSelect},
	{"TABLES", kwTables, upper, KindUnknown},
	{"TEMPORARY", kwTemporary, upper, KindUnknown},
	{"THEN", kwThen, upper, KindUnknown},
	{"TO", kwTo, upper, KindUnknown},
	{"TRANSACTION", kwTransaction, upper, KindUnknown},
	{"TRIGGER", kwTrigger, upper, KindUnknown},
	{"TRUNCATE", kwNone, upper | fn, KindDDL},
	{"UNINSTALL", kwNone, upper, KindOther},
	{"UNLOCK", kwUnlock, upper, KindOther},
	{"UNTIL", kwUntil, 0, KindUnknown},
	{"UPDATE", kwUpdate, upper, KindWrite},
	{"USE", kwNone, upper, KindUse},
	{"USER", kwUser, 0, KindUnknown},
	{"VALUE", kwValue, upper | fn, KindUnknown},
	{"VALUES", kwValues, upper | fn, KindSelect},
	{"WARNINGS", kwWarnings, upper, KindUnknown},
	{"WHEN", kwWhen, upper, KindUnknown},
	{"WHERE", kwWhere, upper, KindUnknown},
	{"WHILE", kwWhile, upper, KindUnknown},
	{"WITH", kwWith, upper, KindUnknown},
	{"WORK", kwWork, upper, KindUnknown},
	{"XA", kwNone, upper, KindOther},
	{"XML", kwXML, upper, KindUnknown},
	{"XOR", kwXor, upper, KindUnknown},
}

// reserved are the other words Digest upper-cases: the reserved words of
// MySQL 8 and MariaDB, plus statement words that are seldom names.
var reserved = []string{
	"ACCESSIBLE", "ADD", "AFTER", "AGAINST", "ALGORITHM", "ALL", "ANY", "ASC",
	"ASENSITIVE", "AUTO_INCREMENT", "AVG_ROW_LENGTH", "BEFORE", "BETWEEN",
	"BOTH", "BTREE", "BY", "CASCADE", "CASE", "CHECKPOINT", "COLLATE",
	"COLUMN", "COLUMNS", "COMMITTED", "CONDITION", "CONSISTENT", "CONSTRAINT",
	"CONTINUE", "CROSS", "CUBE", "CURSOR", "DATABASE", "DATABASES",
	"DAY_HOUR", "DAY_MICROSECOND", "DAY_MINUTE", "DAY_SECOND", "DEFINER",
	"DELAYED", "DETERMINISTIC", "DISTINCT", "DISTINCTROW", "DIV", "DUAL",
	"DUMPFILE", "DUPLICATE", "EACH", "ELSE", "ELSEIF", "EMPTY", "ENCLOSED",
	"END", "ENGINE", "ESCAPE", "ESCAPED", "EVENT", "EXCEPT", "EXISTS", "EXIT",
	"EXTENDED", "FETCH", "FIELDS", "FIRST", "FOLLOWING", "FORCE", "FOREIGN",
	"FROM", "FULL", "FULLTEXT", "FUNCTION", "GENERATED", "GROUP",
	"GROUPING", "GROUPS", "HAVING", "HIGH_PRIORITY", "HOUR_MICROSECOND",
	"HOUR_MINUTE", "HOUR_SECOND", "IGNORE", "INDEX", "INDEXES", "INFILE",
	"INNER", "INOUT", "INSENSITIVE", "INTERSECT", "INTERVAL", "INVISIBLE",
	"IO_AFTER_GTIDS", "IO_BEFORE_GTIDS", "IS", "ISOLATION", "ITERATE",
	"JOIN", "JSON_TABLE", "KEY", "KEYS", "LAST", "LATERAL", "LEADING",
	"LEAVE", "LEVEL", "LIKE", "LIMIT", "LINEAR", "LINES", "LOCKED",
	"LOOP", "LOW_PRIORITY", "MASTER", "MATCH", "MAXVALUE", "MINUTE_MICROSECOND",
	"MINUTE_SECOND", "MODIFIES", "MODIFY", "NATURAL", "NOWAIT", "NULLS",
	"OF", "OFFSET", "ON", "OPTION", "OPTIONALLY", "ORDER", "OUT", "OUTER",
	"OUTFILE", "OVER", "PARTITION", "PARTITIONS", "PRECEDING", "PRIMARY",
	"PROCEDURE", "PROCESSLIST", "QUICK", "RANGE", "READS", "READ_WRITE",
	"REFERENCES", "REGEXP", "REPEAT", "REPEATABLE", "REPLICA", "REPLICAS",
	"REQUIRE", "RESTRICT", "RETURN", "RETURNING", "RETURNS", "RLIKE",
	"ROLLUP", "ROWS", "SCHEMA", "SCHEMAS", "SECOND_MICROSECOND", "SENSITIVE",
	"SEPARATOR", "SERIALIZABLE", "SKIP", "SLAVE", "SNAPSHOT",
	"SPATIAL", "SPECIFIC", "SQL", "SQLEXCEPTION", "SQLSTATE", "SQLWARNING",
	"SQL_BIG_RESULT", "SQL_BUFFER_RESULT", "SQL_CACHE", "SQL_NO_CACHE",
	"SQL_SMALL_RESULT", "SSL", "STARTING", "STORED", "STRAIGHT_JOIN",
	"SYSTEM", "SYSTEM_TIME", "TEMPTABLE", "TERMINATED", "THEN", "TIES",
	"TRAILING", "TRIGGER", "UNBOUNDED", "UNCOMMITTED", "UNDO", "UNION",
	"UNIQUE", "UNSIGNED", "USAGE", "USING", "VARYING", "VIEW", "VIRTUAL",
	"WAIT", "WHEN", "WHERE", "WHILE", "WINDOW", "WRITE", "XOR",
	"YEAR_MONTH", "ZEROFILL",
}

// functions are built-in functions and types: upper-cased, and Digest
// writes "COUNT(*)" rather than "COUNT (*)".
var functions = []string{
	"ABS", "ADDDATE", "AES_DECRYPT", "AES_ENCRYPT", "ANY_VALUE", "ASCII",
	"AVG", "BIGINT", "BIN", "BINARY", "BIT", "BIT_AND", "BIT_COUNT",
	"BIT_LENGTH", "BIT_OR", "BIT_XOR", "BLOB", "BOOL", "BOOLEAN", "CAST",
	"CEIL", "CEILING", "CHAR", "CHAR_LENGTH", "CHARACTER_LENGTH", "COALESCE",
	"COERCIBILITY", "COLLATION", "COMPRESS", "CONCAT", "CONCAT_WS",
	"CONNECTION_ID", "CONV", "CONVERT", "CONVERT_TZ", "CRC32", "CUME_DIST",
	"CURDATE", "CURTIME", "DATE_ADD", "DATE_FORMAT", "DATE_SUB", "DATEDIFF",
	"DAYNAME", "DAYOFMONTH", "DAYOFWEEK", "DAYOFYEAR", "DEC", "DECIMAL",
	"DEGREES", "DENSE_RANK", "DOUBLE", "ELT", "ENUM", "EXP", "EXTRACT",
	"FIELD", "FIND_IN_SET", "FIRST_VALUE", "FLOAT", "FLOOR", "FROM_BASE64",
	"FROM_DAYS", "FROM_UNIXTIME", "GREATEST", "GROUP_CONCAT", "HEX", "IF",
	"IFNULL", "INET6_ATON", "INET6_NTOA", "INET_ATON", "INET_NTOA", "INSTR",
	"INT", "INTEGER", "IS_FREE_LOCK", "IS_USED_LOCK", "ISNULL", "JSON",
	"JSON_ARRAY", "JSON_ARRAYAGG", "JSON_CONTAINS", "JSON_EXTRACT",
	"JSON_KEYS", "JSON_LENGTH", "JSON_OBJECT", "JSON_OBJECTAGG", "JSON_SET",
	"JSON_UNQUOTE", "JSON_VALUE", "LAG", "LAST_DAY", "LAST_VALUE", "LCASE",
	"LEAD", "LEAST", "LEFT", "LENGTH", "LN", "LOCATE", "LOG", "LOG10",
	"LOG2", "LONGBLOB", "LONGTEXT", "LOWER", "LPAD", "LTRIM", "MAKEDATE",
	"MAX", "MD5", "MEDIUMBLOB", "MEDIUMINT", "MEDIUMTEXT", "MICROSECOND",
	"MID", "MIN", "MOD", "MONTHNAME", "NOW", "NTH_VALUE", "NTILE", "NULLIF",
	"NUMERIC", "OCT", "ORD", "PERCENT_RANK", "PERIOD_ADD", "PERIOD_DIFF",
	"PI", "POSITION", "POW", "POWER", "QUARTER", "QUOTE", "RADIANS", "RAND",
	"RANK", "REAL", "REGEXP_REPLACE", "REGEXP_SUBSTR", "REPEAT", "REVERSE",
	"RIGHT", "ROUND", "ROW_NUMBER", "RPAD", "RTRIM", "SEC_TO_TIME", "SHA",
	"SHA1", "SHA2", "SIGN", "SLEEP", "SMALLINT", "SOUNDEX", "SPACE", "SQRT",
	"STD", "STDDEV", "STR_TO_DATE", "STRCMP", "SUBDATE", "SUBSTR",
	"SUBSTRING", "SUBSTRING_INDEX", "SUM", "SYSDATE", "TIME_FORMAT",
	"TIME_TO_SEC", "TIMEDIFF", "TIMESTAMPADD", "TIMESTAMPDIFF", "TINYBLOB",
	"TINYINT", "TINYTEXT", "TO_BASE64", "TO_DAYS", "TO_SECONDS", "TRIM",
	"TRUNCATE", "UCASE", "UNCOMPRESS", "UNHEX", "UNIX_TIMESTAMP", "UPPER",
	"UTC_DATE", "UTC_TIME", "UTC_TIMESTAMP", "UUID", "UUID_SHORT",
	"VAR_POP", "VAR_SAMP", "VARBINARY", "VARCHAR", "VARIANCE", "VERSION",
	"WEEKDAY", "WEEKOFYEAR", "YEARWEEK",
}

// operands are keywords that stand for a value.
var operands = []string{
	"CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "CURRENT_USER",
	"FALSE", "LOCALTIME", "LOCALTIMESTAMP", "NULL", "TRUE", "UNKNOWN",
}

// The keyword table is an open-addressing hash table keyed by a hash that
// ignores case, so a lookup costs a hash, usually one comparison, and no
// allocation.
const (
	kwTableBits = 11
	kwMaxLen    = 24
)

var (
	kwEntries []keyword
	kwSlots   [1 << kwTableBits]uint16 // index+1 into kwEntries; 0 is empty
)

func init() {
	add := func(k keyword) {
		if len(k.name) > kwMaxLen {
			panic("sqlscan: keyword too long: " + k.name)
		}
		i := foldHash([]byte(k.name)) & (len(kwSlots) - 1)
		for kwSlots[i] != 0 {
			e := &kwEntries[kwSlots[i]-1]
			if e.name == k.name {
				// Listed twice (e.g. a function that is also a statement):
				// the first, more specific entry wins, attributes merge.
				e.attr |= k.attr
				return
			}
			i = (i + 1) & (len(kwSlots) - 1)
		}
		kwEntries = append(kwEntries, k)
		kwSlots[i] = uint16(len(kwEntries))
	}
	for _, k := range named {
		add(k)
	}
	for _, w := range operands {
		add(keyword{name: w, attr: upper | operand})
	}
	for _, w := range functions {
		add(keyword{name: w, attr: upper | fn})
	}
	for _, w := range reserved {
		add(keyword{name: w, attr: upper})
	}
	if len(kwEntries) > len(kwSlots)/2 {
		panic("sqlscan: keyword table too full")
	}
}

// foldHash hashes the length and three bytes of a word, folded so that
// case does not matter: cheap, and spread enough for linear probing (see
// TestKeywordTable).
func foldHash(w []byte) int {
	n := len(w)
	h := uint32(w[0]|0x20) | uint32(w[n/2]|0x20)<<8 | uint32(w[n-1]|0x20)<<16 | uint32(n)<<24
	return int((h * 0x9E3779B1) >> (32 - kwTableBits))
}

var noKeyword keyword

// lookup returns the keyword w spells in any case, or an entry with no
// attributes when w is not a keyword.
func lookup(w []byte) *keyword {
	if len(w) == 0 || len(w) > kwMaxLen {
		return &noKeyword
	}
	i := foldHash(w) & (len(kwSlots) - 1)
	for {
		n := kwSlots[i]
		if n == 0 {
			return &noKeyword
		}
		if e := &kwEntries[n-1]; equalFold(w, e.name) {
			return e
		}
		i = (i + 1) & (len(kwSlots) - 1)
	}
}
