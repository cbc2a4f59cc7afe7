package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Helper is a docker credential helper installed for a test.
type Helper struct {
	// Dir holds docker-credential-<name>: put it on PATH.
	Dir string
}

var helperBuild struct {
	once sync.Once
	path string
	err  error
}

// CredentialHelper installs docker-credential-<name> in a new directory: a
// real helper program (internal/testenv/credhelper, built with go build once
// per test process) that answers `get` from creds (server URL → user,
// secret) and says "credentials not found" for any other.
func CredentialHelper(t testing.TB, name string, creds map[string][2]string) *Helper {
	t.Helper()
	helperBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "heph-credhelper-")
		if err != nil {
			helperBuild.err = err
			return
		}
		helperBuild.path = filepath.Join(dir, "credhelper")
		cmd := exec.Command("go", "build", "-o", helperBuild.path, "github.com/heph-go/heph/internal/testenv/credhelper")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperBuild.err = fmt.Errorf("go build the credential helper: %v\n%s", err, out)
		}
	})
	if helperBuild.err != nil {
		t.Fatalf("%v", helperBuild.err)
	}
	h := &Helper{Dir: t.TempDir()}
	bin, err := os.ReadFile(helperBuild.path)
	if err == nil {
		err = os.WriteFile(filepath.Join(h.Dir, "docker-credential-"+name), bin, 0o755)
	}
	if err == nil {
		var store []byte
		store, _ = json.Marshal(creds)
		err = os.WriteFile(filepath.Join(h.Dir, "store.json"), store, 0o600)
	}
	if err != nil {
		t.Fatalf("install the credential helper: %v", err)
	}
	return h
}

// Asked returns the server URLs the helper was asked for, in order.
func (h *Helper) Asked() []string {
	b, err := os.ReadFile(filepath.Join(h.Dir, "asked.log"))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}
