// Command credhelper is a docker credential helper for heph's integration
// tests (testenv.CredentialHelper installs it as docker-credential-<name>):
// it serves the helper protocol with docker-credential-helpers' own server
// side, from store.json next to it (server URL → [user, secret]), and
// appends every server URL it is asked for to asked.log there.
package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"

	"github.com/docker/docker-credential-helpers/credentials"
)

type store struct{ dir string }

func (s store) Add(*credentials.Credentials) error { return errors.New("read-only") }
func (s store) Delete(string) error                { return errors.New("read-only") }

func (s store) Get(serverURL string) (string, string, error) {
	if f, err := os.OpenFile(filepath.Join(s.dir, "asked.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		_, _ = f.WriteString(serverURL + "\n")
		_ = f.Close()
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "store.json"))
	if err != nil {
		return "", "", err
	}
	var m map[string][2]string
	if err := json.Unmarshal(b, &m); err != nil {
		return "", "", err
	}
	c, ok := m[serverURL]
	if !ok {
		return "", "", credentials.NewErrCredentialsNotFound()
	}
	return c[0], c[1], nil
}

func (s store) List() (map[string]string, error) { return nil, errors.New("not needed") }

func main() {
	credentials.Serve(store{dir: filepath.Dir(os.Args[0])})
}
