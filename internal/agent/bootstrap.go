package agent

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshd/meshd/tracing"
)

// Bootstrap is Envoy's bootstrap file for one agent run.
type Bootstrap struct {
	// Path is the -c file.
	Path string
	// Rendered is true when the agent rendered it (false: ENVOY_CONFIG_FILE
	// as-is).
	Rendered bool
	// Warnings are worth logging.
	Warnings []string
	dir      string
}

// Close removes a rendered bootstrap and its private directory.
func (b *Bootstrap) Close() error {
	if b.dir == "" {
		return nil
	}
	return os.RemoveAll(b.dir)
}

// PrepareBootstrap returns the bootstrap Envoy runs with: ENVOY_CONFIG_FILE
// as-is when it names a non-empty file, else one rendered from the
// environment exactly as `meshd bootstrap` renders it (tracing.FromEnv,
// Render, Encode), written 0600 into a new private directory under tmpDir
// ("" means os.TempDir()). Input problems are a *tracing.InputError.
func PrepareBootstrap(c Config, lookup tracing.Lookup, readFile func(string) ([]byte, error), tmpDir string) (*Bootstrap, error) {
	b := &Bootstrap{}
	if c.EnvoyConfigFile != "" {
		fi, err := os.Stat(c.EnvoyConfigFile)
		if err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			b.Path = c.EnvoyConfigFile
			return b, nil
		}
		// App Mesh rendered into this path; meshd keeps rendered files private.
		b.Warnings = append(b.Warnings, fmt.Sprintf("ENVOY_CONFIG_FILE=%s is missing or empty: rendering the bootstrap from the environment instead", c.EnvoyConfigFile))
	}
	tc, err := tracing.FromEnv(lookup)
	if err != nil {
		return nil, err
	}
	boot, warnings, err := tracing.Render(tc, readFile)
	if err != nil {
		return nil, err
	}
	b.Warnings = append(b.Warnings, warnings...)
	data, err := tracing.Encode(boot, tracing.YAML)
	if err != nil {
		return nil, fmt.Errorf("encode bootstrap: %w", err)
	}
	dir, err := os.MkdirTemp(tmpDir, "meshd-agent-")
	if err != nil {
		return nil, fmt.Errorf("bootstrap directory: %w", err)
	}
	path := filepath.Join(dir, "envoy-bootstrap.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("write bootstrap: %w", err)
	}
	b.Path, b.Rendered, b.dir = path, true, dir
	return b, nil
}
