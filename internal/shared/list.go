package shared

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
)

// Info is one shared container as heph ps shows it.
type Info struct {
	Key, ID, Name, Service, State string
	// Host is the machine whose holders it serves (heph.host); Local is
	// true when that is this one and its key is in this Store: only then are
	// its holders known (another user's, or another runtime directory's,
	// are not).
	Host    string
	Local   bool
	Created time.Time
	// Holders are the live holders (Local only), oldest first.
	Holders []Lease
	// Idle is set when no one holds it: since when, and until when it is
	// kept (Keep: until a prune).
	IdleSince, Until time.Time
	Keep             bool
	// Networks are the test networks it is attached to now.
	Networks []string
}

// List returns every shared container on the daemon — whichever machine's
// — with, for this machine's, its live holders and idle time read from s
// (which may be nil: no holder is known). It changes nothing.
func List(ctx context.Context, api engine.API, s *Store, host string) ([]Info, error) {
	cs, err := api.ContainerList(ctx, engine.Filter{}.Add("label", labels.Managed+"=true", labels.Shared))
	if err != nil {
		return nil, engine.Op("list shared containers", "", err, nil)
	}
	out := make([]Info, 0, len(cs))
	for _, c := range cs {
		in := Info{
			Key: c.Labels[labels.Shared], ID: c.ID, Name: c.Name, Service: c.Labels[labels.Service], State: c.Status,
			Host: c.Labels[labels.Host], Created: c.Created.UTC(),
		}
		if t, err := time.Parse(time.RFC3339, c.Labels[labels.Created]); err == nil {
			in.Created = t
		}
		in.Local = in.Host == host && s.has(in.Key)
		for n := range c.Networks {
			if strings.HasPrefix(n, "heph-") {
				in.Networks = append(in.Networks, n)
			}
		}
		sort.Strings(in.Networks)
		if in.Local {
			leases, _ := s.Leases(in.Key)
			for _, l := range leases {
				if l.Alive {
					in.Holders = append(in.Holders, l)
				}
			}
			slices.SortFunc(in.Holders, func(a, b Lease) int { return a.Since.Compare(b.Since) })
			if m, ok := s.readIdle(in.Key); ok && len(in.Holders) == 0 {
				in.IdleSince, in.Until, in.Keep = m.Since, m.Until, m.Keep
			}
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
