package httpapi

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts of the admin HTTP server. Without them one idle keep-alive
// connection per descriptor is enough to starve sluice of descriptors
// (MySQL logins and /healthz then fail together). The write timeout leaves
// room for /debug/pprof/profile's default 30 s.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 30 * time.Second
)

// Server is the admin HTTP server with its timeouts and connection cap.
type Server struct {
	*http.Server
	ln *capListener
}

// NewServer serves h on ln with at most maxConns connections: past the
// cap the longest-idle keep-alive connection is closed to make room, and
// when none is idle the new connection is closed at once, so a health
// checker gets a fast failure or a fast answer, never a hang.
func NewServer(ln net.Listener, h http.Handler, maxConns int) *Server {
	cl := &capListener{Listener: ln, max: maxConns, conns: map[net.Conn]*connState{}}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ConnState:         cl.track,
	}
	return &Server{Server: srv, ln: cl}
}

// Serve serves until Shutdown or Close.
func (s *Server) Serve() error { return s.Server.Serve(s.ln) }

// Open is the number of connections the server holds now.
func (s *Server) Open() int {
	s.ln.mu.Lock()
	defer s.ln.mu.Unlock()
	return len(s.ln.conns)
}

// Shed counts connections closed or refused because of the cap.
func (s *Server) Shed() uint64 { return s.ln.shed.Load() }

type capListener struct {
	net.Listener
	max   int
	mu    sync.Mutex
	conns map[net.Conn]*connState
	shed  atomic.Uint64
}

type connState struct {
	idle      bool
	idleSince time.Time
}

// Accept returns the next connection the cap admits. http.Server reports
// StateNew for a connection before it calls Accept again, so the count
// includes every connection handed out.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.mu.Unlock()
			return c, nil
		}
		var victim net.Conn
		var oldest time.Time
		for vc, st := range l.conns {
			if st.idle && (victim == nil || st.idleSince.Before(oldest)) {
				victim, oldest = vc, st.idleSince
			}
		}
		if victim != nil {
			delete(l.conns, victim)
		}
		l.mu.Unlock()
		l.shed.Add(1)
		if victim != nil {
			victim.Close()
			return c, nil
		}
		c.Close()
	}
}

func (l *capListener) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateNew:
		// A connection that has not sent a request yet may be shed like
		// an idle one: otherwise connections that send nothing would
		// lock everyone out until ReadHeaderTimeout.
		l.conns[c] = &connState{idle: true, idleSince: time.Now()}
	case http.StateActive:
		if s := l.conns[c]; s != nil {
			s.idle = false
		}
	case http.StateIdle:
		if s := l.conns[c]; s != nil {
			s.idle, s.idleSince = true, time.Now()
		}
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	}
}
