package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/shared"
)

// sharedView is a shared container as heph ps and prune show it; its JSON
// is part of the --json output.
type sharedView struct {
	Key     string       `json:"key"`
	ID      string       `json:"id"`
	Name    string       `json:"name"`
	Service string       `json:"service"`
	State   string       `json:"state"`
	Host    string       `json:"host,omitempty"`
	Created time.Time    `json:"created,omitzero"`
	Holders []holderView `json:"holders"`
	// HoldersKnown is false for a container made for another machine:
	// its holders' leases are there, not here.
	HoldersKnown bool `json:"holders_known"`
	// IdleSeconds is how long no one has held it; RemovalInSeconds how
	// long until its idle time ends (absent with Keep, or while held).
	IdleSeconds      *int64   `json:"idle_seconds,omitempty"`
	RemovalInSeconds *int64   `json:"removal_in_seconds,omitempty"`
	Keep             bool     `json:"keep,omitempty"`
	Networks         []string `json:"networks"`
}

type holderView struct {
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
	Idle  string    `json:"idle"` // the holder's HEPH_SHARED_IDLE
}

// sharedViews turns shared.Infos into views at time now.
func sharedViews(infos []shared.Info, now time.Time) []sharedView {
	out := make([]sharedView, 0, len(infos))
	for _, in := range infos {
		v := sharedView{
			Key: in.Key, ID: in.ID, Name: in.Name, Service: in.Service, State: in.State, Host: in.Host, Created: in.Created,
			Holders: []holderView{}, HoldersKnown: in.Local, Keep: in.Keep, Networks: in.Networks,
		}
		if v.Networks == nil {
			v.Networks = []string{}
		}
		for _, h := range in.Holders {
			v.Holders = append(v.Holders, holderView{PID: h.PID, Since: h.Since, Idle: h.Idle.String()})
		}
		if !in.IdleSince.IsZero() {
			idle := int64(now.Sub(in.IdleSince).Seconds())
			v.IdleSeconds = &idle
			if !in.Keep {
				left := max(int64(in.Until.Sub(now).Seconds()), 0)
				v.RemovalInSeconds = &left
			}
		}
		out = append(out, v)
	}
	return out
}

// holders says "2 (pids 4821, 4830)", "0", "? (made for laptop)" or "?
// (another store)".
func holders(v sharedView) string {
	switch {
	case !v.HoldersKnown && v.Host != thisHost():
		return "? (made for " + v.Host + ")"
	case !v.HoldersKnown:
		return "? (another user's)"
	}
	if len(v.Holders) == 0 {
		return "0"
	}
	pids := make([]string, 0, len(v.Holders))
	for _, h := range v.Holders {
		pids = append(pids, fmt.Sprint(h.PID))
	}
	word := "pids"
	if len(pids) == 1 {
		word = "pid"
	}
	return fmt.Sprintf("%d (%s %s)", len(pids), word, ellipsis(strings.Join(pids, ", "), 24))
}

// idleText says how long it has been idle and what happens next.
func idleText(v sharedView) string {
	switch {
	case len(v.Holders) > 0:
		return "-"
	case v.IdleSeconds == nil:
		return "?"
	case v.Keep:
		return age(*v.IdleSeconds, true) + ", kept (HEPH_SHARED_IDLE=keep)"
	default:
		return age(*v.IdleSeconds, true) + ", removed in " + age(*v.RemovalInSeconds, true)
	}
}

// writeShared writes shared containers as aligned columns.
func writeShared(w io.Writer, views []sharedView) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARED KEY\tSERVICE\tNAME\tSTATE\tHOLDERS\tIDLE")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", shortKey(v.Key), v.Service, v.Name, v.State, holders(v), idleText(v))
	}
	_ = tw.Flush()
	writeTrimmed(w, buf.Bytes())
}

// shortKey is the first 12 hex digits of a content key.
func shortKey(k string) string {
	if len(k) > 12 {
		return k[:12]
	}
	return k
}

// writePsShared is the shared part of heph ps's text output.
func writePsShared(w io.Writer, views []sharedView) {
	if len(views) == 0 {
		return
	}
	fmt.Fprintln(w)
	writeShared(w, views)
	unheld := 0
	for _, v := range views {
		if v.HoldersKnown && len(v.Holders) == 0 {
			unheld++
		}
	}
	fmt.Fprintf(w, "\n%s", plural(len(views), "shared container"))
	if unheld > 0 {
		fmt.Fprintf(w, ", %d held by no process: heph prune --shared removes those", unheld)
	}
	fmt.Fprintln(w)
}

// writePruneShared is the shared part of heph prune's text output.
func writePruneShared(w io.Writer, r pruneReport) {
	verb := "removed"
	if r.DryRun {
		verb = "would remove (dry run, nothing removed)"
	}
	if len(r.Shared) > 0 {
		writeShared(w, r.Shared)
		fmt.Fprintf(w, "\n%s: %s on %s\n", verb, plural(len(r.Shared), "shared container"), r.Daemon)
	} else {
		fmt.Fprintf(w, "no shared container to remove on %s\n", r.Daemon)
	}
	for _, v := range r.KeptShared {
		why := "held by " + holders(v)
		switch {
		case !v.HoldersKnown && v.Host != thisHost():
			why = "made for " + v.Host + ", whose holders cannot be seen from here"
		case !v.HoldersKnown:
			why = "held through another user's (or runtime directory's) leases, which cannot be seen from here"
		}
		fmt.Fprintf(w, "kept %s: %s (--force removes it anyway)\n", v.Name, why)
	}
}

// listShared lists the shared containers with their holders and idle time.
func listShared(ctx context.Context, api engine.API) ([]shared.Info, *shared.Store, error) {
	store, err := shared.OpenExisting()
	if err != nil {
		return nil, nil, err
	}
	infos, err := shared.List(ctx, api, store, thisHost())
	return infos, store, err
}

// pruneShared removes the shared containers no live process holds (with
// force, every one), each under its key's lock so that no take races it,
// and returns what it removed (or would) and what it kept.
func pruneShared(ctx context.Context, api engine.API, now time.Time, force, dryRun bool) (removed, kept []sharedView, errs []string) {
	infos, store, err := listShared(ctx, api)
	if err != nil {
		return nil, nil, []string{err.Error()}
	}
	if store == nil && !dryRun {
		if store, err = shared.Open(); err != nil {
			return nil, nil, []string{err.Error()}
		}
	}
	views := sharedViews(infos, now)
	removed, kept = []sharedView{}, []sharedView{}
	for i, in := range infos {
		v := views[i]
		if !force && (!in.Local || len(in.Holders) > 0) {
			kept = append(kept, v)
			continue
		}
		if dryRun {
			removed = append(removed, v)
			continue
		}
		how := shared.Unheld
		if force {
			how = shared.Force
		}
		st, err := shared.Expiry{API: api, Store: store, Host: in.Host}.Expire(ctx, in.Key, how)
		switch {
		case err != nil:
			errs = append(errs, err.Error())
		case st.State == shared.Held: // taken since it was listed
			kept = append(kept, v)
		default:
			removed = append(removed, v)
		}
	}
	return removed, kept, errs
}
