package statestore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// DefaultCluster is the cluster a flat `servers:` configuration forms. Its
// epoch is written at the top level of the state file, where a sluice of
// one cluster always wrote it, so files written before clusters existed
// load unchanged and keep meaning what they meant.
const DefaultCluster = "default"

// EpochKey is the key under which a cluster's epoch decision is kept
// (its version is the epoch). Watch it to follow another instance's
// failovers; write it only through Cluster(name).Save.
func EpochKey(cluster string) string { return "epoch/" + cluster }

// Entry is a value and its version. Version 0 means the key is absent.
type Entry struct {
	Key     string
	Value   []byte
	Version uint64
}

// Coordinator is the coordination API several sluice instances can share:
// versioned values under keys, changed only by compare-and-swap, and
// watched. File implements it for one instance; an etcd implementation
// (revisions as versions, Txn for the compare-and-swap, Watch) can satisfy
// it for many.
type Coordinator interface {
	// Get returns the current entry of key (Version 0 when absent).
	Get(key string) (Entry, error)
	// CompareAndSwap stores value under key if key's version is still
	// version (0: the key must not exist), and returns the new version. A
	// version that moved on fails with an error matching ErrVersion.
	CompareAndSwap(key string, version uint64, value []byte) (uint64, error)
	// Watch delivers key's entry after every change (the latest only, to
	// a slow reader) until stop is called.
	Watch(key string) (ch <-chan Entry, stop func())
	// Cluster is the epoch store of one cluster.
	Cluster(name string) Store
}

// ErrVersion is returned by CompareAndSwap when the key's version is not
// the one the caller read.
var ErrVersion = errors.New("statestore: version changed since it was read")

var _ Coordinator = (*File)(nil)

// document is the state file: the default cluster's epoch at the top level
// (the old format), every other cluster's under "clusters", and versioned
// values (placement) under "keys".
type document struct {
	State
	Clusters map[string]State `json:"clusters,omitempty"`
	Keys     map[string]value `json:"keys,omitempty"`
}

type value struct {
	Version uint64          `json:"version"`
	Value   json.RawMessage `json:"value"`
}

func (d *document) cluster(name string) State {
	if name == DefaultCluster {
		return d.State
	}
	return d.Clusters[name]
}

func (d *document) entry(key string) Entry {
	if c, ok := strings.CutPrefix(key, "epoch/"); ok {
		st := d.cluster(c)
		if st.Epoch == 0 {
			return Entry{Key: key}
		}
		b, _ := json.Marshal(st)
		return Entry{Key: key, Value: b, Version: st.Epoch}
	}
	v, ok := d.Keys[key]
	if !ok {
		return Entry{Key: key}
	}
	var b bytes.Buffer
	_ = json.Compact(&b, v.Value)
	return Entry{Key: key, Value: b.Bytes(), Version: v.Version}
}

// Get implements Coordinator.
func (f *File) Get(key string) (Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Entry{}, ErrClosed
	}
	doc, err := f.loadDoc()
	if err != nil {
		return Entry{}, err
	}
	return doc.entry(key), nil
}

// CompareAndSwap implements Coordinator. Epoch keys are refused: their
// rule is the epoch's (only up), kept by Cluster(name).Save.
func (f *File) CompareAndSwap(key string, version uint64, val []byte) (uint64, error) {
	if strings.HasPrefix(key, "epoch/") {
		return 0, fmt.Errorf("statestore: %s is an epoch: save it through Cluster", key)
	}
	if !json.Valid(val) {
		return 0, fmt.Errorf("statestore: the value of %s is not JSON", key)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrClosed
	}
	doc, err := f.loadDoc()
	if err != nil {
		return 0, err
	}
	cur := doc.Keys[key]
	if cur.Version != version {
		return 0, fmt.Errorf("%w: %s is at version %d, not %d", ErrVersion, key, cur.Version, version)
	}
	if doc.Keys == nil {
		doc.Keys = map[string]value{}
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, val)
	doc.Keys[key] = value{Version: version + 1, Value: compact.Bytes()}
	if err := f.writeDoc(doc); err != nil {
		return 0, err
	}
	f.notify(doc.entry(key))
	return version + 1, nil
}

// Watch implements Coordinator. Changes made through this File are seen;
// the file is held locked by one process, so there are no others.
func (f *File) Watch(key string) (<-chan Entry, func()) {
	ch := make(chan Entry, 1)
	f.wmu.Lock()
	if f.watchers == nil {
		f.watchers = map[chan Entry]string{}
	}
	f.watchers[ch] = key
	f.wmu.Unlock()
	return ch, func() {
		f.wmu.Lock()
		delete(f.watchers, ch)
		f.wmu.Unlock()
	}
}

// notify hands e to key's watchers, replacing an entry a slow watcher has
// not taken yet: watchers want the latest value, not every step.
func (f *File) notify(e Entry) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for ch, k := range f.watchers {
		if k != e.Key {
			continue
		}
		select {
		case <-ch:
		default:
		}
		ch <- e
	}
}

// Cluster implements Coordinator: the epoch store of one cluster, with
// the epoch rule of Save. Cluster(DefaultCluster) is the File itself.
func (f *File) Cluster(name string) Store {
	if name == DefaultCluster {
		return f
	}
	return clusterStore{f, name}
}

// Clusters lists the clusters that have an epoch in the file.
func (f *File) Clusters() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	doc, err := f.loadDoc()
	if err != nil {
		return nil, err
	}
	names := slices.Collect(maps.Keys(doc.Clusters))
	if doc.Epoch > 0 {
		names = append(names, DefaultCluster)
	}
	slices.Sort(names)
	return names, nil
}

type clusterStore struct {
	f    *File
	name string
}

func (c clusterStore) Load() (State, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.f.closed {
		return State{}, ErrClosed
	}
	doc, err := c.f.loadDoc()
	if err != nil {
		return State{}, err
	}
	return doc.cluster(c.name), nil
}

func (c clusterStore) Save(s State) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.f.closed {
		return ErrClosed
	}
	return c.f.saveCluster(c.name, s)
}

// saveCluster stores s as cluster's epoch if it is greater than the stored
// one. The caller holds f.mu.
func (f *File) saveCluster(cluster string, s State) error {
	doc, err := f.loadDoc()
	if err != nil {
		return err
	}
	cur := doc.cluster(cluster)
	if s.Epoch <= cur.Epoch {
		where := f.path
		if cluster != DefaultCluster {
			where = "cluster " + cluster + " in " + f.path
		}
		return fmt.Errorf("%w: cannot save epoch %d over epoch %d (primary %q) in %s", ErrStaleEpoch, s.Epoch, cur.Epoch, cur.Primary, where)
	}
	if cluster == DefaultCluster {
		doc.State = s
	} else {
		if doc.Clusters == nil {
			doc.Clusters = map[string]State{}
		}
		doc.Clusters[cluster] = s
	}
	if err := f.writeDoc(doc); err != nil {
		return err
	}
	f.notify(doc.entry(EpochKey(cluster)))
	return nil
}

func (f *File) writeDoc(doc document) error {
	var data []byte
	var err error
	if doc.Clusters == nil && doc.Keys == nil {
		// One cluster and nothing else: the file a sluice of one cluster
		// always wrote.
		data, err = json.MarshalIndent(doc.State, "", "  ")
	} else {
		data, err = json.MarshalIndent(doc, "", "  ")
	}
	if err != nil {
		return fmt.Errorf("statestore: encode state: %w", err)
	}
	return f.write(append(data, '\n'))
}
