package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/sessions"
)

// sessionView is a sessions.Session as heph ps and prune show it; its JSON is
// the --json output.
type sessionView struct {
	Session    string         `json:"session"`
	Tests      []string       `json:"tests"`
	PID        int            `json:"pid,omitempty"`
	Host       string         `json:"host,omitempty"`
	Process    string         `json:"process"`               // alive, gone, unknown
	Created    time.Time      `json:"created,omitzero"`      // absent when unknown
	AgeSeconds *int64         `json:"age_seconds,omitempty"` // absent when unknown
	Resources  []resourceView `json:"resources"`

	local bool // Host is this host
}

type resourceView struct {
	Kind    string    `json:"kind"`
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Test    string    `json:"test,omitempty"`
	State   string    `json:"state,omitempty"`
	Created time.Time `json:"created,omitzero"`
}

// psReport is what heph ps prints.
type psReport struct {
	Daemon   string        `json:"daemon"`
	Sessions []sessionView `json:"sessions"`
	Images   []imageView   `json:"images"`           // the images heph built
	Shared   []sharedView  `json:"shared,omitempty"` // shared containers (shared.go)
}

// pruneReport is what heph prune prints.
type pruneReport struct {
	Daemon   string        `json:"daemon"`
	DryRun   bool          `json:"dry_run"`
	Sessions []sessionView `json:"sessions"` // with what was (or would be) removed
	// Images are the images heph built that were (or would be) removed
	// (--images); KeptImages those left because a container uses them.
	Images     []imageView `json:"images"`
	KeptImages []imageView `json:"kept_images"`
	// Kept are the selected sessions left in place: their process is not
	// proved gone, and --force was not given.
	Kept   []keptView `json:"kept_sessions"`
	Errors []string   `json:"errors"`

	images bool // --images was given

	// Shared are the shared containers removed (or that would be), with
	// --shared; KeptShared those a live process holds (shared.go).
	Shared     []sharedView `json:"shared,omitempty"`
	KeptShared []sharedView `json:"kept_shared,omitempty"`
	shared     bool         // --shared was given
	onlyShared bool         // and nothing else
}

// keptView is a selected session prune left in place.
type keptView struct {
	Session string `json:"session"`
	Process string `json:"process"` // alive or unknown
	Reason  string `json:"reason"`
}

// views turns sessions into views at time now; thisHost marks local ones.
func views(sessions []sessions.Session, now time.Time, thisHost string) []sessionView {
	out := make([]sessionView, 0, len(sessions))
	for _, s := range sessions {
		v := sessionView{
			Session: s.ID, Tests: s.Tests, PID: s.PID, Host: s.Host, Process: string(s.Process),
			Created: s.Created, local: s.Host == thisHost,
			Resources: make([]resourceView, 0, len(s.Resources)),
		}
		if v.Tests == nil {
			v.Tests = []string{}
		}
		if !s.Created.IsZero() {
			a := int64(now.Sub(s.Created).Seconds())
			v.AgeSeconds = &a
		}
		for _, r := range s.Resources {
			v.Resources = append(v.Resources, resourceView{Kind: string(r.Kind), ID: r.ID, Name: r.Name, Test: r.Test, State: r.State, Created: r.Created})
		}
		out = append(out, v)
	}
	return out
}

// age formats a duration as ps does: 45s, 12m, 5h, 3d.
func age(seconds int64, known bool) string {
	switch {
	case !known:
		return "?"
	case seconds < 0:
		return "0s"
	case seconds < 60:
		return fmt.Sprintf("%ds", seconds)
	case seconds < 3600:
		return fmt.Sprintf("%dm", seconds/60)
	case seconds < 48*3600:
		return fmt.Sprintf("%dh", seconds/3600)
	default:
		return fmt.Sprintf("%dd", seconds/86400)
	}
}

func ageOf(v sessionView) string {
	if v.AgeSeconds == nil {
		return age(0, false)
	}
	return age(*v.AgeSeconds, true)
}

func alive(v sessionView) string {
	switch sessions.ProcessState(v.Process) {
	case sessions.ProcessAlive:
		return "yes"
	case sessions.ProcessGone:
		return "no"
	default:
		return "?"
	}
}

func owner(v sessionView) string {
	switch {
	case v.PID == 0:
		return "-"
	case v.local || v.Host == "":
		return fmt.Sprint(v.PID)
	default:
		return fmt.Sprintf("%d@%s", v.PID, v.Host)
	}
}

// shortID is the first 8 characters of a session id, as ps shows it.
func shortID(id string) string {
	if id == "" {
		return "(none)"
	}
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// ellipsis cuts s to n runes.
func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// writeTable writes sessions as aligned columns, one row per resource, the
// session's columns on its first row only.
func writeTable(w io.Writer, sessions []sessionView) {
	var buf bytes.Buffer
	defer func() { writeTrimmed(w, buf.Bytes()) }()
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tTEST\tPID\tALIVE\tAGE\tKIND\tNAME\tSTATE")
	for _, s := range sessions {
		test := strings.Join(s.Tests, ",")
		if test == "" {
			test = "-"
		}
		head := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", shortID(s.Session), ellipsis(test, 28), owner(s), alive(s), ageOf(s))
		if len(s.Resources) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t\n", head)
		}
		for i, r := range s.Resources {
			if i > 0 {
				head = "\t\t\t\t"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", head, r.Kind, r.Name, r.State)
		}
	}
	_ = tw.Flush()
}

// writeTrimmed writes text without the spaces tabwriter leaves at the end
// of lines whose last cells are empty.
func writeTrimmed(w io.Writer, text []byte) {
	lines := bytes.SplitAfter(text, []byte("\n"))
	for _, l := range lines {
		nl := bytes.HasSuffix(l, []byte("\n"))
		l = bytes.TrimRight(l, " \n")
		if nl {
			l = append(l, '\n')
		}
		_, _ = w.Write(l)
	}
}

// counts says "3 containers, 1 network, 0 volumes".
func counts(sessions []sessionView) string {
	n := map[string]int{}
	for _, s := range sessions {
		for _, r := range s.Resources {
			n[r.Kind]++
		}
	}
	return fmt.Sprintf("%s, %s, %s", plural(n["container"], "container"), plural(n["network"], "network"), plural(n["volume"], "volume"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// writePs is heph ps's text output.
func writePs(w io.Writer, r psReport) {
	defer writePsShared(w, r.Shared)
	writePsSessions(w, r)
	if len(r.Images) == 0 {
		return
	}
	fmt.Fprintln(w)
	writeImages(w, r.Images)
	fmt.Fprintf(w, "\n%s built by heph (%s): heph prune --images removes those no container uses\n", plural(len(r.Images), "image"), megabytes(totalSize(r.Images)))
}

func writePsSessions(w io.Writer, r psReport) {
	if len(r.Sessions) == 0 {
		fmt.Fprintf(w, "no heph containers, networks or volumes on %s\n", r.Daemon)
		return
	}
	writeTable(w, r.Sessions)
	stale := 0
	for _, s := range r.Sessions {
		if sessions.ProcessState(s.Process) == sessions.ProcessGone {
			stale++
		}
	}
	fmt.Fprintf(w, "\n%s on %s: %s\n", plural(len(r.Sessions), "session"), r.Daemon, counts(r.Sessions))
	switch stale {
	case 0:
	case 1:
		fmt.Fprintln(w, "1 session is stale (its process is gone): heph prune --stale removes it")
	default:
		fmt.Fprintf(w, "%d sessions are stale (their processes are gone): heph prune --stale removes them\n", stale)
	}
}

// writePrune is heph prune's text output.
func writePrune(w io.Writer, r pruneReport) {
	if r.shared {
		if r.onlyShared {
			writePruneShared(w, r)
			return
		}
		defer func() { fmt.Fprintln(w); writePruneShared(w, r) }()
	}
	verb := "removed"
	if r.DryRun {
		verb = "would remove (dry run, nothing removed)"
	}
	said := true
	switch {
	case len(r.Sessions) == 0 && len(r.Images) == 0 && len(r.Errors) == 0:
		fmt.Fprintf(w, "nothing to remove on %s\n", r.Daemon)
	case len(r.Sessions) > 0 || !r.images:
		if len(r.Sessions) > 0 {
			writeTable(w, r.Sessions)
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: %s of %s on %s\n", verb, counts(r.Sessions), plural(len(r.Sessions), "session"), r.Daemon)
	default:
		said = false
	}
	if len(r.Images) > 0 {
		if said {
			fmt.Fprintln(w)
		}
		writeImages(w, r.Images)
		fmt.Fprintf(w, "\n%s: %s built by heph (%s) on %s\n", verb, plural(len(r.Images), "image"), megabytes(totalSize(r.Images)), r.Daemon)
	}
	if len(r.KeptImages) > 0 {
		names := make([]string, 0, len(r.KeptImages))
		for _, v := range r.KeptImages {
			names = append(names, imageName(v))
		}
		fmt.Fprintf(w, "kept %s a container uses: %s\n", plural(len(r.KeptImages), "image"), strings.Join(names, ", "))
	}
	writeKept(w, r.Kept)
}

// writeKept says which selected sessions prune left, and why.
func writeKept(w io.Writer, kept []keptView) {
	if len(kept) == 0 {
		return
	}
	it := "them"
	if len(kept) == 1 {
		it = "it"
	}
	fmt.Fprintf(w, "left in place: %s whose process is not proved gone (--force removes %s anyway):\n", plural(len(kept), "session"), it)
	for _, k := range kept {
		fmt.Fprintf(w, "  %s  %s\n", shortID(k.Session), k.Reason)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func thisHost() string {
	h, _ := hostname()
	return h
}

// ps is heph ps.
func (e env) ps(args []string) int {
	fs := e.flags("ps")
	asJSON := fs.Bool("json", false, "JSON output")
	if status, ok := e.parse(fs, args); !ok {
		return status
	}
	api, ep, err := e.connect()
	if err != nil {
		fmt.Fprintf(e.stderr, "heph ps: %v\n", err)
		return exitFail
	}
	defer api.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := sessions.List(ctx, api)
	if err != nil {
		fmt.Fprintf(e.stderr, "heph ps: %v\n", err)
		return exitFail
	}
	imgs, err := builtImages(ctx, api, e.now())
	if err != nil {
		fmt.Fprintf(e.stderr, "heph ps: %v\n", err)
		return exitFail
	}
	infos, _, err := listShared(ctx, api)
	if err != nil {
		fmt.Fprintf(e.stderr, "heph ps: %v\n", err)
		return exitFail
	}
	r := psReport{Daemon: ep.Host, Sessions: views(list, e.now(), thisHost()), Images: imgs, Shared: sharedViews(infos, e.now())}
	if *asJSON {
		if err := writeJSON(e.stdout, r); err != nil {
			return exitFail
		}
		return exitOK
	}
	writePs(e.stdout, r)
	return exitOK
}

// pruneSelection is what heph prune was asked to remove.
type pruneSelection struct {
	sessions  []string // ids or prefixes
	stale     bool
	olderThan time.Duration
	all       bool
	images    bool // the images heph built that no container uses
	shared    bool // the shared containers no live process holds
	// force removes what is not proved unused too: sessions whose process
	// is alive or cannot be judged, and (with shared) held shared containers.
	force bool
}

// selectsSessions reports whether p selects sessions at all.
func (p pruneSelection) selectsSessions() bool {
	return len(p.sessions) > 0 || p.stale || p.olderThan > 0 || p.all
}

// selectSessions returns the sessions p selects, at time now. Every --session
// must name exactly one listed session (by id or unique prefix).
func selectSessions(all []sessions.Session, p pruneSelection, now time.Time) ([]sessions.Session, error) {
	want := map[string]bool{}
	for _, id := range p.sessions {
		var match []string
		for _, s := range all {
			if s.ID == id {
				match = []string{s.ID}
				break
			}
			if strings.HasPrefix(s.ID, id) {
				match = append(match, s.ID)
			}
		}
		switch len(match) {
		case 0:
			return nil, fmt.Errorf("no heph resources of session %q on the daemon (heph ps lists the sessions)", id)
		case 1:
			want[match[0]] = true
		default:
			sort.Strings(match)
			return nil, fmt.Errorf("session %q is ambiguous: it starts %s; give more of it", id, strings.Join(match, ", "))
		}
	}
	var out []sessions.Session
	for _, s := range all {
		switch {
		case len(want) > 0 && !want[s.ID]:
		case p.stale && !s.Stale():
		case p.olderThan > 0 && (s.Created.IsZero() || now.Sub(s.Created) < p.olderThan):
		default:
			out = append(out, s)
		}
	}
	return out, nil
}

// prune is heph prune.
func (e env) prune(args []string) int {
	fs := e.flags("prune")
	var p pruneSelection
	var ids sessionIDs
	var older duration
	fs.Var(&ids, "session", "session id or unique prefix (repeatable)")
	fs.BoolVar(&p.stale, "stale", false, "sessions whose process is proved gone")
	fs.Var(&older, "older-than", "sessions older than this (30m, 2h, 7d)")
	fs.BoolVar(&p.all, "all", false, "every session")
	fs.BoolVar(&p.images, "images", false, "the images heph built (heph.build) that no container uses")
	fs.BoolVar(&p.shared, "shared", false, "shared containers no live process holds")
	fs.BoolVar(&p.force, "force", false, "also sessions whose process is alive or cannot be judged here, and with --shared held shared containers")
	dryRun := fs.Bool("dry-run", false, "say what would be removed, remove nothing")
	asJSON := fs.Bool("json", false, "JSON output")
	if status, ok := e.parse(fs, args); !ok {
		return status
	}
	p.sessions, p.olderThan = ids, older.d
	if p.force && !p.shared && !p.selectsSessions() {
		fmt.Fprintln(e.stderr, "heph prune: --force goes with a session selector or --shared")
		return exitUsage
	}
	if !p.selectsSessions() && !p.images && !p.shared {
		fmt.Fprintln(e.stderr, "heph prune: say what to remove: --stale, --older-than DURATION, --session ID, --all, or --images; or --shared for shared containers")
		return exitUsage
	}

	api, ep, err := e.connect()
	if err != nil {
		fmt.Fprintf(e.stderr, "heph prune: %v\n", err)
		return exitFail
	}
	defer api.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	now := e.now()
	r := pruneReport{Daemon: ep.Host, DryRun: *dryRun, Sessions: []sessionView{}, Images: []imageView{}, KeptImages: []imageView{}, Kept: []keptView{}, Errors: []string{}, images: p.images,
		shared: p.shared, onlyShared: p.shared && !p.images && !p.selectsSessions()}
	if p.shared {
		var errs []string
		r.Shared, r.KeptShared, errs = pruneShared(ctx, api, now, p.force, *dryRun)
		r.Errors = append(r.Errors, errs...)
	}
	if p.selectsSessions() {
		if err := pruneSessions(ctx, api, p, now, &r); err != nil {
			fmt.Fprintf(e.stderr, "heph prune: %v\n", err)
			return exitFail
		}
	}
	if p.images {
		imgs, err := builtImages(ctx, api, now)
		if err != nil {
			fmt.Fprintf(e.stderr, "heph prune: %v\n", err)
			return exitFail
		}
		if *dryRun {
			for _, v := range imgs {
				if v.InUse {
					r.KeptImages = append(r.KeptImages, v)
				} else {
					r.Images = append(r.Images, v)
				}
			}
		} else {
			removed, kept, err := removeImages(ctx, api, imgs)
			r.Images, r.KeptImages = append(r.Images, removed...), append(r.KeptImages, kept...)
			if err != nil {
				r.Errors = append(r.Errors, err.Error())
			}
		}
	}
	status := exitOK
	for _, msg := range r.Errors {
		fmt.Fprintf(e.stderr, "heph prune: %s\n", msg)
		status = exitFail
	}
	if len(p.sessions) > 0 && len(r.Kept) > 0 {
		// A session named with --session was not removed: say so.
		for _, k := range r.Kept {
			fmt.Fprintf(e.stderr, "heph prune: session %s not removed: %s; --force removes it anyway\n", shortID(k.Session), k.Reason)
		}
		status = exitFail
	}
	if *asJSON {
		if err := writeJSON(e.stdout, r); err != nil {
			return exitFail
		}
		return status
	}
	writePrune(e.stdout, r)
	return status
}

// guard splits the selected sessions into those prune removes and those it
// leaves in place: without force, only a session whose process is proved
// gone (sessions.ProcessGone) is removed — never one whose process is alive
// or cannot be judged from here (another host, another pid namespace,
// another boot, an older heph's labels).
func guard(selected []sessions.Session, force bool) (remove []sessions.Session, kept []keptView) {
	for _, s := range selected {
		if force || s.Stale() {
			remove = append(remove, s)
			continue
		}
		k := keptView{Session: s.ID, Process: string(s.Process)}
		switch s.Process {
		case sessions.ProcessAlive:
			k.Reason = fmt.Sprintf("its process (pid %d) is alive", s.PID)
		default:
			k.Reason = "its process cannot be judged from here: " + s.Why
		}
		kept = append(kept, k)
	}
	return remove, kept
}

// pruneSessions removes (or, in a dry run, lists) the sessions p selects
// into r; it fails when the sessions cannot be listed or selected.
func pruneSessions(ctx context.Context, api engine.API, p pruneSelection, now time.Time, r *pruneReport) error {
	list, err := sessions.List(ctx, api)
	if err != nil {
		return err
	}
	selected, err := selectSessions(list, p, now)
	if err != nil {
		return err
	}
	selected, kept := guard(selected, p.force)
	r.Kept = append(r.Kept, kept...)
	if r.DryRun {
		r.Sessions = views(selected, now, thisHost())
	} else {
		r.Sessions = []sessionView{}
		// A few sessions at a time; results in the listed order.
		errs := make([]error, len(selected))
		var wg sync.WaitGroup
		slots := make(chan struct{}, 4)
		for i := range selected {
			s := &selected[i]
			if s.ID == "" {
				errs[i] = fmt.Errorf("%s labelled %s without a %s label: heph removes only by session; use docker rm -f, docker network rm, docker volume rm",
					plural(len(s.Resources), "resource"), labels.Managed, labels.Session)
				s.Resources = nil
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				slots <- struct{}{}
				defer func() { <-slots }()
				s.Resources, errs[i] = sessions.Remove(ctx, api, s.ID)
			}()
		}
		wg.Wait()
		for i, s := range selected {
			if errs[i] != nil {
				r.Errors = append(r.Errors, errs[i].Error())
			}
			if len(s.Resources) > 0 {
				r.Sessions = append(r.Sessions, views([]sessions.Session{s}, now, thisHost())...)
			}
		}
	}
	return nil
}
