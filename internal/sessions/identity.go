package sessions

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heph-go/heph/internal/labels"
)

// Identity says which process made a session, as precisely as a pid can be
// pinned down: a pid means one process only on one host, in one pid
// namespace, during one boot.
type Identity struct {
	PID  int
	Host string // os.Hostname
	// PIDNS is the target of /proc/self/ns/pid ("pid:[4026531836]"); ""
	// where there is no such link (not Linux).
	PIDNS string
	// Boot is /proc/sys/kernel/random/boot_id; "" where there is none.
	Boot string
	// Run is the test run of heph's own tests (labels.EnvRun) the process
	// is part of; "" outside them.
	Run string
}

var self = sync.OnceValue(func() Identity {
	id := Identity{PID: os.Getpid(), Run: os.Getenv(labels.EnvRun)}
	id.Host, _ = os.Hostname()
	id.PIDNS, _ = os.Readlink("/proc/self/ns/pid")
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		id.Boot = strings.TrimSpace(string(b))
	}
	return id
})

// Self returns this process's identity (read once).
func Self() Identity { return self() }

// Labels returns the identity as heph's labels: heph.pid, heph.host,
// heph.pidns, heph.boot and heph.run (those known).
func (id Identity) Labels() map[string]string {
	l := map[string]string{labels.PID: strconv.Itoa(id.PID), labels.Host: id.Host}
	if id.PIDNS != "" {
		l[labels.PIDNS] = id.PIDNS
	}
	if id.Boot != "" {
		l[labels.Boot] = id.Boot
	}
	if id.Run != "" {
		l[labels.Run] = id.Run
	}
	return l
}

// judge says whether the process that made s still runs, seen from here,
// and why when it cannot say. alive judges a pid of this host, pid
// namespace and boot. A session is gone only when that is proved: its
// process was made here (same host, pid namespace and boot) and alive says
// gone (no such pid, a zombie, or a younger process with its pid).
func judge(s Session, here Identity, alive func(pid int, created time.Time) ProcessState) (ProcessState, string) {
	switch {
	case s.PID <= 0 || s.Host == "":
		return ProcessUnknown, "its resources carry no heph.pid or heph.host"
	case s.Host != here.Host:
		return ProcessUnknown, "it was made on host " + strconv.Quote(s.Host) + ", not on this one"
	case s.PIDNS == "" || s.Boot == "":
		return ProcessUnknown, "its resources carry no heph.pidns or heph.boot (an older heph made them): its pid cannot be pinned down"
	case here.PIDNS == "" || here.Boot == "":
		return ProcessUnknown, "this process cannot read its own pid namespace and boot id"
	case s.Boot != here.Boot:
		return ProcessUnknown, "it was made during another boot of this machine, or on another machine named " + strconv.Quote(s.Host)
	case s.PIDNS != here.PIDNS:
		return ProcessUnknown, "it was made in another pid namespace (" + s.PIDNS + "): its pid means another process here"
	case alive == nil:
		return ProcessUnknown, "no judge"
	}
	st := alive(s.PID, s.Created)
	if st == ProcessUnknown {
		return st, "its process could not be looked at"
	}
	return st, ""
}
