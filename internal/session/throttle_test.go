package session

import (
	"strings"
	"testing"
	"time"
)

func TestLoginGuardBacksOffAndResets(t *testing.T) {
	g := NewLoginGuard(LoginSettings{MaxFailures: 3, Block: time.Second, MaxBlock: 4 * time.Second})
	now := time.Unix(1000, 0)
	for i := 0; i < 2; i++ {
		g.Failed("10.0.0.1", "app", true, now)
	}
	if _, _, blocked := g.Blocked("10.0.0.1", "app", now); blocked {
		t.Fatal("blocked below max_failures")
	}
	g.Failed("10.0.0.1", "app", true, now)
	wait, byHost, blocked := g.Blocked("10.0.0.1", "other", now)
	if !blocked || !byHost || wait != time.Second {
		t.Fatalf("after 3 failures: wait %s byHost %v blocked %v, want 1s by host", wait, byHost, blocked)
	}
	// The account is blocked from other hosts too (max_password_errors).
	if _, byHost, blocked := g.Blocked("10.0.0.2", "app", now); !blocked || byHost {
		t.Fatal("the account is not blocked from another host")
	}
	// Each further failure doubles the block, up to max_block.
	for _, want := range []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second} {
		now = now.Add(5 * time.Second)
		g.Failed("10.0.0.1", "app", true, now)
		if wait, _, _ := g.Blocked("10.0.0.1", "app", now); wait != want {
			t.Fatalf("block %s, want %s", wait, want)
		}
	}
	g.Succeeded("10.0.0.1", "app")
	if _, _, blocked := g.Blocked("10.0.0.1", "app", now); blocked {
		t.Fatal("still blocked after a successful login")
	}
	// Unknown user names count against the host only: the account table
	// holds configured accounts, so guessing names cannot grow it.
	for i := 0; i < 5; i++ {
		g.Failed("10.0.0.3", strings.Repeat("x", i+1), false, now)
	}
	if len(g.users) != 0 {
		t.Fatalf("%d account entries for unknown names", len(g.users))
	}
	if _, byHost, blocked := g.Blocked("10.0.0.3", "app", now); !blocked || !byHost {
		t.Fatal("the host guessing names is not blocked")
	}
	// The host table is bounded.
	for i := 0; i < maxTrackedHosts+10; i++ {
		g.Failed("h"+strings.Repeat("1", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), "u", false, now.Add(time.Hour))
	}
	if len(g.hosts) > maxTrackedHosts {
		t.Fatalf("%d hosts tracked, bound %d", len(g.hosts), maxTrackedHosts)
	}
}

func TestCutKeepsUTF8Whole(t *testing.T) {
	s := strings.Repeat("é", 150) // 300 bytes
	got := cut(s, 201)
	if !strings.HasSuffix(got, "...") || len(got) > 204 || strings.ContainsRune(got, '\uFFFD') {
		t.Fatalf("cut: %q", got)
	}
}
