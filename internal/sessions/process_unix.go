//go:build unix

package sessions

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processState judges whether pid, on this host, is still the process that
// created a session at created: it must exist, and on Linux it must not be a
// zombie nor have started after created (its pid would have been reused).
func processState(pid int, created time.Time) ProcessState {
	if pid <= 0 {
		return ProcessUnknown
	}
	err := syscall.Kill(pid, 0)
	switch {
	case errors.Is(err, syscall.ESRCH):
		return ProcessGone
	case err != nil && !errors.Is(err, syscall.EPERM):
		return ProcessUnknown
	}
	state, started, ok := procStat(pid)
	if !ok {
		return ProcessAlive // not Linux, or /proc is not readable: it exists
	}
	if state == "Z" || state == "X" {
		return ProcessGone
	}
	// heph.created has whole seconds: allow for the truncation.
	if !created.IsZero() && !started.IsZero() && started.After(created.Add(2*time.Second)) {
		return ProcessGone
	}
	return ProcessAlive
}

// procStat reads a process's state and start time from /proc (Linux).
func procStat(pid int) (state string, started time.Time, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", time.Time{}, false
	}
	// pid (comm) state ppid … field 22 is starttime in clock ticks since boot;
	// comm may hold spaces and parentheses, so split after the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return "", time.Time{}, false
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return "", time.Time{}, false
	}
	state = fields[0]
	ticks, err := strconv.ParseInt(fields[19], 10, 64)
	boot, berr := bootTime()
	if err != nil || berr != nil {
		return state, time.Time{}, true
	}
	const userHZ = 100 // USER_HZ, the unit of /proc times on Linux
	return state, boot.Add(time.Duration(ticks) * time.Second / userHZ), true
}

// bootTime is the btime line of /proc/stat.
func bootTime() (time.Time, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(secs, 0), nil
		}
	}
	return time.Time{}, errors.New("no btime in /proc/stat")
}
