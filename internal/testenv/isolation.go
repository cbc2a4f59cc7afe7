package testenv

import "time"

// IsolationTries bounds the connection attempts Isolated makes.
const IsolationTries = 10

// Isolated reports whether a container is cut off from another test's:
// whether dial (one connection attempt from one to the other, true when it
// got through) is blocked at least once in IsolationTries attempts, 100 ms
// apart. It also returns how many got through.
//
// Docker isolates bridge networks with iptables rules, but every network
// create on the daemon (other tests and packages make them all the time)
// deletes and re-inserts the FORWARD jump to its isolation chain
// (libnetwork's ensureJumpRule): a SYN sent in that window passes, and
// conntrack keeps the connection. Under a suite's churn of creates the
// window is open much of the time (2 attempts of 3 got through once on a
// loaded 2-core machine), so a count of attempts that got through says
// little; a real breach — two tests on one network, a route between them
// — gets through every time, and one blocked attempt shows the rule holds.
func Isolated(dial func() bool) (blocked bool, reached int) {
	for i := range IsolationTries {
		if !dial() {
			return true, reached
		}
		reached++
		if i < IsolationTries-1 {
			time.Sleep(100 * time.Millisecond) // another moment of the daemon's churn
		}
	}
	return false, reached
}
