package placement

import (
	"slices"
	"testing"
)

func TestParseObjects(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []Object
	}{
		{"shop", []Object{{DB: "shop"}}},
		{"shop.orders", []Object{{DB: "shop", Table: "orders"}}},
		{"b.t1, t2", []Object{{DB: "b", Table: "t1"}, {DB: "b", Table: "t2"}}},
		{"b.bucket_{0000..0002},x", []Object{{DB: "b", Table: "bucket_0000"}, {DB: "b", Table: "bucket_0001"}, {DB: "b", Table: "bucket_0002"}, {DB: "b", Table: "x"}}},
	} {
		got, err := ParseObjects(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseObjects(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", ".t", "b.", "b.t{1..", "b.t_{0..99999}"} {
		if got, err := ParseObjects(bad); err == nil {
			t.Errorf("ParseObjects(%q) = %v, want an error", bad, got)
		}
	}
}
