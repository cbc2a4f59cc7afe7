// Package port is heph's one container-port type and parser, shared by the
// builder, the Orchestrator, package wait and waittest, so that every layer
// accepts and refuses exactly the same strings.
//
// A port is written "<number>[/<protocol>]": a decimal number from 1 to
// 65535 without sign, spaces or leading zeros, and an optional protocol,
// tcp (the default), udp or sctp, in any case ("53/UDP" is "53/udp").
package port

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Port is a parsed container port. The zero value is not a valid port.
type Port struct {
	// Num is the port number, 1-65535.
	Num uint16
	// Proto is "tcp", "udp" or "sctp", lower case.
	Proto string
}

// String returns the canonical form, "8080/tcp".
func (p Port) String() string { return strconv.Itoa(int(p.Num)) + "/" + p.Proto }

// IsTCP reports whether p is a TCP port.
func (p Port) IsTCP() bool { return p.Proto == "tcp" }

// Rule says in words what Parse accepts, for messages.
const Rule = `want a number from 1 to 65535, optionally followed by /tcp, /udp or /sctp`

// ErrSyntax is matched (errors.Is) by every error Parse returns.
var ErrSyntax = errors.New("malformed port")

// syntaxError is a reason in words that matches ErrSyntax.
type syntaxError string

func (e syntaxError) Error() string        { return string(e) }
func (e syntaxError) Is(target error) bool { return target == ErrSyntax }

// Parse parses "8080", "8080/tcp", "53/udp" or "9/sctp" (protocol in any
// case). The error matches ErrSyntax and says why, without repeating the
// input or naming a field: callers put the option or field name in front.
func Parse(s string) (Port, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	switch proto {
	case "tcp", "udp", "sctp":
	case "":
		return Port{}, syntaxError("the protocol after / is empty: " + Rule)
	default:
		return Port{}, syntaxError(fmt.Sprintf("protocol %q is not tcp, udp or sctp", proto))
	}
	n, err := strconv.Atoi(num)
	if err != nil || strconv.Itoa(n) != num || n < 1 || n > 65535 {
		return Port{}, syntaxError(Rule)
	}
	return Port{Num: uint16(n), Proto: proto}, nil
}

// Normalize returns the canonical form of s ("8080" → "8080/tcp"), or
// Parse's error.
func Normalize(s string) (string, error) {
	p, err := Parse(s)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}
