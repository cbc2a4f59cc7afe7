package daemon

import (
	"os"
	"strings"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
)

// Settings is heph.Daemon's data: how to reach a daemon, given in code (see
// heph.Daemon for each field).
type Settings struct {
	Host                      string
	TLS, TLSVerify            bool
	CAFile, CertFile, KeyFile string
	APIVersion                string
}

// Endpoint checks d, each problem an errs.InvalidError naming the field as
// Daemon.<Field>, and turns it into an endpoint.
func (d Settings) Endpoint() (engine.Endpoint, error) {
	if strings.TrimSpace(d.Host) == "" {
		return engine.Endpoint{}, errs.Invalid("Daemon.Host", d.Host, "is empty: name the daemon (unix:///var/run/docker.sock), or call NewOrchestrator() to find it from the environment")
	}
	host, err := NormalizeHost(d.Host, d.TLS || d.TLSVerify)
	if err != nil {
		return engine.Endpoint{}, errs.Invalid("Daemon.Host", d.Host, err.Error())
	}
	if d.APIVersion != "" {
		if _, err := ParseAPIVersion(d.APIVersion); err != nil {
			return engine.Endpoint{}, errs.Invalid("Daemon.APIVersion", d.APIVersion, err.Error())
		}
	}
	switch {
	case d.CertFile != "" && d.KeyFile == "":
		return engine.Endpoint{}, errs.Invalid("Daemon.KeyFile", d.KeyFile, "is empty while CertFile is set")
	case d.KeyFile != "" && d.CertFile == "":
		return engine.Endpoint{}, errs.Invalid("Daemon.CertFile", d.CertFile, "is empty while KeyFile is set")
	}
	for _, f := range []struct{ field, path string }{{"Daemon.CAFile", d.CAFile}, {"Daemon.CertFile", d.CertFile}, {"Daemon.KeyFile", d.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return engine.Endpoint{}, errs.Invalid(f.field, f.path, err.Error())
		}
	}
	return engine.Endpoint{
		Host: host, Source: "heph.Daemon", TLS: d.TLS || d.TLSVerify, TLSVerify: d.TLSVerify,
		CAFile: d.CAFile, CertFile: d.CertFile, KeyFile: d.KeyFile, APIVersion: d.APIVersion,
	}, nil
}
