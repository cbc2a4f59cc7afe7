package wait

import (
	"io"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// chunkReader returns data in pieces of the sizes given, cycling.
type chunkReader struct {
	data  string
	sizes []int
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), max(1, r.sizes[r.i%len(r.sizes)]))
	r.i++
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// referenceCount counts the matching lines of data the slow, obvious way.
func referenceCount(data string, match func(line string) bool) int {
	lines := strings.Split(data, "\n")
	if strings.HasSuffix(data, "\n") || data == "" {
		lines = lines[:len(lines)-1]
	}
	n := 0
	for _, l := range lines {
		if match(l) {
			n++
		}
	}
	return n
}

func checkCount(t *testing.T, data string, sizes []int) {
	t.Helper()
	const all = 1 << 30
	for _, sub := range []string{"ab", "a", "abcab", "needle"} {
		s := ForLog(sub).WithOccurrence(all)
		want := referenceCount(data, func(l string) bool { return strings.Contains(l, sub) })
		got, err := s.count(&chunkReader{data: data, sizes: sizes})
		if err != nil || got != want {
			t.Fatalf("ForLog(%q) over %q in chunks %v: got %d, %v; want %d", sub, data, sizes, got, err, want)
		}
	}
	for _, expr := range []string{`ab+c`, `^a`, `b$`, `(?i)AB`, `x*`, `n(ee)+dle`, `^$`} {
		s := ForLogRegexp(expr).WithOccurrence(all)
		re := regexp.MustCompile(expr)
		want := referenceCount(data, func(l string) bool { return re.MatchString(strings.TrimSuffix(l, "\r")) })
		got, err := s.count(&chunkReader{data: data, sizes: sizes})
		if err != nil || got != want {
			t.Fatalf("ForLogRegexp(%q) over %q in chunks %v: got %d, %v; want %d", expr, data, sizes, got, err, want)
		}
	}
}

// TestCountChunked compares the chunked line counting with a reference on
// random logs cut into random chunks: matches straddling chunks, lines
// longer than a chunk, CRLF, empty lines.
func TestCountChunked(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "c", "x", "\n", "\r\n", "ab", "abc", "needle", "nee", "dle"}
	for range 1000 {
		var b strings.Builder
		for range rng.IntN(60) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		sizes := make([]int, 1+rng.IntN(4))
		for i := range sizes {
			sizes[i] = 1 + rng.IntN(8)
		}
		checkCount(t, b.String(), sizes)
	}
}

func FuzzCount(f *testing.F) {
	f.Add("ab\nxab\r\nneedle", 3)
	f.Add("nee\ndle\nneedle\n\n", 1)
	f.Add("aaaaaaaaab", 2)
	f.Fuzz(func(t *testing.T, data string, size int) {
		checkCount(t, data, []int{1 + abs(size)%64})
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func TestRequiredLiteral(t *testing.T) {
	t.Parallel()
	tests := []struct{ expr, want, reason string }{
		{`^READY on port \d+$`, "READY on port ", "the literal of a concatenation"},
		{`(ready|done)`, "", "an alternation has no required literal"},
		{`(?i)ready`, "", "case folding"},
		{`x(abc)+y`, "abc", "inside a capture and a plus, longer than x"},
		{`a?bcd`, "bcd", "the optional a is not required"},
		{`(ab){2,3}`, "ab", "a repeat with min ≥ 1"},
		{`(ab){0,3}`, "", "a repeat with min 0"},
	}
	for _, tt := range tests {
		s := ForLogRegexp(tt.expr)
		if s.literal != tt.want {
			t.Errorf("%s: literal %q, want %q (%s)", tt.expr, s.literal, tt.want, tt.reason)
		}
	}
}
