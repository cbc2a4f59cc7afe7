// Package redact is heph's one rule for what it never prints: the values of
// environment variables whose names look secret, passwords given on a
// command line, and the password of a URL. Every error and log line heph
// writes about a command line, an environment or a container's output goes
// through it. It imports nothing but the standard library, so that every
// layer (package wait included) can use it.
//
// The rule, for a word (a command-line argument, or a whitespace-separated
// part of a text):
//
//   - KEY=value where KEY looks secret (SecretKey): the value is masked —
//     PGPASSWORD=… in front of a command, an env list, a log line;
//   - -p<value> (mysql's -psecret): the value is masked — in a command line
//     (Args) always, in a text (String) after a word naming a MySQL program
//     (mysql, mysqladmin, mariadb, …), so that prose such as "go test
//     -parallel" stays readable; after -password or -passwd alone, the next
//     word is masked too;
//   - --<name>=<value> or -<name>=<value> where name looks secret
//     (--password=…, --api-key=…): the value is masked; --<name> <value>
//     (two words): the next word is masked;
//   - scheme://user:password@host: the password is masked, wherever it
//     is in the word (postgres://app:…@db:5432/app, DSN=mysql://…);
//   - <name>: followed by a word, where name looks secret ("password: x"
//     in a log line): the next word is masked.
//
// Secrets adds values known to be secret (those of an environment's secret
// keys): they are masked wherever they appear.
package redact

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"
)

// Mask replaces every secret.
const Mask = "[redacted]"

// secretWords are the words of an environment key (split at '_', '-', '.'
// and case changes) that make it secret wherever they appear in the word.
var secretWords = []string{"password", "passwd", "secret", "token", "credential", "apikey", "privatekey"}

// SecretKey reports whether an environment variable (or flag) name looks
// secret, case-insensitively: one of its words (split at '_', '-', '.' and
// lower-to-upper case changes) contains PASSWORD, PASSWD, SECRET, TOKEN or
// CREDENTIAL, is KEY or ends with KEY (SSH_KEY, APIKEY, AWS_ACCESS_KEY_ID,
// apiKey — but not KEYBOARD or KEYSPACE), or is PASS or PWD (DB_PASS,
// MYSQL_PWD — but not PWD and OLDPWD themselves, the working directories).
// AUTH words count too (BASIC_AUTH, AUTHORIZATION).
func SecretKey(key string) bool {
	switch strings.ToUpper(key) {
	case "", "PWD", "OLDPWD":
		return false
	}
	for _, w := range words(key) {
		switch {
		case w == "key" || strings.HasSuffix(w, "key"):
			return true
		case w == "pass" || w == "pwd" || w == "auth" || strings.HasPrefix(w, "authoriz"):
			return true
		}
		for _, s := range secretWords {
			if strings.Contains(w, s) {
				return true
			}
		}
	}
	return false
}

// words splits a key at '_', '-', '.', other punctuation and at each
// lower-to-upper case change, lower-cased.
func words(key string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			out = append(out, strings.ToLower(b.String()))
			b.Reset()
		}
	}
	prevLower := false
	for _, r := range key {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if unicode.IsUpper(r) && prevLower {
				flush()
			}
			b.WriteRune(r)
			prevLower = unicode.IsLower(r) || unicode.IsDigit(r)
		default:
			flush()
			prevLower = false
		}
	}
	flush()
	return out
}

// userinfo finds the password of a URL: scheme://user:password@.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*):([^/@\s]*)@`)

// flag is a flag with a name: -name, --name, -name=value, --name=value.
var flag = regexp.MustCompile(`^(--?([A-Za-z][A-Za-z0-9_.-]*))(=(.*))?$`)

// assignment is KEY=value.
var assignment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$`)

// identifier is a name before ":" ("password:").
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// mysqlish reports whether a word names a program of the MySQL family,
// whose -p<value> is a password: mysql, mysqladmin, /usr/bin/mysqldump,
// mariadb-admin, ForExec("mysql", …
func mysqlish(w string) bool {
	w = strings.ToLower(w)
	return strings.Contains(w, "mysql") || strings.Contains(w, "mariadb")
}

// word masks the secrets of one word; next reports that the word is a
// secret flag (or "password:") without its value: the next word is the
// value. pflag says whether -p<value> is a password here.
func word(w string, pflag bool) (masked string, next bool) {
	if strings.Contains(w, "://") {
		w = userinfo.ReplaceAllString(w, "$1:"+Mask+"@")
	}
	m := flag.FindStringSubmatch(w)
	switch {
	case pflag && len(w) > 2 && w[0] == '-' && w[1] == 'p' && !strings.HasPrefix(w[2:], Mask):
		// mysql's -psecret (and, alas, -port=1). A Go-style -password
		// or -passwd flag takes the next word as its value.
		name := strings.ToLower(w[1:])
		return "-p" + Mask, m != nil && m[3] == "" && (strings.HasPrefix(name, "pass") || strings.HasPrefix(name, "pwd"))
	case m != nil && SecretKey(m[2]) && m[3] == "":
		return w, true
	case m != nil && SecretKey(m[2]):
		return m[1] + "=" + Mask, false
	}
	if m != nil {
		if m[3] != "" { // --env=DB_PASSWORD=x
			v, _ := word(m[4], pflag)
			return m[1] + "=" + v, false
		}
		return w, false
	}
	if m := assignment.FindStringSubmatch(w); m != nil && SecretKey(m[1]) && m[2] != "" {
		return m[1] + "=" + Mask, false
	}
	if k, ok := strings.CutSuffix(w, ":"); ok && identifier.MatchString(k) && SecretKey(k) {
		return w, true // password: secret
	}
	return w, false
}

// Args returns a copy of a command line (argv) with its secrets masked: each
// argument as a word, and an argument holding whitespace (a script for
// sh -c) as a text (String).
func Args(argv []string) []string {
	if argv == nil {
		return nil
	}
	out := make([]string, len(argv))
	next := false
	for i, a := range argv {
		switch {
		case next:
			// The value of a secret flag; if it is a secret flag itself
			// (--token --password x), its own value follows.
			out[i] = Mask
			_, next = word(a, true)
		case strings.ContainsFunc(a, unicode.IsSpace):
			out[i] = String(a)
		default:
			out[i], next = word(a, true)
		}
	}
	return out
}

// String returns text with the secrets of each of its whitespace-separated
// words masked (see the package doc); the whitespace is kept, and so are
// quotes around a word. A value that follows a secret flag and starts with
// a quote is masked up to the word that closes the quote.
func String(text string) string {
	if text == "" {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	next := false
	quote := byte(0) // masking a quoted value up to this closing quote
	pflag := false   // a MySQL program was named: -p<value> is a password
	for i := 0; i < len(text); {
		j := i
		for j < len(text) && !isSpace(text[j]) {
			j++
		}
		if j == i { // whitespace
			b.WriteByte(text[i])
			i++
			continue
		}
		w := text[i:j]
		switch {
		case quote != 0:
			if w[len(w)-1] == quote {
				quote = 0
			}
		case next:
			b.WriteString(Mask)
			_, next = word(w, pflag)
			if q := w[0]; (q == '\'' || q == '"') && (len(w) == 1 || w[len(w)-1] != q) {
				quote, next = q, false
			}
		default:
			// Quotes around a word are the text's, not the word's
			// ("mysql -psecret" quoted in a message).
			lead, trail := "", ""
			if isQuote(w[0]) {
				lead, w = w[:1], w[1:]
			}
			if n := len(w); n > 0 && isQuote(w[n-1]) {
				w, trail = w[:n-1], w[n-1:]
			} else if n > 1 && isQuote(w[n-2]) && strings.IndexByte(":,;)", w[n-1]) >= 0 {
				w, trail = w[:n-2], w[n-2:] // "-psecret": or "-psecret",
			}
			m, n := word(w, pflag)
			b.WriteString(lead + m + trail)
			next = n
		}
		pflag = pflag || mysqlish(w)
		i = j
	}
	return b.String()
}

func isQuote(c byte) bool { return c == '"' || c == '\'' }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// MinKnown is the length below which a known secret value is not searched
// for in free text: masking every "app" or "1" of a log would garble it.
// Such values are still masked where the rules above find them.
const MinKnown = 4

// Secrets are values known to be secret; the zero value knows none. It is
// safe for concurrent use once made.
type Secrets struct {
	values []string // the longest first
	r      *strings.Replacer
}

// Known returns the values given, but those shorter than MinKnown.
func Known(values ...string) Secrets {
	var keep []string
	for _, v := range values {
		if len(v) >= MinKnown && !slices.Contains(keep, v) {
			keep = append(keep, v)
		}
	}
	if len(keep) == 0 {
		return Secrets{}
	}
	// The longest first: a value that holds another is masked whole.
	sort.Slice(keep, func(i, j int) bool {
		if len(keep[i]) != len(keep[j]) {
			return len(keep[i]) > len(keep[j])
		}
		return keep[i] < keep[j]
	})
	pairs := make([]string, 0, 2*len(keep))
	for _, v := range keep {
		pairs = append(pairs, v, Mask)
	}
	return Secrets{values: keep, r: strings.NewReplacer(pairs...)}
}

// And returns the values of s and o.
func (s Secrets) And(o Secrets) Secrets {
	return Known(append(slices.Clone(s.values), o.values...)...)
}

// EnvSecrets returns the values of env's secret keys (SecretKey) of at least
// MinKnown bytes.
func EnvSecrets(env map[string]string) Secrets {
	var values []string
	for k, v := range env {
		if SecretKey(k) {
			values = append(values, v)
		}
	}
	return Known(values...)
}

// ArgSecrets returns the values the rule masks in a command line (Args) of
// at least MinKnown bytes, so that they are masked too where the command's
// own output quotes them.
func ArgSecrets(argv []string) Secrets {
	var values []string
	for i, m := range Args(argv) {
		if m == argv[i] {
			continue
		}
		parts := strings.Split(m, Mask)
		for j, p := range parts {
			parts[j] = regexp.QuoteMeta(p)
		}
		re, err := regexp.Compile("^" + strings.Join(parts, "(.*?)") + "$")
		if err != nil {
			continue
		}
		if sub := re.FindStringSubmatch(argv[i]); sub != nil {
			values = append(values, sub[1:]...)
		}
	}
	return Known(values...)
}

// String returns text with the rule applied (the package function String)
// and every known value masked.
func (s Secrets) String(text string) string {
	text = String(text)
	if s.r != nil {
		text = s.r.Replace(text)
	}
	return text
}

// Error returns err with its message masked by s (nil stays nil): the
// returned error's Error is s.String(err.Error()), and it unwraps to err, so
// errors.Is and errors.As see what err holds.
func (s Secrets) Error(err error) error {
	if err == nil {
		return nil
	}
	return &redacted{msg: s.String(err.Error()), err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
