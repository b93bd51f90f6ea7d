package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// Config file defaults.
const (
	ConfigAPIVersion = "skiff/v1"
	ConfigKind       = "Config"
)

// DefaultConfigPath is $SKIFF_CONFIG, else ~/.skiff/config.
func DefaultConfigPath() string {
	if p := os.Getenv("SKIFF_CONFIG"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".skiff", "config")
	}
	return filepath.Join(home, ".skiff", "config")
}

// LoadConfig reads a config file (YAML or JSON).
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client: reading config: %w", err)
	}
	var cfg Config
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return nil, fmt.Errorf("client: parsing config %s: %w", path, err)
	}
	if cfg.Kind != "" && cfg.Kind != ConfigKind {
		return nil, fmt.Errorf("client: config %s has kind %q, want %q", path, cfg.Kind, ConfigKind)
	}
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("client: config %s lists no servers", path)
	}
	return &cfg, nil
}

// Save writes the config to path atomically (a temporary file renamed over
// it) with mode 0600, creating the directory (0700) if needed.
func (c *Config) Save(path string) (err error) {
	out := *c
	if out.APIVersion == "" {
		out.APIVersion = ConfigAPIVersion
	}
	if out.Kind == "" {
		out.Kind = ConfigKind
	}
	b, err := yaml.Marshal(&out)
	if err != nil {
		return fmt.Errorf("client: encoding config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("client: saving config: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("client: saving config: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("client: saving config: %w", err)
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("client: saving config: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("client: saving config: %w", err)
	}
	return nil
}
