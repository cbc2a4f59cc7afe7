package shared

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// EnvIdle is HEPH_SHARED_IDLE: how long a shared container is kept once its
// last holder ended — a Go duration ("30s", "10m"), or "keep" to keep it
// until `heph prune --shared` (the local dev loop). Unset: DefaultIdle.
const EnvIdle = "HEPH_SHARED_IDLE"

// DefaultIdle is the idle time when HEPH_SHARED_IDLE is unset: long enough
// for the next package of the same `go test ./...` to take the container
// over, short enough that a CI job leaves nothing behind.
const DefaultIdle = 15 * time.Second

// Idle is how long a shared container is kept after its last holder ended;
// Keep keeps it until it is pruned.
type Idle struct {
	D    time.Duration
	Keep bool
}

// String returns "30s" or "keep".
func (i Idle) String() string {
	if i.Keep {
		return "keep"
	}
	return i.D.String()
}

// ParseIdle reads an idle time: "" (DefaultIdle), "keep", or a Go duration
// of zero or more.
func ParseIdle(v string) (Idle, error) {
	switch s := strings.TrimSpace(v); strings.ToLower(s) {
	case "":
		return Idle{D: DefaultIdle}, nil
	case "keep":
		return Idle{Keep: true}, nil
	default:
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return Idle{}, fmt.Errorf("want a duration such as 15s or 10m, or keep")
		}
		return Idle{D: d}, nil
	}
}

// IdleFromEnv reads HEPH_SHARED_IDLE; the error says what is wrong with it
// (the caller names the variable).
func IdleFromEnv() (Idle, error) { return ParseIdle(os.Getenv(EnvIdle)) }

// MarshalJSON writes "keep" or the duration.
func (i Idle) MarshalJSON() ([]byte, error) { return json.Marshal(i.String()) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (i *Idle) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseIdle(s)
	if err != nil {
		return err
	}
	*i = v
	return nil
}
