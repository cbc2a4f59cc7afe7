package watchdog

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/heph-go/heph/internal/sessions"
)

// FuzzReadCommands reads any bytes as the parent's command lines: it never
// panics; every session id and resource id it returns is a valid id, the
// session ids are distinct; what it returns, written back as commands,
// reads the same; a garbage line never swallows the command on the next
// line; and every line it logs is one line (a quoted input line cannot
// forge another). Seeds: testdata/fuzz/FuzzReadCommands.
func FuzzReadCommands(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		var logged []string
		logf := func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
		ids, keep, err := ReadCommands(strings.NewReader(string(in)), logf)
		for _, l := range logged {
			if strings.ContainsAny(l, "\r\n") {
				t.Fatalf("a logged line holds a line break: %q", l)
			}
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if !sessions.ValidID(id) || seen[id] {
				t.Fatalf("session ids %q: %q is invalid or repeated", ids, id)
			}
			seen[id] = true
		}
		for id := range keep {
			if !sessions.ValidID(id) {
				t.Fatalf("keep %q: invalid", id)
			}
		}

		var back strings.Builder
		for _, id := range ids {
			back.WriteString("session " + id + "\n")
		}
		for id := range keep {
			back.WriteString("keep " + id + "\n")
		}
		ids2, keep2, err2 := ReadCommands(strings.NewReader(back.String()), func(string, ...any) {})
		if err2 != nil || !slices.Equal(ids, ids2) || len(keep) != len(keep2) {
			t.Fatalf("written back, %q reads as %q, %v (%v)", ids, ids2, keep2, err2)
		}

		if err != nil {
			return // an overlong line ends the reading: nothing after it counts
		}
		const tail = "fuzz-tail-id"
		ids3, _, err := ReadCommands(strings.NewReader(string(in)+"\nsession "+tail+"\n"), func(string, ...any) {})
		if err != nil || len(ids3) == 0 || ids3[len(ids3)-1] != tail && !seen[tail] {
			t.Fatalf("a command after %q was lost: %q, %v", in, ids3, err)
		}
	})
}
