package watch

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestSignalWakesWaiterTakenBeforeNotify(t *testing.T) {
	var s Signal
	c := s.C()
	if isClosed(c) {
		t.Fatal("C() is closed before any Notify")
	}
	if c2 := s.C(); c2 != c {
		t.Fatal("C() returned a different channel without a Notify in between")
	}
	s.Notify()
	if !isClosed(c) {
		t.Fatal("channel taken before Notify is still open after it")
	}
}

func TestSignalWakesEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Signal
		const n = 100
		var woke atomic.Int32
		var taken sync.WaitGroup
		for range n {
			taken.Add(1)
			go func() {
				c := s.C()
				taken.Done()
				<-c
				woke.Add(1)
			}()
		}
		taken.Wait()
		synctest.Wait()
		if w := woke.Load(); w != 0 {
			t.Fatalf("%d waiters woke before Notify", w)
		}
		s.Notify()
		synctest.Wait()
		if w := woke.Load(); w != n {
			t.Fatalf("%d of %d waiters woke", w, n)
		}
	})
}

func TestSignalFreshChannelAfterNotify(t *testing.T) {
	var s Signal
	old := s.C()
	s.Notify()
	c := s.C()
	if c == old {
		t.Fatal("C() after Notify returned the closed channel")
	}
	if isClosed(c) {
		t.Fatal("C() after Notify is already closed")
	}
	s.Notify()
	if !isClosed(c) {
		t.Fatal("second Notify did not close the channel taken after the first")
	}
	// Notify on a Signal nobody waits on does not panic and leaves an open
	// channel for the next waiter.
	var z Signal
	z.Notify()
	z.Notify()
	if isClosed(z.C()) {
		t.Fatal("C() after Notify without waiters is closed")
	}
}

// A waiter that re-arms in a loop (take C, check state, wait) sees every
// update, and wakes only when notified.
func TestSignalNoLostWakeups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Signal
		var mu sync.Mutex
		version := 0
		const rounds = 50
		seen := make(chan int, rounds+1)
		spurious := make(chan int, 1)
		go func() {
			last := -1
			for {
				c := s.C()
				mu.Lock()
				v := version
				mu.Unlock()
				if v == last {
					spurious <- v // woke without a Notify
					return
				}
				seen <- v
				last = v
				if v == rounds {
					return
				}
				<-c
			}
		}()
		for i := 1; i <= rounds; i++ {
			synctest.Wait()
			mu.Lock()
			version = i
			mu.Unlock()
			s.Notify()
		}
		synctest.Wait()
		close(seen)
		var got []int
		for v := range seen {
			got = append(got, v)
		}
		select {
		case v := <-spurious:
			t.Fatalf("waiter woke with no Notify at version %d", v)
		default:
		}
		if len(got) != rounds+1 || got[len(got)-1] != rounds {
			t.Fatalf("waiter saw versions %v, want 0..%d", got, rounds)
		}
	})
}

func TestSignalConcurrent(t *testing.T) {
	var s Signal
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 1000 {
				s.Notify()
			}
		}()
		go func() {
			defer wg.Done()
			for range 1000 {
				c := s.C()
				s.Notify()
				<-c // taken before a Notify: must be closed by now
			}
		}()
	}
	wg.Wait()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// read calls f.Read and checks the result.
func read(t *testing.T, f *File, wantData string, wantChanged bool) []byte {
	t.Helper()
	data, changed, err := f.Read()
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if string(data) != wantData {
		t.Fatalf("Read data = %q, want %q", data, wantData)
	}
	if changed != wantChanged {
		t.Fatalf("Read changed = %v, want %v", changed, wantChanged)
	}
	return data
}

func TestFileChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ids.yaml")
	writeFile(t, path, "one")
	f := &File{Path: path}

	d := read(t, f, "one", true) // first read
	read(t, f, "one", true)      // nothing marked yet
	f.Mark(d)
	read(t, f, "one", false) // unchanged after Mark

	writeFile(t, path, "two")
	d = read(t, f, "two", true)
	read(t, f, "two", true) // still changed until marked
	f.Mark(d)
	read(t, f, "two", false)

	writeFile(t, path, "two") // rewritten, same content
	read(t, f, "two", false)

	writeFile(t, path, "one") // back to an earlier content
	d = read(t, f, "one", true)
	f.Mark(d)

	writeFile(t, path, "") // emptied
	d = read(t, f, "", true)
	f.Mark(d)
	read(t, f, "", false)
}

func TestFileFirstReadOfEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty")
	writeFile(t, path, "")
	f := &File{Path: path}
	read(t, f, "", true)
}

// Kubernetes updates ConfigMap volumes by swapping a symlink; the content
// hash sees it.
func TestFileSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "v1", "f"), "old")
	writeFile(t, filepath.Join(dir, "v2", "f"), "new")
	if err := os.Symlink("v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "f")
	if err := os.Symlink(filepath.Join("..data", "f"), path); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: path}
	f.Mark(read(t, f, "old", true))
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink("v2", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	read(t, f, "new", true)
}

func TestFileMaxSize(t *testing.T) {
	tests := []struct {
		name    string
		maxSize int64
		size    int
		tooBig  bool
	}{
		{"under", 10, 9, false},
		{"at limit", 10, 10, false},
		{"one over", 10, 11, true},
		{"far over", 10, 100000, true},
		{"default limit", 0, 1 << 20, false},
		{"over default limit", 0, 1<<20 + 1, true},
		{"negative means default", -1, 1<<20 + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			content := strings.Repeat("x", tt.size)
			writeFile(t, path, content)
			f := &File{Path: path, MaxSize: tt.maxSize}
			data, changed, err := f.Read()
			if !tt.tooBig {
				if err != nil || !changed || !bytes.Equal(data, []byte(content)) {
					t.Fatalf("Read = %d bytes, %v, %v; want the whole file, changed", len(data), changed, err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if data != nil || changed {
				t.Errorf("Read returned %d bytes, changed=%v with ErrTooLarge", len(data), changed)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing", func(t *testing.T) {
		f := &File{Path: filepath.Join(dir, "missing")}
		data, changed, err := f.Read()
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want not-exist", err)
		}
		if data != nil || changed {
			t.Errorf("Read returned %q, changed=%v with an error", data, changed)
		}
	})
	t.Run("removed after being read", func(t *testing.T) {
		path := filepath.Join(dir, "gone")
		writeFile(t, path, "x")
		f := &File{Path: path}
		f.Mark(read(t, f, "x", true))
		os.Remove(path)
		if _, _, err := f.Read(); err == nil {
			t.Fatal("Read of a removed file succeeded")
		}
		// It reappearing with the same content is not a change.
		writeFile(t, path, "x")
		read(t, f, "x", false)
	})
	t.Run("directory", func(t *testing.T) {
		f := &File{Path: dir}
		_, changed, err := f.Read()
		if err == nil || changed {
			t.Fatalf("Read of a directory = changed %v, err %v; want an error", changed, err)
		}
		if !strings.Contains(err.Error(), dir) {
			t.Errorf("error %q does not name the path", err)
		}
	})
	t.Run("dangling symlink", func(t *testing.T) {
		path := filepath.Join(dir, "dangling")
		if err := os.Symlink(filepath.Join(dir, "nowhere"), path); err != nil {
			t.Fatal(err)
		}
		if _, _, err := (&File{Path: path}).Read(); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want not-exist", err)
		}
	})
}
