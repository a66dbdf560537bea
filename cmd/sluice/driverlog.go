package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// driverLogger routes go-sql-driver's own messages ("[mysql] packets.go:58
// unexpected EOF", printed to stderr by default) into sluice's log at
// debug level: they repeat what the monitor already reports with context,
// and a raw line on stderr breaks log.format: json.
type driverLogger struct{ log *slog.Logger }

func (d driverLogger) Print(v ...any) {
	d.log.Debug("mysql driver", "msg", strings.TrimSpace(fmt.Sprint(v...)))
}

// routeDriverLogs installs driverLogger; the driver's logger is global.
func routeDriverLogs(log *slog.Logger) {
	mysql.SetLogger(driverLogger{log: log.With("component", "go-sql-driver")})
}
