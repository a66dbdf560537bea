package placement

import (
	"strings"
	"testing"
)

func TestParsePattern(t *testing.T) {
	tests := []struct {
		in      string
		match   []string
		nomatch []string
		n       uint64
		err     string
	}{
		{in: "users", match: []string{"users"}, nomatch: []string{"user", "users2"}, n: 1},
		{in: "bucket_{0000..1023}", match: []string{"bucket_0000", "bucket_0512", "bucket_1023"},
			nomatch: []string{"bucket_1024", "bucket_512", "bucket_00000", "bucket_", "bucket_0x12", "xbucket_0001"}, n: 1024},
		{in: "t{1..12}_log", match: []string{"t1_log", "t12_log"}, nomatch: []string{"t0_log", "t01_log", "t13_log", "t1"}, n: 12},
		{in: "b_{0..9}", match: []string{"b_0", "b_9"}, nomatch: []string{"b_10", "b_00"}, n: 10},
		{in: "bucket_{0000..99}", err: "same width"},
		{in: "bucket_{9..1}", err: "smaller"},
		{in: "bucket_{a..b}", err: "decimal"},
		{in: "b_{1..2}_{3..4}", err: "only one"},
		{in: "b_{1..2", err: "without"},
		{in: "b}", err: "without"},
		{in: "", err: "empty"},
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParsePattern(%q) error = %v; want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePattern(%q): %v", tt.in, err)
			continue
		}
		for _, m := range tt.match {
			if !p.Match([]byte(m)) {
				t.Errorf("%q does not match %q", tt.in, m)
			}
		}
		for _, m := range tt.nomatch {
			if p.Match([]byte(m)) {
				t.Errorf("%q matches %q", tt.in, m)
			}
		}
		var names []string
		p.Names(func(s string) bool { names = append(names, s); return true })
		if uint64(len(names)) != tt.n || p.Len() != tt.n {
			t.Errorf("%q has %d names (Len %d); want %d", tt.in, len(names), p.Len(), tt.n)
		}
		for _, n := range names {
			if !p.Match([]byte(n)) {
				t.Errorf("%q does not match its own name %q", tt.in, n)
			}
		}
	}
}

func testMap() *Map {
	return FromConfig(Config{
		DefaultCluster: "c1",
		Databases:      []Database{{"shop", "c2"}, {"buckets", "c1"}},
		Tables: []Tables{
			{"buckets", "bucket_{0000..0341}", "c1"},
			{"buckets", "bucket_{0342..0682}", "c2"},
			{"buckets", "bucket_{0683..1023}", "c3"},
			{"shop", "audit", "c3"},
		},
	}, "")
}

func TestLookup(t *testing.T) {
	m := testMap()
	for _, tt := range []struct{ db, table, want string }{
		{"shop", "", "c2"},
		{"shop", "orders", "c2"},
		{"shop", "audit", "c3"},
		{"buckets", "bucket_0000", "c1"},
		{"buckets", "bucket_0342", "c2"},
		{"buckets", "bucket_1023", "c3"},
		{"buckets", "other", "c1"},
		{"blog", "posts", "c1"},
		{"Shop", "orders", "c1"}, // names are case-sensitive, as on the servers
	} {
		if got := m.Owner(Object{tt.db, tt.table}); got != tt.want {
			t.Errorf("Owner(%s.%s) = %s; want %s", tt.db, tt.table, got, tt.want)
		}
	}
	if !m.Split([]byte("buckets")) || m.Split([]byte("blog")) {
		t.Error("Split")
	}
	if got := strings.Join(m.Clusters(), ","); got != "c1,c2,c3" {
		t.Errorf("Clusters = %s", got)
	}
	for db, want := range map[string]string{"buckets": "c1,c2,c3", "shop": "c2,c3", "blog": "c1", "none": "c1"} {
		if got := strings.Join(m.Holders(db), ","); got != want {
			t.Errorf("Holders(%s) = %s; want %s", db, got, want)
		}
	}
	allocs := testing.AllocsPerRun(100, func() { m.Table([]byte("buckets"), []byte("bucket_0700")) })
	if allocs != 0 {
		t.Errorf("Table allocates %v times", allocs)
	}
}

func TestPlaceAndEncode(t *testing.T) {
	m := testMap()
	m.Version = 7
	n := m.Place([]Object{{"buckets", "bucket_0001"}, {"blog", ""}}, "c4")
	if m.Owner(Object{"buckets", "bucket_0001"}) != "c1" || m.Owner(Object{"blog", ""}) != "c1" {
		t.Fatal("Place changed the original map")
	}
	if n.Owner(Object{"buckets", "bucket_0001"}) != "c4" || n.Owner(Object{"buckets", "bucket_0002"}) != "c1" ||
		n.Owner(Object{"blog", "x"}) != "c4" || n.Version != 7 {
		t.Fatalf("after Place: %+v", n)
	}
	d, err := Decode(n.Encode(), 8)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 8 || d.Owner(Object{"buckets", "bucket_0001"}) != "c4" || d.Owner(Object{"buckets", "bucket_0700"}) != "c3" || d.Owner(Object{"shop", "audit"}) != "c3" {
		t.Fatalf("decoded %+v", d)
	}
}

func TestValidate(t *testing.T) {
	c := Config{DefaultCluster: "nope", Databases: []Database{{"a", "c1"}, {"a", "c2"}, {"", "c1"}},
		Tables: []Tables{{"", "x_{1..", "c1"}, {"b", "t", ""}}}
	var msgs []string
	for _, p := range c.Validate([]string{"c1", "c2"}) {
		msgs = append(msgs, p.Path+": "+p.Message)
	}
	got := strings.Join(msgs, "\n")
	for _, want := range []string{"placement.default_cluster: no cluster named \"nope\"", "placement.databases[1].name: database \"a\" is placed twice",
		"placement.databases[2].name: required", "placement.tables[0].database: required", "placement.tables[0].tables:", "placement.tables[1].cluster: required"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
}
