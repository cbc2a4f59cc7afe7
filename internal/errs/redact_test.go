package errs

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every heph error masks secrets (redact.String): a daemon's message may
// quote a command line, a refused value may hold a password.
func TestErrorsMaskSecrets(t *testing.T) {
	err := Op("start container", "heph-db-1", ContainerNotFound, errors.New(`exec: "mysql -psecret1": not found; PGPASSWORD=secret2`))
	require.EqualError(t, err, `heph: start container "heph-db-1": exec: "mysql -p[redacted]": not found; PGPASSWORD=[redacted]`)
	require.ErrorIs(t, err, ContainerNotFound)
	require.EqualError(t, Invalid("Cmd", "--password=secret3", "is refused"), `heph: invalid configuration: Cmd "--password=[redacted]": is refused`)
}
