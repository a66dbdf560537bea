package statestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCompareAndSwapVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f := open(t, path)
	if e, err := f.Get("placement"); err != nil || e.Version != 0 || e.Value != nil {
		t.Fatalf("Get of a missing key = %+v, %v", e, err)
	}
	v, err := f.CompareAndSwap("placement", 0, []byte(`{"a": 1}`))
	if err != nil || v != 1 {
		t.Fatalf("first CAS = %d, %v; want 1", v, err)
	}
	if _, err := f.CompareAndSwap("placement", 0, []byte(`{"a": 2}`)); !errors.Is(err, ErrVersion) {
		t.Fatalf("CAS on a stale version = %v; want ErrVersion", err)
	}
	if v, err = f.CompareAndSwap("placement", 1, []byte(`{"a": 3}`)); err != nil || v != 2 {
		t.Fatalf("second CAS = %d, %v; want 2", v, err)
	}
	if _, err := f.CompareAndSwap("placement", 2, []byte(`{oops`)); err == nil {
		t.Fatal("CAS of a value that is not JSON succeeded")
	}
	if _, err := f.CompareAndSwap(EpochKey("c1"), 0, []byte(`{}`)); err == nil {
		t.Fatal("CAS on an epoch key succeeded")
	}
	f.Close()
	f2 := open(t, path)
	e, err := f2.Get("placement")
	if err != nil || e.Version != 2 || string(e.Value) != `{"a":3}` {
		t.Fatalf("after reopen Get = %+v (%s), %v", e, e.Value, err)
	}
}

func TestEpochPerCluster(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	// A file written by a sluice of one cluster.
	if err := os.WriteFile(path, []byte(`{"epoch": 4, "primary": "db2", "address": "h:1", "reason": "failover"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f := open(t, path)
	if st, err := f.Cluster(DefaultCluster).Load(); err != nil || st.Epoch != 4 || st.Primary != "db2" {
		t.Fatalf("default cluster of an old file = %+v, %v", st, err)
	}
	east := f.Cluster("east")
	if st, err := east.Load(); err != nil || st.Epoch != 0 {
		t.Fatalf("east before any save = %+v, %v", st, err)
	}
	if err := east.Save(State{Epoch: 1, Primary: "e1"}); err != nil {
		t.Fatal(err)
	}
	if err := east.Save(State{Epoch: 1, Primary: "e2"}); !errors.Is(err, ErrStaleEpoch) || !strings.Contains(err.Error(), "cluster east") {
		t.Fatalf("stale save on east = %v", err)
	}
	if err := f.Save(State{Epoch: 5, Primary: "db1"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f2 := open(t, path)
	if st, _ := f2.Cluster("east").Load(); st.Epoch != 1 || st.Primary != "e1" {
		t.Fatalf("east after reopen = %+v", st)
	}
	if st, _ := f2.Load(); st.Epoch != 5 || st.Primary != "db1" {
		t.Fatalf("default after reopen = %+v", st)
	}
	if names, _ := f2.Clusters(); strings.Join(names, ",") != "default,east" {
		t.Fatalf("Clusters = %v", names)
	}
	if e, _ := f2.Get(EpochKey("east")); e.Version != 1 {
		t.Fatalf("epoch entry of east = %+v", e)
	}
}

func TestWatchSeesChanges(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "state.json"))
	ch, stop := f.Watch("placement")
	defer stop()
	epochs, stopE := f.Watch(EpochKey("west"))
	defer stopE()
	if _, err := f.CompareAndSwap("placement", 0, []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CompareAndSwap("placement", 1, []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-ch:
		// A slow watcher gets the latest entry, not every step.
		if e.Version != 2 || string(e.Value) != "2" {
			t.Fatalf("watched %+v; want version 2", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change delivered")
	}
	if err := f.Cluster("west").Save(State{Epoch: 3, Primary: "w1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-epochs:
		if e.Version != 3 {
			t.Fatalf("watched epoch %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no epoch change delivered")
	}
	stop()
	if _, err := f.CompareAndSwap("placement", 2, []byte(`3`)); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-ch:
		t.Fatalf("stopped watcher got %+v", e)
	default:
	}
}
