package controlplane

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// fingerprint summarises the metadata of every configuration file.
func fingerprint(dir string) ([32]byte, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") && !strings.HasPrefix(d.Name(), "..") {
				// Kubernetes' ..data swaps live in dot directories; the
				// symlinks pointing into them are what load reads.
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".json", ".yaml", ".yml":
		default:
			return nil
		}
		fi, err := os.Stat(path) // follows symlinks
		if err != nil {
			fmt.Fprintf(h, "%s:missing\n", path)
			return nil
		}
		fmt.Fprintf(h, "%s:%d:%d\n", path, fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, err
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
