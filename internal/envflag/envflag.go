// Package envflag reads heph's on/off environment variables, so that every
// one of them accepts the same words.
package envflag

import (
	"fmt"
	"os"
	"strings"

	"github.com/heph-go/heph/internal/errs"
)

// Words lists what Bool accepts, for messages.
const Words = "1, true, yes or on; 0, false, no or off"

// Bool parses an on/off value: "1", "true", "yes", "on" are true; "0",
// "false", "no", "off" are false; case and surrounding spaces do not matter.
// An empty value gives def. Anything else is an error naming name and the
// value.
func Bool(name, value string, def bool) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "":
		return def, nil
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return def, fmt.Errorf("%s=%q: want %s", name, value, Words)
}

// IsOff reports whether value is one of Bool's false words.
func IsOff(value string) bool {
	v, err := Bool("", value, true)
	return err == nil && !v
}

// Get reads the on/off variable name from the environment (def when unset);
// a value Bool refuses is an errs.InvalidError naming the variable.
func Get(name string, def bool) (bool, error) {
	v := os.Getenv(name)
	on, err := Bool(name, v, def)
	if err != nil {
		return def, errs.Invalid(name, v, "want "+Words)
	}
	return on, nil
}

// Keep reads HEPH_KEEP-like variable name: "failed" or "always", else ""
// for never (unset, "never" or one of Bool's false words); anything else is
// an errs.InvalidError.
func Keep(name string) (string, error) {
	v := os.Getenv(name)
	switch mode := strings.ToLower(strings.TrimSpace(v)); {
	case mode == "failed" || mode == "always":
		return mode, nil
	case mode == "never" || IsOff(mode) || mode == "":
		return "", nil
	}
	return "", errs.Invalid(name, v, "want failed, always or never")
}
