package controlplane

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
)

// FileSource reads a directory of App Mesh definitions (every *.json,
// *.yaml and *.yml below it, in any format load reads) and reloads it when
// a file changes. Changes are noticed by polling file metadata (name, size,
// modification time, following symlinks, so Kubernetes ConfigMap swaps are
// seen too), every Interval.
type FileSource struct {
	Dir     string
	Options load.Options
	// Interval between checks (250 ms when 0).
	Interval time.Duration
	Log      *slog.Logger
}

// LoadDir loads, validates and indexes a directory once.
func LoadDir(dir string, opt load.Options) (Update, error) {
	if fi, err := os.Stat(dir); err != nil {
		return Update{}, fmt.Errorf("configuration directory: %w", err)
	} else if !fi.IsDir() {
		return Update{}, fmt.Errorf("configuration directory: %s is not a directory", dir)
	}
	res, err := load.Dir(os.DirFS(dir), ".", opt)
	if err != nil {
		return Update{}, fmt.Errorf("load %s: %w", dir, err)
	}
	u := Update{Problems: res.Problems, Warnings: res.Warnings, Resources: len(res.Docs)}
	cfg, problems, warnings := model.Build(res.Docs)
	u.Problems = append(u.Problems, problems...)
	u.Warnings = append(u.Warnings, warnings...)
	if len(u.Problems) == 0 {
		u.Config = cfg
	}
	return u, nil
}

// fingerprint summarises the metadata of the files LoadDir reads.
func fingerprint(dir string) ([32]byte, error) {
	var sum [32]byte
	fsys := os.DirFS(dir)
	files, err := load.ConfigFiles(fsys, ".")
	if err != nil {
		return sum, err
	}
	h := sha256.New()
	for _, f := range files {
		fi, err := fs.Stat(fsys, f) // follows symlinks
		if err != nil {
			fmt.Fprintf(h, "%s:missing\n", f)
			continue
		}
		fmt.Fprintf(h, "%s:%d:%d\n", f, fi.Size(), fi.ModTime().UnixNano())
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Run loads the directory, then reloads it on every change.
func (f *FileSource) Run(ctx context.Context, apply func(Update)) error {
	interval := f.Interval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	var last [32]byte
	first := true
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		sum, err := fingerprint(f.Dir)
		switch {
		case err != nil && first:
			return fmt.Errorf("configuration directory %s: %w", f.Dir, err)
		case err != nil:
			f.Log.Error("cannot scan the configuration directory; keeping the last configuration", "dir", f.Dir, "err", err)
		case first || sum != last:
			start := time.Now()
			u, err := LoadDir(f.Dir, f.Options)
			f.Log.Debug("configuration read", "dir", f.Dir, "resources", u.Resources, "problems", len(u.Problems), "took", time.Since(start).String())
			if err != nil {
				if first {
					return err
				}
				f.Log.Error("cannot load the configuration directory; keeping the last configuration", "err", err)
				break
			}
			// A file may change again while it is read; the next tick
			// sees the newer fingerprint and loads again.
			last, first = sum, false
			apply(u)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
