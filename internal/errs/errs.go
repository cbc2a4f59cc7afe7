// Package errs holds heph's sentinel errors and the two error shapes every
// layer uses: an operation on a subject that failed (Op), and a value that
// was refused before any Docker call (Invalid). Package heph re-exports the
// sentinels, so errors.Is works the same from every layer.
package errs

//lint:file-ignore ST1012 the package name says what they are: errs.ContainerNotFound, re-exported as heph.ErrContainerNotFound

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels; package heph documents them (heph.ErrDockerUnavailable, …).
var (
	DockerUnavailable    = errors.New("heph: Docker daemon unavailable")
	ImageNotFound        = errors.New("heph: image not found")
	ContainerNotFound    = errors.New("heph: container not found")
	NetworkNotFound      = errors.New("heph: network not found")
	InvalidConfig        = errors.New("heph: invalid configuration")
	NetworkPoolExhausted = errors.New("heph: Docker network address pools exhausted")
	Watchdog             = errors.New("heph: the watchdog could not be started")
	RegistryAuth         = errors.New("heph: the registry refused the credentials")
)

// OpError is a failed operation on a subject: "heph: start container
// "heph-db-1a2b3c4d": <cause>". It unwraps to the cause and, when set, a
// sentinel, so errors.Is sees both.
type OpError struct {
	Op       string // "start container"
	Subject  string // "heph-db-1a2b3c4d"; may be empty
	Sentinel error  // may be nil
	Err      error
}

// Error returns "heph: <op> "<subject>": <cause>", with one "heph: " prefix
// however deep the cause's own errors nest (see Strip).
func (e *OpError) Error() string {
	cause := Strip(e.Err.Error())
	if e.Subject == "" {
		return fmt.Sprintf("heph: %s: %s", e.Op, cause)
	}
	return fmt.Sprintf("heph: %s %q: %s", e.Op, e.Subject, cause)
}

// Unwrap returns the cause and, when set, the sentinel.
func (e *OpError) Unwrap() []error {
	if e.Sentinel == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Sentinel}
}

// Op wraps a non-nil err as an *OpError; nil stays nil.
func Op(op, subject string, sentinel, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, Subject: subject, Sentinel: sentinel, Err: err}
}

// InvalidError is a value refused before any Docker call: "heph: invalid
// configuration: <what> <value>: <reason>".
type InvalidError struct {
	What   string // a field ("Env key"), an option ("WithEnv"), a variable
	Value  string // already quoted or formatted
	Reason string
	// Err, when set, is the error that says why (a strategy's own
	// validation error): it is printed after the reason and matches with
	// errors.Is.
	Err error
}

func (e *InvalidError) Error() string {
	why := e.Reason
	if e.Err != nil {
		why = strings.TrimPrefix(why+": ", ": ") + e.Err.Error()
	}
	if e.Value == "" {
		return fmt.Sprintf("%s: %s: %s", InvalidConfig.Error(), e.What, why)
	}
	return fmt.Sprintf("%s: %s %s: %s", InvalidConfig.Error(), e.What, e.Value, why)
}

// Unwrap returns InvalidConfig and, when set, Err.
func (e *InvalidError) Unwrap() []error {
	if e.Err == nil {
		return []error{InvalidConfig}
	}
	return []error{InvalidConfig, e.Err}
}

// Invalid refuses value of field (or option, or variable) for reason. A
// string value is quoted; a value that looks secret should be redacted by
// the caller before it comes here.
func Invalid(what string, value any, reason string) error {
	return &InvalidError{What: what, Value: Quote(value), Reason: reason}
}

// Option refuses the argument of a builder option: "WithEnv("K"): reason".
func Option(option string, value any, reason string) error {
	return &InvalidError{What: option + "(" + Quote(value) + ")", Reason: reason}
}

// Quote formats a value for a message: strings quoted, the rest with %v.
func Quote(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%v", v)
}

// Strip removes the leading "heph: " of a message (repeated ones too), and
// every "heph: " that starts a part of it after ": " — a heph error that
// was wrapped with fmt.Errorf("…: %w") on its way up — so a wrapped cause
// does not stutter. Lines after the first (errors.Join) keep theirs: each
// is a message of its own.
func Strip(msg string) string {
	first, rest, joined := strings.Cut(msg, "\n")
	for {
		f, ok := strings.CutPrefix(first, "heph: ")
		if !ok {
			break
		}
		first = f
	}
	for strings.Contains(first, ": heph: ") {
		first = strings.ReplaceAll(first, ": heph: ", ": ")
	}
	if joined {
		return first + "\n" + rest
	}
	return first
}
