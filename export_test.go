package heph

import "github.com/heph-go/heph/internal/subnet"

// NetworkPoolRetries returns how many network creations were retried because
// Docker's address pools were exhausted (for the integration tests).
func NetworkPoolRetries() int64 { return subnet.Counters.PoolRetries.Load() }
